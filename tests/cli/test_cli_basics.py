"""The CLI surface: help for every command, version, errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from beaver import __version__
from beaver.cli import build_app
from beaver.cli._app import BeaverTyper
from beaver.errors import InputError

runner = CliRunner()

COMMANDS = [
    [],
    ["face"],
    ["face", "scan"],
    ["face", "cluster"],
    ["face", "label"],
    ["face", "export"],
    ["caption"],
    ["prep"],
    ["train"],
    ["train", "run"],
    ["train", "list-models"],
    ["plugins"],
    ["plugins", "show"],
    ["models"],
    ["preview"],
    ["config"],
    ["config", "show"],
    ["config", "paths"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "beaver")
def test_every_command_has_help(command):
    result = runner.invoke(build_app(), [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    assert result.stderr == ""


def test_top_level_help_lists_the_pipeline():
    out = runner.invoke(build_app(), ["--help"]).stdout
    for name in ("face", "caption", "prep", "train", "plugins", "models", "preview", "config"):
        assert name in out
    for flag in ("--debug", "--quiet", "--config", "--version", "--install-completion"):
        assert flag in out


def test_face_help_lists_subcommands():
    out = runner.invoke(build_app(), ["face", "--help"]).stdout
    for name in ("scan", "cluster", "label", "export"):
        assert name in out


def test_version():
    result = runner.invoke(build_app(), ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"beaver {__version__}"


def test_python_dash_m_beaver():
    proc = subprocess.run(
        [sys.executable, "-m", "beaver", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"beaver {__version__}"


def test_train_shorthand_reaches_run_and_list_models_stays_separate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = runner.invoke(build_app(), ["train", "some/dataset", "--epochs", "3"])
    assert run.exit_code == 1
    assert "some/dataset: no such folder" in run.stderr
    listed = runner.invoke(build_app(), ["train", "list-models"])
    assert listed.exit_code == 0
    assert "No training runs" in listed.stdout


def test_usage_error_exits_2():
    result = runner.invoke(build_app(), ["face", "scan"])
    assert result.exit_code == 2
    assert "Missing argument" in result.output


def _app_raising(exc: BaseException) -> typer.Typer:
    app = build_app()
    extra = BeaverTyper(help="test")

    @extra.command("boom")
    def boom() -> None:
        raise exc

    app.add_typer(extra, name="test")
    return app


def test_beaver_error_is_one_line_without_traceback(tmp_path):
    bad = tmp_path / "photo.jpg"
    result = runner.invoke(
        _app_raising(InputError(bad, "not an image", hint="Remove it.")), ["test", "boom"]
    )
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("Error: ")
    assert str(bad) in lines[0]
    assert lines[0].endswith("Remove it.")
    assert "Traceback" not in result.output


def test_debug_shows_the_exception(tmp_path):
    err = InputError(tmp_path / "x.jpg", "not an image")
    result = runner.invoke(_app_raising(err), ["--debug", "test", "boom"])
    assert result.exit_code == 1
    assert result.exception is err


def test_unexpected_exception_is_one_line_with_hint():
    result = runner.invoke(_app_raising(ZeroDivisionError("oops")), ["test", "boom"])
    assert result.exit_code == 1
    assert "unexpected ZeroDivisionError: oops" in result.stderr
    assert "--debug" in result.stderr
    assert "Traceback" not in result.output


def test_disk_full_is_reported_plainly():
    import errno

    err = OSError(errno.ENOSPC, "No space left on device", "/out/file.json")
    result = runner.invoke(_app_raising(err), ["test", "boom"])
    assert result.exit_code == 1
    assert "/out/file.json: no space left on the device" in result.stderr


def test_keyboard_interrupt_exits_130():
    result = runner.invoke(_app_raising(KeyboardInterrupt()), ["test", "boom"])
    assert result.exit_code == 130
    assert "Interrupted" in result.stderr


def test_bad_config_file_is_one_line(isolate_env):
    (isolate_env / "beaver.toml").write_text("[face]\nmin_score = 'high'\n", encoding="utf-8")
    result = runner.invoke(build_app(), ["config", "show"])
    assert result.exit_code == 1
    assert "beaver.toml: face.min_score" in result.stderr
    assert "Traceback" not in result.output


def test_config_show_reports_sources(isolate_env):
    (isolate_env / "beaver.toml").write_text("[face]\nmin_size = 64\n", encoding="utf-8")
    result = runner.invoke(
        build_app(),
        ["--output-dir", "elsewhere", "config", "show", "--json"],
        env={"BEAVER_FACE__THRESHOLD": "0.3"},
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = {r["key"]: r for r in data["settings"]}
    assert rows["face.min_size"]["value"] == 64
    assert rows["face.min_size"]["source"].endswith("beaver.toml")
    assert rows["face.threshold"] == {
        "key": "face.threshold",
        "value": 0.3,
        "source": "env BEAVER_FACE__THRESHOLD",
    }
    assert rows["output_dir"] == {
        "key": "output_dir",
        "value": "elsewhere",
        "source": "command line",
    }
    assert rows["face.min_cluster"]["source"] == "default"
    assert data["files"] == [str(isolate_env / "beaver.toml")]


def test_config_show_table(isolate_env):
    result = runner.invoke(build_app(), ["config", "show"])
    assert result.exit_code == 0
    assert "face.min_score" in result.stdout
    assert "default" in result.stdout


def test_config_paths_json(isolate_env):
    (isolate_env / "beaver.toml").write_text("", encoding="utf-8")
    result = runner.invoke(build_app(), ["config", "paths", "--json"])
    data = json.loads(result.stdout)
    here = next(r for r in data if r["path"] == str(isolate_env / "beaver.toml"))
    assert here == {"path": str(isolate_env / "beaver.toml"), "exists": True, "read": True}
    assert any(r["exists"] is False for r in data)


def test_global_config_option(tmp_path):
    cfg = tmp_path / "mine.toml"
    cfg.write_text("[caption]\nbatch_size = 2\n", encoding="utf-8")
    result = runner.invoke(build_app(), ["--config", str(cfg), "config", "show", "--json"])
    rows = {r["key"]: r for r in json.loads(result.stdout)["settings"]}
    assert rows["caption.batch_size"] == {
        "key": "caption.batch_size",
        "value": 2,
        "source": str(cfg),
    }


def test_show_completion_script():
    result = runner.invoke(build_app(), ["--show-completion", "bash"], prog_name="beaver")
    assert result.exit_code == 0, result.output
    assert "complete" in result.stdout
    assert "_BEAVER_COMPLETE" in result.stdout


def _params(command, path=()):
    for param in getattr(command, "params", []):
        yield path, param
    for name, sub in (getattr(command, "commands", None) or {}).items():
        yield from _params(sub, (*path, name))


def test_help_texts_contain_no_rich_markup_brackets():
    # Help is rendered as rich markup: "[default: x]" in a help string silently vanishes.
    import typer.main

    offenders = [
        (" ".join(path), param.name)
        for path, param in _params(typer.main.get_command(build_app()))
        if "[" in (getattr(param, "help", None) or "")
    ]
    assert offenders == []


def test_config_paths_with_explicit_config_lists_only_it(tmp_path):
    cfg = tmp_path / "only.toml"
    cfg.write_text("", encoding="utf-8")
    result = runner.invoke(build_app(), ["--config", str(cfg), "config", "paths", "--json"])
    assert json.loads(result.stdout) == [{"path": str(cfg), "exists": True, "read": True}]
