"""Option and argument aliases shared by the command modules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]

OutputOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Output folder (default: under the output root)."),
]

NameOpt = Annotated[str, typer.Option("--name", "-n", help="Person or concept name.")]


def complete_plugin_names(kind: str) -> list[str]:
    """Names of installed plugins of one kind, for shell completion (never raises)."""
    try:
        from beaver.plugins import SPEC_TYPES, make_plugin_manager

        manager = make_plugin_manager()
        spec_type = next(t for t in SPEC_TYPES if t.kind == kind)
        return manager.registry(spec_type).names()
    except Exception:  # noqa: BLE001 - completion must never print a traceback into the shell
        return []


def complete_detectors(incomplete: str) -> list[str]:
    """Complete --detector."""
    return [n for n in complete_plugin_names("face detector") if n.startswith(incomplete)]


def complete_captioners(incomplete: str) -> list[str]:
    """Complete --captioner."""
    return [n for n in complete_plugin_names("captioner") if n.startswith(incomplete)]


def complete_trainers(incomplete: str) -> list[str]:
    """Complete --backend."""
    return [n for n in complete_plugin_names("trainer") if n.startswith(incomplete)]
