"""``beaver preview``: a local web UI over a prepared dataset."""
# ruff: noqa: ARG001 - a placeholder: the options are its future interface

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from beaver.cli._app import BeaverTyper
from beaver.errors import NotImplementedYetError


def preview(
    dataset: Annotated[Path, typer.Argument(help="A dataset from `beaver prep`.")],
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    browser: Annotated[bool, typer.Option(help="Open the browser.")] = True,
) -> None:
    """Browse, filter and correct a prepared dataset in the browser (not implemented yet)."""
    raise NotImplementedYetError("`beaver preview`")


def register(app: BeaverTyper) -> None:
    """Add the command to the root app."""
    app.command("preview")(preview)
