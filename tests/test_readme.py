"""The README's two set-up commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> dict[str, str]:
    out = {}
    for line in (ROOT / ".ci" / "commands").read_text(encoding="utf-8").splitlines():
        if ":" in line and not line.startswith("#"):
            key, value = line.split(":", 1)
            out[key.strip()] = value.strip()
    return out


def _bash_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)]


def test_readme_starts_with_main_then_test_command():
    commands = _commands()
    blocks = _bash_blocks()
    assert blocks[0] == commands["MAIN_COMMAND"]
    assert blocks[1] == commands["TEST_COMMAND"]


def test_ci_runs_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "TEST_COMMAND" in script
    assert "nox" in _commands()["TEST_COMMAND"]


def test_nox_default_sessions_include_the_suite():
    noxfile = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    match = re.search(r"nox\.options\.sessions = \[(.*?)\]", noxfile)
    assert match is not None
    sessions = {s.strip().strip('"') for s in match.group(1).split(",")}
    assert sessions == {"lint", "typecheck", "docs", "tests"}
