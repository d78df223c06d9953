"""Plugin discovery through entry points, failures, conflicts, disabling."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from pydantic import BaseModel

from beaver import CaptionerSpec, hookimpl
from beaver.errors import ConfigError, PluginConflictError, UnknownPluginError
from beaver.plugins import (
    FaceDetectorSpec,
    TrainerSpec,
    iter_entry_points,
    make_plugin_manager,
)

OK_PLUGIN = """
from beaver import CaptionerSpec, hookimpl

class Echo:
    def caption(self, images):
        return []

@hookimpl
def beaver_captioners():
    yield CaptionerSpec(name="echo", factory=lambda options: Echo(), description="echo",
                        licence="MIT")
"""

BROKEN_PLUGIN = """
import a_module_that_does_not_exist_anywhere
"""

DUP_BLIP = """
from beaver import CaptionerSpec, hookimpl

@hookimpl
def beaver_captioners():
    yield CaptionerSpec(name="blip", factory=lambda options: None, licence="MIT")
"""


def _eps(site: Path):
    return list(iter_entry_points(importlib.metadata.distributions(path=[str(site)])))


def test_discovers_a_third_party_distribution_on_sys_path(make_dist, monkeypatch):
    site = make_dist(
        "beaver-echo",
        entry_points={"echo": "beaver_echo_ok"},
        modules={"beaver_echo_ok": OK_PLUGIN},
    )
    monkeypatch.syspath_prepend(str(site))
    manager = make_plugin_manager(env={})
    infos = {p.name: p for p in manager.plugins}
    assert infos["echo"].distribution == "beaver-echo"
    assert infos["echo"].version == "0.1.0"
    assert infos["echo"].status == "active"
    spec = manager.captioners().get("echo")
    assert spec.description == "echo"
    # our own plugins come through the very same path
    assert infos["blip"].distribution == "eager-beaver"
    assert "echo" in manager.captioners().names()
    assert "blip" in manager.captioners().names()


def test_broken_plugin_is_recorded_not_raised(make_dist):
    site = make_dist(
        "beaver-broken",
        entry_points={"broken": "beaver_broken_mod", "echo": "beaver_echo_ok2"},
        modules={"beaver_broken_mod": BROKEN_PLUGIN, "beaver_echo_ok2": OK_PLUGIN},
    )
    manager = make_plugin_manager(entry_points=_eps(site), env={})
    broken = next(p for p in manager.plugins if p.name == "broken")
    assert broken.status == "failed"
    assert "ModuleNotFoundError" in (broken.error or "")
    assert [p.name for p in manager.failures] == ["broken"]
    # the healthy plugin of the same distribution still works
    assert manager.captioners().names() == ["echo"]


def test_entry_point_target_missing_attribute_fails_cleanly(make_dist):
    site = make_dist(
        "beaver-attr",
        entry_points={"attr": "beaver_echo_ok3:nope"},
        modules={"beaver_echo_ok3": OK_PLUGIN},
    )
    manager = make_plugin_manager(entry_points=_eps(site), env={})
    assert manager.plugins[0].status == "failed"
    assert "AttributeError" in (manager.plugins[0].error or "")


def test_hook_that_raises_marks_only_its_plugin_failed():
    class Raises:
        @hookimpl
        def beaver_captioners(self):
            msg = "boom"
            raise RuntimeError(msg)

    class Fine:
        @hookimpl
        def beaver_captioners(self):
            yield CaptionerSpec(name="fine", factory=lambda o: None)

    manager = make_plugin_manager(
        entry_points=[], extra_plugins=[(Raises(), "raises"), (Fine(), "fine")], env={}
    )
    assert manager.captioners().names() == ["fine"]
    failed = {p.name: p.error for p in manager.failures}
    assert failed == {"raises": "RuntimeError: boom"}


def test_hook_yielding_wrong_record_type_fails_that_plugin():
    class Wrong:
        @hookimpl
        def beaver_captioners(self):
            yield FaceDetectorSpec(name="oops", factory=lambda o: None)

    manager = make_plugin_manager(entry_points=[], extra_plugins=[(Wrong(), "wrong")], env={})
    assert manager.captioners().names() == []
    assert "expected CaptionerSpec" in (manager.failures[0].error or "")


def test_unknown_hook_is_a_load_failure(make_dist):
    site = make_dist(
        "beaver-typo",
        entry_points={"typo": "beaver_typo_mod"},
        modules={
            "beaver_typo_mod": """
            from beaver import hookimpl

            @hookimpl
            def beaver_captionerz():
                return []
            """
        },
    )
    manager = make_plugin_manager(entry_points=_eps(site), env={})
    assert manager.plugins[0].status == "failed"
    assert "beaver_captionerz" in (manager.plugins[0].error or "")
    assert not manager.pm.has_plugin("typo")


def test_duplicate_names_name_both_distributions(make_dist, monkeypatch):
    site = make_dist(
        "beaver-dup", entry_points={"dup": "beaver_dup_blip"}, modules={"beaver_dup_blip": DUP_BLIP}
    )
    monkeypatch.syspath_prepend(str(site))
    manager = make_plugin_manager(env={})
    registry = manager.captioners()
    assert set(registry.conflicts()) == {"blip"}
    with pytest.raises(PluginConflictError) as info:
        registry.get("blip")
    message = str(info.value)
    assert "beaver-dup" in message
    assert "eager-beaver" in message
    with pytest.raises(PluginConflictError):
        registry.validate()
    # other names of the same kind stay usable
    assert registry.get("wd14").name == "wd14"


def test_unknown_name_lists_choices():
    manager = make_plugin_manager(env={})
    with pytest.raises(UnknownPluginError) as info:
        manager.captioners().get("blip3")
    assert "Choose one of: blip, coca, florence2, openai, wd14." in str(info.value)


def test_disable_by_entry_point_or_distribution_name(make_dist):
    site = make_dist(
        "beaver-echo-dist",
        entry_points={"echo": "beaver_echo_ok4"},
        modules={"beaver_echo_ok4": OK_PLUGIN},
    )
    eps = _eps(site)
    by_name = make_plugin_manager(entry_points=eps, env={"BEAVER_DISABLE_PLUGINS": "echo"})
    assert by_name.plugins[0].status == "disabled"
    assert by_name.captioners().names() == []
    by_dist = make_plugin_manager(
        entry_points=eps, env={"BEAVER_DISABLE_PLUGINS": " other , Beaver_Echo_Dist "}
    )
    assert by_dist.plugins[0].status == "disabled"


def test_disabling_a_builtin_removes_it():
    manager = make_plugin_manager(env={"BEAVER_DISABLE_PLUGINS": "blip"})
    assert "blip" not in manager.captioners().names()
    assert next(p for p in manager.plugins if p.name == "blip").status == "disabled"


def test_same_entry_point_name_from_two_distributions(make_dist, tmp_path):
    site = make_dist(
        "beaver-one", entry_points={"echo": "beaver_echo_a"}, modules={"beaver_echo_a": OK_PLUGIN}
    )
    make_dist(
        "beaver-two",
        entry_points={"echo": "beaver_echo_b"},
        modules={"beaver_echo_b": OK_PLUGIN},
        site=site,
    )
    manager = make_plugin_manager(entry_points=_eps(site), env={})
    statuses = sorted((p.distribution, p.status) for p in manager.plugins)
    assert statuses == [("beaver-one", "active"), ("beaver-two", "failed")] or statuses == [
        ("beaver-one", "failed"),
        ("beaver-two", "active"),
    ]
    failed = next(p for p in manager.plugins if p.status == "failed")
    assert "also used by" in (failed.error or "")


def test_each_manager_is_fresh():
    class One:
        @hookimpl
        def beaver_trainers(self):
            from beaver import TrainerSpec

            yield TrainerSpec(name="one", factory=lambda o: None)

    first = make_plugin_manager(entry_points=[], extra_plugins=[(One(), "one")], env={})
    second = make_plugin_manager(entry_points=[], env={})
    assert first.trainers().names() == ["one"]
    assert second.trainers().names() == []


def test_options_are_validated_with_plugin_name():
    class Opts(BaseModel):
        size: int = 3

    spec = CaptionerSpec(name="sized", factory=lambda o: o, options=Opts)
    built = spec.create({"size": "5"})
    assert isinstance(built, Opts)
    assert built.size == 5
    with pytest.raises(ConfigError) as info:
        spec.create({"size": "big"})
    assert "captioner 'sized'" in str(info.value)
    assert "size" in str(info.value)


@pytest.mark.parametrize("bad", ["Blip", "", "has space", "-lead"])
def test_record_names_are_validated(bad):
    with pytest.raises(ValueError, match="Invalid captioner name"):
        CaptionerSpec(name=bad, factory=lambda o: None)


def test_options_must_be_a_pydantic_model():
    with pytest.raises(TypeError):
        CaptionerSpec(name="x", factory=lambda o: None, options=dict)


def test_readiness_reports_missing_modules_and_extra():
    spec = CaptionerSpec(
        name="needy",
        factory=lambda o: None,
        requires=("json", "no_such_module_beaver_xyz"),
        install="beaver-needy[gpu]",
    )
    problem = spec.readiness()
    assert problem is not None
    assert "no_such_module_beaver_xyz" in problem
    assert "json" not in problem.split(":")[0]
    assert "pip install 'beaver-needy[gpu]'" in problem
    ok = CaptionerSpec(name="fine", factory=lambda o: None, requires=("json",))
    assert ok.readiness() is None
    checked = CaptionerSpec(name="checked", factory=lambda o: None, check=lambda: "no GPU")
    assert checked.readiness() == "no GPU"


def test_pending_factories_refuse_to_pretend():
    from beaver._pending import pending_check, pending_factory
    from beaver.errors import NotImplementedYetError

    spec = TrainerSpec(name="later", factory=pending_factory("Later"), check=pending_check)
    assert spec.readiness() == "not implemented yet"
    with pytest.raises(NotImplementedYetError, match="Later is not implemented yet"):
        spec.create({})


def test_raising_check_is_reported_not_raised():
    def explode() -> str | None:
        msg = "no gpu probe"
        raise RuntimeError(msg)

    spec = CaptionerSpec(name="probe", factory=lambda o: None, check=explode)
    assert spec.readiness() == "check failed: RuntimeError: no gpu probe"


def test_trace_goes_to_stderr_with_one_line_per_hook_call(capsys):
    manager = make_plugin_manager(env={"BEAVER_TRACE_PLUGINS": "1"})
    manager.captioners()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "beaver_captioners [blip] -> blip" in captured.err


def test_plugin_failing_in_one_kind_is_dropped_from_every_kind():
    class Half:
        @hookimpl
        def beaver_face_detectors(self):
            yield FaceDetectorSpec(name="half-face", factory=lambda o: None)

        @hookimpl
        def beaver_captioners(self):
            msg = "broken half"
            raise RuntimeError(msg)

    manager = make_plugin_manager(entry_points=[], extra_plugins=[(Half(), "half")], env={})
    assert manager.face_detectors().names() == ["half-face"]  # collected first
    assert manager.captioners().names() == []
    assert manager.face_detectors().names() == []
    assert {(r.spec.kind, r.spec.name) for r in manager.all_records()} == set()
    assert manager.failures[0].name == "half"


def test_failure_warning_has_no_double_period():
    from beaver.plugins import PluginInfo, failure_warning

    text = failure_warning(PluginInfo("x", "x", "dist-x", "1", "failed", "Bad thing."))
    assert ".." not in text
    assert "failed to load: Bad thing. It is skipped" in text
