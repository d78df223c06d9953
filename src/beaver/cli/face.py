"""``beaver face``: scan a photo library, cluster faces into people, label, export."""
# ruff: noqa: ARG001 - a placeholder: the options are its future interface

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from beaver.cli._app import BeaverTyper
from beaver.cli._options import JsonOpt, complete_detectors
from beaver.errors import NotImplementedYetError

app = BeaverTyper(help="Find faces in a photo library and organise them by person.")


@app.command()
def scan(
    dirs: Annotated[list[Path], typer.Argument(help="Photo folders to scan.", show_default=False)],
    min_score: Annotated[
        float | None, typer.Option(help="Minimum detection score (default: 0.6).")
    ] = None,
    min_size: Annotated[
        int | None, typer.Option(help="Minimum face size in pixels (default: 40).")
    ] = None,
    recursive: Annotated[bool, typer.Option(help="Descend into sub-folders.")] = True,
    exclude: Annotated[
        list[str] | None, typer.Option(help="Glob of paths to skip (repeatable).")
    ] = None,
    detector: Annotated[
        str | None,
        typer.Option(help="Face detector plugin.", autocompletion=complete_detectors),
    ] = None,
    model_pack: Annotated[
        str | None, typer.Option(help="Model pack name or folder (default: buffalo_l).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Image decoding workers.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Find faces in every photo and store their identity embeddings (not implemented yet)."""
    raise NotImplementedYetError("`beaver face scan`")


@app.command()
def cluster(
    threshold: Annotated[
        float | None, typer.Option(help="Cosine-distance threshold (default: 0.35).")
    ] = None,
    min_cluster: Annotated[
        int | None, typer.Option(help="Fewest faces that make a person (default: 5).")
    ] = None,
    preview: Annotated[bool, typer.Option(help="Write a contact sheet per person.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Group faces into people with HDBSCAN (not implemented yet)."""
    raise NotImplementedYetError("`beaver face cluster`")


@app.command()
def label(
    show_paths: Annotated[bool, typer.Option(help="Show the photo paths of each face.")] = False,
) -> None:
    """Name, merge, split or reject people (not implemented yet)."""
    raise NotImplementedYetError("`beaver face label`")


@app.command()
def export(
    person: Annotated[
        list[str] | None, typer.Option(help="Person id or name to export (repeatable).")
    ] = None,
    all_people: Annotated[bool, typer.Option("--all", help="Export every named person.")] = False,
    export_format: Annotated[
        str, typer.Option("--format", help="Export layout: organized.")
    ] = "organized",
) -> None:
    """Write a folder of photos per person (not implemented yet)."""
    raise NotImplementedYetError("`beaver face export`")
