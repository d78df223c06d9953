"""docs/cli.md is generated from the CLI and must match it."""

from __future__ import annotations

from pathlib import Path

from beaver.cli import _docs

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_cli_reference_is_up_to_date():
    expected = _docs.render()
    assert DOC.read_text(encoding="utf-8") == expected, "run `nox -s docs` and commit docs/cli.md"


def test_reference_covers_every_command():
    text = DOC.read_text(encoding="utf-8")
    for path in _docs.command_paths():
        assert f"## `{' '.join(['beaver', *path])}`" in text


def test_check_mode_reports_and_fixes_drift(tmp_path):
    target = tmp_path / "cli.md"
    target.write_text("stale\n", encoding="utf-8")
    assert _docs.main(["--check", str(target)]) == 1
    assert target.read_text(encoding="utf-8") == _docs.render()
    assert _docs.main(["--check", str(target)]) == 0
