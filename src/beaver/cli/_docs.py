"""Generate docs/cli.md from the CLI itself, so the reference cannot drift.

``python -m beaver.cli._docs docs/cli.md`` writes it; with ``--check`` it also exits 1
when the file had to change (CI runs that through ``nox -s docs``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

WIDTH = 100
HEADER = """# CLI reference

Generated from the CLI by `nox -s docs` (`python -m beaver.cli._docs docs/cli.md`);
do not edit by hand.
"""


def _walk(command: Any, path: list[str]) -> Iterator[list[str]]:
    yield path
    subcommands = getattr(command, "commands", None) or {}
    for name in sorted(subcommands):
        yield from _walk(subcommands[name], [*path, name])


def command_paths() -> list[list[str]]:
    """Every command path of the app, root first, children sorted."""
    import typer.main

    from beaver.cli import build_app

    return list(_walk(typer.main.get_command(build_app()), []))


def render() -> str:
    """The whole reference as Markdown."""
    from typer.testing import CliRunner

    from beaver.cli import build_app

    env = {"COLUMNS": str(WIDTH), "NO_COLOR": "1", "TERM": "dumb", "BEAVER_DEBUG": ""}
    runner = CliRunner()
    parts = [HEADER]
    for path in command_paths():
        title = " ".join(["beaver", *path])
        result = runner.invoke(build_app(), [*path, "--help"], env=env, prog_name="beaver")
        if result.exit_code != 0:
            msg = f"`{title} --help` failed: {result.output}"
            raise RuntimeError(msg)
        text = "\n".join(line.rstrip() for line in result.stdout.strip("\n").splitlines())
        parts.append(f"\n## `{title}`\n\n```text\n{text}\n```\n")
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Write the reference; with --check, return 1 if it changed."""
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    targets = [a for a in args if a != "--check"]
    target = Path(targets[0] if targets else "docs/cli.md")
    new = render()
    old = target.read_text(encoding="utf-8") if target.exists() else None
    if new == old:
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(new, encoding="utf-8")
    if check:
        sys.stderr.write(f"{target} was out of date and has been regenerated: commit it.\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
