"""The interactive side of ``beaver face label`` and the rendering of ``face export``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from beaver.cli._app import current
from beaver.cli._output import print_json, warn
from beaver.errors import BeaverError
from beaver.faces import labels
from beaver.faces.store import FaceStore, Person
from beaver.settings import BeaverSettings

_HELP = (
    "Type a name, or Enter to skip. Commands: /merge PERSON (into that person), /hide, "
    "/confirm, /reject FACE_ID[,FACE_ID], /paths, /quit."
)
SAMPLE_PATHS = 5


def show_person(store: FaceStore, person: Person, *, show_paths: bool) -> None:
    """Print a person's summary and some (or all) of its faces with ids and paths."""
    status = "hidden" if person.hidden else ("confirmed" if person.confirmed else "unconfirmed")
    typer.echo(
        f"{person.key}  {person.name or '(unnamed)'}  {person.faces} faces in "
        f"{person.photos} photos, {status}"
    )
    faces = store.faces(person_id=person.id)
    shown = faces if show_paths else faces[:SAMPLE_PATHS]
    for face in shown:
        w, h = face.bbox[2] - face.bbox[0], face.bbox[3] - face.bbox[1]
        typer.echo(f"  face {face.id:>6}  {w:.0f}x{h:.0f}px  score {face.score:.2f}  {face.path}")
    if len(faces) > len(shown):
        typer.echo(f"  … {len(faces) - len(shown)} more (--show-paths lists all)")


def interactive(
    store: FaceStore, settings: BeaverSettings, *, only: str | None, show_paths: bool
) -> None:
    """Walk through unnamed people, biggest first, asking for a name or a command."""
    if only is not None:
        queue = [labels.find_person(store, only)]
    else:
        queue = [p for p in store.people(include_hidden=False) if p.name is None]
    if not queue:
        typer.echo("Everyone is named. Use `beaver face people` to list them.")
        return
    sheets = settings.facevault_dir / "preview"
    if (sheets / "index.html").exists():
        typer.echo(f"Contact sheets: {sheets / 'index.html'}")
    else:
        typer.echo("Tip: `beaver face cluster --preview` writes a contact sheet per person.")
    typer.echo(_HELP)
    for person in queue:
        fresh = store.person(person.id)
        if fresh is None:  # merged away earlier in this session
            continue
        typer.echo("")
        show_person(store, fresh, show_paths=show_paths)
        if (sheets / f"{fresh.key}.jpg").exists():
            typer.echo(f"  sheet: {sheets / (fresh.key + '.jpg')}")
        while True:
            try:
                answer = typer.prompt("Name", default="", show_default=False).strip()
            except typer.Abort:  # end of input (piped answers ran out) or Ctrl-D
                return
            try:
                if _answer(store, fresh, answer):
                    break
            except _QuitError:
                return
            except BeaverError as exc:
                warn(f"{exc.message} {exc.hint or ''}".strip())


class _QuitError(Exception):
    """The user typed /quit."""


def _answer(store: FaceStore, person: Person, answer: str) -> bool:
    """Act on one answer; True moves on to the next person."""
    if not answer:
        return True
    if not answer.startswith("/"):
        done = labels.name_person(store, person.key, answer)
        typer.echo(f"  → {done.key} is {done.name}")
        return True
    command, _, arg = answer[1:].partition(" ")
    arg = arg.strip()
    if command in ("q", "quit", "exit"):
        raise _QuitError
    if command in ("h", "hide"):
        labels.set_hidden(store, person.key, hidden=True)
        typer.echo(f"  → {person.key} hidden")
        return True
    if command in ("c", "confirm"):
        labels.confirm_person(store, person.key)
        typer.echo(f"  → {person.key} confirmed")
        return True
    if command in ("m", "merge") and arg:
        result = labels.merge_people(store, person.key, arg)
        typer.echo(f"  → merged into {result.into.key} ({result.into.label})")
        return True
    if command in ("r", "reject") and arg:
        ids = [int(x) for x in arg.replace(" ", "").split(",") if x.isdigit()]
        typer.echo(f"  → {labels.reject_faces(store, ids)} faces rejected")
        return False
    if command in ("p", "paths"):
        show_person(store, store.person(person.id) or person, show_paths=True)
        return False
    typer.echo(_HELP)
    return False


def run_export(
    who: list[str],
    *,
    fmt: Literal["organized", "crops"],
    symlink: bool,
    output: Path | None,
    json_output: bool,
) -> None:
    """Resolve people, export them and report."""
    from beaver.faces import cache
    from beaver.faces.export import export_people
    from beaver.faces.lock import vault_lock
    from beaver.faces.vault import export_aliases, export_person_data

    rt = current()
    settings = rt.settings()
    folder = settings.facevault_dir
    root = output or folder / fmt  # organized/ or crops/, as in the seed
    if symlink and fmt == "crops":
        warn("--symlink applies to organized exports only; crops are always new files.")
    skipped: list[tuple[Path, str]] = []
    with vault_lock(folder, "beaver face export"), FaceStore.open(folder, create=False) as store:
        people = (
            [labels.find_person(store, w) for w in who]
            if who
            else [p for p in labels.require_people(store) if not p.hidden and p.faces]
        )
        data = export_person_data(store, people)
        with rt.progress() as bar:
            bar.start("Exporting", total=sum(len(p.photos) for p in data))
            report = export_people(
                data,
                root,
                fmt=fmt,
                symlink=symlink,
                on_progress=bar.update,
                on_skip=lambda path, reason: skipped.append((path, reason)),
            )
            bar.finish()
        cache.write_cache(store, folder, export_aliases(folder))
    for path, reason in skipped:
        warn(f"Skipped {path}: {reason}")
    summary = {
        "root": str(root),
        "format": fmt,
        "written": report.written,
        "unchanged": report.unchanged,
        "removed": report.removed,
        "skipped": report.skipped,
        "people": {p.key: str(p.folder) for p in report.people},
    }
    if json_output:
        print_json(summary)
    elif not rt.quiet:
        typer.echo(
            f"Exported {len(data)} people to {root}: {report.written} written, "
            f"{report.unchanged} unchanged, {report.removed} removed, {report.skipped} skipped."
        )
