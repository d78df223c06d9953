"""``beaver caption``: caption images with a captioner plugin."""
# ruff: noqa: ARG001 - a placeholder: the options are its future interface

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from beaver.cli._app import BeaverTyper
from beaver.cli._options import complete_captioners
from beaver.errors import NotImplementedYetError


def caption(
    input_dir: Annotated[
        Path, typer.Option("--input", "-i", help="Folder of images to caption.", show_default=False)
    ],
    output_name: Annotated[
        str, typer.Option(help="Name of outputs/processed/<name>/.", show_default=False)
    ],
    captioner: Annotated[
        str | None,
        typer.Option(help="Captioner plugin (default: blip).", autocompletion=complete_captioners),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Hub id or local model folder.")] = None,
    dataset: Annotated[
        str, typer.Option(help="Dataset kind (the seed's --dataset; only 'custom').")
    ] = "custom",
) -> None:
    """Caption every image in a folder (not implemented yet)."""
    raise NotImplementedYetError("`beaver caption`")


def register(app: BeaverTyper) -> None:
    """Add the command to the root app."""
    app.command("caption")(caption)
