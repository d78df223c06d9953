"""``beaver models``: list, pull, add and remove model packs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from beaver.cli._app import BeaverTyper, current
from beaver.cli._options import JsonOpt
from beaver.cli._output import print_json, print_table
from beaver.models import catalog, download, store

app = BeaverTyper(help="Manage face model packs (insightface layout).")

_SOURCE_LABELS = {
    "registered": "registered",
    "models_dir": "models dir",
    "insightface": "~/.insightface",
}


def _human_size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


@app.command("list")
def list_packs(json_output: JsonOpt = False) -> None:
    """List installed model packs and the known ones you can pull."""
    models_dir = current().settings().models_dir
    rows = store.list_packs(models_dir)
    if json_output:
        print_json(
            {
                "models_dir": str(models_dir),
                "packs": [
                    {
                        "name": r.name,
                        "status": r.status,
                        "source": r.source,
                        "path": None if r.path is None else str(r.path),
                        "size_bytes": r.size_bytes,
                        "licence": r.licence,
                        "description": r.description,
                    }
                    for r in rows
                ],
            }
        )
        return
    print_table(
        ["Name", "Status", "Size", "Source", "Licence", "Path"],
        [
            (
                r.name,
                r.status,
                ("~" if r.status == "not installed" else "") + _human_size(r.size_bytes),
                _SOURCE_LABELS.get(r.source or "", ""),
                r.licence,
                r.path or "",
            )
            for r in rows
        ],
        title=f"Model packs ({models_dir})",
    )


@app.command()
def pull(
    name: Annotated[str, typer.Argument(help="Pack name, e.g. buffalo_l.", show_default=False)],
    force: Annotated[
        bool, typer.Option("--force", help="Download again even when installed.")
    ] = False,
) -> None:
    """Download a known model pack into the models dir (resumable, checksum-verified)."""
    runtime = current()
    models_dir = runtime.settings().models_dir
    pack = catalog.get_pack(name)
    with runtime.progress() as progress:
        result = download.pull_pack(pack, models_dir, force=force, progress=progress)
    if not result.downloaded:
        where = _SOURCE_LABELS[result.source]
        runtime.info(
            f"{pack.name} is already installed at {result.path} ({where}). "
            "Pass --force to download it again."
        )
        return
    runtime.info(f"Installed {pack.name} in {result.path} (licence: {pack.licence}).")
    shadow = store.find_pack(pack.name, models_dir)
    if shadow is not None and shadow.path != result.path:
        runtime.info(f"Note: {shadow.path} ({shadow.source}) is still used first for {name}.")


@app.command()
def add(
    path: Annotated[
        Path, typer.Argument(help="Folder holding the pack's .onnx files.", show_default=False)
    ],
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Pack name (default: the folder's name)."),
    ] = None,
) -> None:
    """Register an existing folder as a model pack (nothing is copied)."""
    runtime = current()
    models_dir = runtime.settings().models_dir
    pack_name = name or path.expanduser().resolve().name
    folder = store.register_pack(path, pack_name, models_dir)
    runtime.info(f"Registered {pack_name} → {folder} (in {store.registry_path(models_dir)}).")


@app.command()
def remove(
    name: Annotated[str, typer.Argument(help="Pack name.", show_default=False)],
    delete: Annotated[
        bool,
        typer.Option(
            "--delete", help="Also delete <models_dir>/<name>/ if beaver downloaded it there."
        ),
    ] = False,
) -> None:
    """Forget a registered pack; with --delete, delete a pack downloaded into the models dir."""
    runtime = current()
    result = store.remove_pack(name, runtime.settings().models_dir, delete=delete)
    if result.unregistered is not None:
        runtime.info(f"Unregistered {name} (the folder {result.unregistered} was kept).")
    if result.deleted is not None:
        runtime.info(f"Deleted {result.deleted}.")
