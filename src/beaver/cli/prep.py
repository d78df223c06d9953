"""``beaver prep``: classify shots, extract concepts, write a training-ready dataset."""
# ruff: noqa: ARG001 - a placeholder: the options are its future interface

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from beaver.cli._app import BeaverTyper
from beaver.cli._options import NameOpt, OutputOpt
from beaver.errors import NotImplementedYetError


def prep(
    input_dir: Annotated[Path, typer.Argument(help="Folder of images.", show_default=False)],
    name: NameOpt,
    output: OutputOpt = None,
    trigger: Annotated[
        str | None, typer.Option("--trigger", "-t", help="Trigger word (default: from name).")
    ] = None,
    facevault_cache: Annotated[
        Path | None, typer.Option(help="face_cache.json from `beaver face scan`.")
    ] = None,
    captions: Annotated[
        Path | None, typer.Option(help="captions.json from `beaver caption`.")
    ] = None,
    taxonomy: Annotated[Path | None, typer.Option(help="Concept taxonomy JSON.")] = None,
    organize_by_shot: Annotated[
        bool, typer.Option(help="Sort images into close/ mid/ far/.")
    ] = True,
    min_per_shot: Annotated[
        int | None, typer.Option(help="Warn below this many images per shot (default: 3).")
    ] = None,
    symlink: Annotated[bool, typer.Option(help="Link images instead of copying.")] = False,
) -> None:
    """Prepare a LoRA training dataset (not implemented yet)."""
    raise NotImplementedYetError("`beaver prep`")


def register(app: BeaverTyper) -> None:
    """Add the command to the root app."""
    app.command("prep")(prep)
