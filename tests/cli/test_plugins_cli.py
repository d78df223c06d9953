"""`beaver plugins`: the table, JSON, show, and a broken plugin that breaks nothing."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from beaver.cli import build_app

runner = CliRunner()

FIRST_PARTY = {
    ("insightface", "face detector"),
    ("opencv", "face detector"),
    ("blip", "captioner"),
    ("florence2", "captioner"),
    ("coca", "captioner"),
    ("wd14", "captioner"),
    ("openai", "captioner"),
    ("kohya", "trainer"),
    ("diffusers", "trainer"),
    ("comfyui", "trainer"),
}

BROKEN = "raise RuntimeError('this plugin is broken on purpose')\n"


def test_json_lists_the_ten_first_party_plugins():
    result = runner.invoke(build_app(), ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {(r["name"], r["kind"]) for r in rows} == FIRST_PARTY
    for row in rows:
        assert row["distribution"] == "eager-beaver"
        assert row["status"] == "active"
        assert row["licence"]
    insight = next(r for r in rows if r["name"] == "insightface")
    assert "non-commercial" in insight["licence"]
    trainers = [r for r in rows if r["kind"] == "trainer"]
    assert {r["name"] for r in trainers} == {"kohya", "diffusers", "comfyui"}
    # They write files; whether the trainer itself is installed is train.sh's question.
    assert all(r["ready"] for r in trainers)


def test_table_has_the_issue_columns():
    result = runner.invoke(build_app(), ["plugins"])
    assert result.exit_code == 0
    header = result.stdout.splitlines()[1]
    for column in ("name", "kind", "distribution", "version", "status", "licence"):
        assert column in header
    assert "florence2" in result.stdout


def test_kind_filter():
    rows = json.loads(runner.invoke(build_app(), ["plugins", "--json", "--kind", "trainer"]).stdout)
    assert sorted(r["name"] for r in rows) == ["comfyui", "diffusers", "kohya"]


def test_show_prints_options_schema():
    result = runner.invoke(build_app(), ["plugins", "show", "wd14", "--json"])
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.stdout)
    props = item["options"]["properties"]
    assert props["general_threshold"]["default"] == 0.35
    assert props["character_threshold"]["default"] == 0.85
    text = runner.invoke(build_app(), ["plugins", "show", "florence2"]).stdout
    assert 'task = "<DETAILED_CAPTION>"' in text


def test_show_unknown_plugin_lists_choices():
    result = runner.invoke(build_app(), ["plugins", "show", "blip3"])
    assert result.exit_code == 1
    assert "Unknown plugin 'blip3'. Choose one of:" in result.stderr
    assert "blip, coca, comfyui" in result.stderr


def test_disabled_plugin_is_listed_as_disabled():
    result = runner.invoke(
        build_app(), ["plugins", "--json"], env={"BEAVER_DISABLE_PLUGINS": "coca"}
    )
    rows = json.loads(result.stdout)
    coca = [r for r in rows if r["name"] == "coca"]
    assert len(coca) == 1
    assert coca[0]["status"] == "disabled"


@pytest.fixture
def broken_installed(make_dist):
    return make_dist(
        "beaver-broken-thing",
        version="9.9",
        entry_points={"brokenthing": "beaver_brokenthing"},
        modules={"beaver_brokenthing": BROKEN},
    )


def test_broken_plugin_listed_as_failed_and_warned_once(broken_installed):
    result = runner.invoke(build_app(), ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    row = next(r for r in rows if r["name"] == "brokenthing")
    assert row["status"] == "failed"
    assert row["distribution"] == "beaver-broken-thing"
    assert row["version"] == "9.9"
    assert "broken on purpose" in row["error"]
    assert result.stderr.count("failed to load") == 1
    assert "BEAVER_DISABLE_PLUGINS=brokenthing" in result.stderr
    # the ten built-ins are unaffected
    assert {(r["name"], r["kind"]) for r in rows if r["status"] == "active"} == FIRST_PARTY


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (["--help"], 0),
        (["config", "show"], 0),
        (["plugins"], 0),
        (["plugins", "show", "blip"], 0),
        (["models", "--help"], 0),
        (["face", "scan", "photos"], 1),
        (["caption", "--input", "x", "--output-name", "y"], 1),  # x: no such folder
    ],
)
def test_every_command_still_works_with_a_broken_plugin(broken_installed, command, code):
    result = runner.invoke(build_app(), command)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output


def test_duplicate_name_shows_conflict(make_dist):
    make_dist(
        "beaver-other-blip",
        entry_points={"otherblip": "beaver_other_blip"},
        modules={
            "beaver_other_blip": """
            from beaver import CaptionerSpec, hookimpl

            @hookimpl
            def beaver_captioners():
                yield CaptionerSpec(name="blip", factory=lambda o: None, licence="MIT")
            """
        },
    )
    rows = json.loads(runner.invoke(build_app(), ["plugins", "--json"]).stdout)
    blips = [r for r in rows if r["name"] == "blip"]
    assert sorted(r["distribution"] for r in blips) == ["beaver-other-blip", "eager-beaver"]
    assert {r["status"] for r in blips} == {"conflict"}
