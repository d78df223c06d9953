"""``beaver face``: scan a photo library, cluster faces into people, label, export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from beaver.cli._app import BeaverTyper, current
from beaver.cli._options import JsonOpt, OutputOpt, complete_detectors
from beaver.cli._output import print_json, print_table, warn
from beaver.errors import UsageError
from beaver.settings import FaceSettings

app = BeaverTyper(help="Find faces in a photo library and organise them by person.")

_D = FaceSettings()


def _overrides(**values: Any) -> dict[str, Any]:
    face = {k: v for k, v in values.items() if v is not None}
    return {"face": face} if face else {}


@app.command()
def scan(
    dirs: Annotated[list[Path], typer.Argument(help="Photo folders to scan.", show_default=False)],
    min_score: Annotated[
        float | None, typer.Option(help=f"Minimum detection score (default: {_D.min_score}).")
    ] = None,
    min_size: Annotated[
        int | None,
        typer.Option(help=f"Minimum face size in pixels, short side (default: {_D.min_size})."),
    ] = None,
    recursive: Annotated[bool, typer.Option(help="Descend into sub-folders.")] = True,
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="Glob of paths or names to skip, e.g. 'Screenshots/*' (repeatable)."),
    ] = None,
    detector: Annotated[
        str | None,
        typer.Option(
            help=f"Face detector plugin (default: {_D.detector}).",
            autocompletion=complete_detectors,
        ),
    ] = None,
    model_pack: Annotated[
        str | None,
        typer.Option(help="Model pack name or folder (default: the detector's, buffalo_l)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Photos scanned at once (default: from the CPU count, at most 4)."),
    ] = None,
    rescan: Annotated[
        bool, typer.Option(help="Scan every photo again, even unchanged ones.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Find faces in every photo and store their identity embeddings.

    Re-running reads only new or changed photos; an interrupted scan resumes.
    """
    from beaver.faces.scan import ScanInterrupted
    from beaver.faces.vault import scan_library

    rt = current()
    settings = rt.settings(
        _overrides(
            min_score=min_score,
            min_size=min_size,
            detector=detector,
            model_pack=model_pack,
            workers=workers,
        )
    )
    try:
        with rt.progress() as bar:
            report = scan_library(
                settings,
                rt.plugins(),
                dirs,
                recursive=recursive,
                exclude=exclude or (),
                rescan=rescan,
                progress=bar,
            )
    except ScanInterrupted as stop:
        _scan_summary(stop.report, json_output=json_output, quiet=rt.quiet)
        warn("Interrupted: everything scanned so far is saved; run the same command to resume.")
        raise typer.Exit(130) from None
    _scan_summary(report, json_output=json_output, quiet=rt.quiet)
    if not json_output:
        rt.info(f"Face cache: {settings.facevault_dir / 'face_cache.json'}")


def _scan_summary(report: Any, *, json_output: bool, quiet: bool) -> None:
    if json_output:
        print_json(
            {
                "images": report.images,
                "scanned": report.scanned,
                "unchanged": report.unchanged,
                "moved": report.moved,
                "duplicates": report.duplicates,
                "missing": report.missing,
                "faces": report.faces,
                "skipped": report.skipped,
                "seconds": round(report.seconds, 3),
                "interrupted": report.interrupted,
            }
        )
        return
    rate = report.scanned / report.seconds if report.seconds else 0.0
    lines = [
        (
            f"{report.images} photos: {report.scanned} scanned ({rate:.1f}/s), "
            f"{report.unchanged} unchanged, {report.moved} moved, "
            f"{report.duplicates} duplicates, {report.missing} gone; {report.faces} faces found; "
            f"{report.skipped_count} skipped in {report.seconds:.1f}s."
        )
    ]
    for reason, paths in sorted(report.skipped.items(), key=lambda kv: -len(kv[1])):
        example = paths[0] if len(paths) == 1 else f"{paths[0]} and {len(paths) - 1} more"
        lines.append(f"  skipped {len(paths)}: {reason} ({example})")
    if not quiet:
        for line in lines:
            typer.echo(line)


@app.command()
def cluster(
    threshold: Annotated[
        float | None,
        typer.Option(help=f"Cosine distance for joining a person (default: {_D.threshold})."),
    ] = None,
    min_cluster: Annotated[
        int | None,
        typer.Option(help=f"Fewest faces that make a new person (default: {_D.min_cluster})."),
    ] = None,
    preview: Annotated[
        bool, typer.Option(help="Write a contact sheet per person and an HTML index.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Group faces into people (HDBSCAN); named and confirmed people stay as they are."""
    from beaver.faces.vault import cluster_vault

    rt = current()
    settings = rt.settings(_overrides(threshold=threshold, min_cluster=min_cluster))
    with rt.progress() as bar:
        summary = cluster_vault(settings, preview=preview, progress=bar)
    if json_output:
        print_json({k: getattr(summary, k) for k in summary.__dataclass_fields__})
        return
    if not rt.quiet:
        typer.echo(
            f"{summary.people} people from {summary.faces} faces ({summary.assigned} assigned, "
            f"{summary.created} new people, {summary.retired} dissolved, "
            f"{summary.noise_joined} joined by distance, "
            f"{summary.conflicts_resolved} same-photo conflicts resolved)."
        )
        if summary.other_models:
            warn(
                f"{summary.other_models} faces come from another model and were left out: "
                "re-scan their folders with the current model."
            )
        if summary.preview:
            typer.echo(f"Preview: {summary.preview}")
        typer.echo("Next: `beaver face label` to name people.")


@app.command()
def people(
    show_hidden: Annotated[bool, typer.Option("--all", help="Include hidden people.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """List people with their face and photo counts."""
    from beaver.faces.store import FaceStore

    settings = current().settings()
    with FaceStore.open(settings.facevault_dir, create=False) as store:
        rows = store.people(include_hidden=show_hidden)
    if json_output:
        print_json(
            [
                {
                    "id": p.key,
                    "name": p.name,
                    "faces": p.faces,
                    "photos": p.photos,
                    "hidden": p.hidden,
                    "confirmed": p.confirmed,
                }
                for p in rows
            ]
        )
        return
    print_table(
        ["Person", "Name", "Faces", "Photos", "Status"],
        [
            (
                p.key,
                p.name or "",
                p.faces,
                p.photos,
                "hidden" if p.hidden else ("confirmed" if p.confirmed else ""),
            )
            for p in rows
        ],
    )


def _face_ids(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise UsageError(
            f"{text!r} is not a list of face ids.", hint="Use numbers separated by commas: 12,15."
        ) from None


@app.command()
def label(
    person: Annotated[
        str | None, typer.Argument(help="Person id or name to label.", show_default=False)
    ] = None,
    name: Annotated[
        str | None, typer.Argument(help="Name to give that person.", show_default=False)
    ] = None,
    merge: Annotated[
        tuple[str, str] | None,
        typer.Option(help="Merge the first person into the second.", metavar="FROM INTO"),
    ] = None,
    split: Annotated[
        tuple[str, str] | None,
        typer.Option(
            help="Move faces (comma-separated ids) of a person into a new person.",
            metavar="PERSON FACES",
        ),
    ] = None,
    reject: Annotated[
        list[int] | None,
        typer.Option(help="Face id that is not this person: never put back (repeatable)."),
    ] = None,
    ignore: Annotated[
        list[int] | None,
        typer.Option(help="Face id that is no face or a stranger: never assigned (repeatable)."),
    ] = None,
    hide: Annotated[bool, typer.Option(help="Hide PERSON (strangers).")] = False,
    unhide: Annotated[bool, typer.Option(help="Show a hidden PERSON again.")] = False,
    confirm: Annotated[bool, typer.Option(help="Keep PERSON as it is without naming it.")] = False,
    show_paths: Annotated[bool, typer.Option(help="Show each face's id and photo path.")] = False,
) -> None:
    """Name, merge, split, hide or reject: interactive without arguments, else scriptable."""
    from beaver.cli import _label
    from beaver.faces import cache, labels
    from beaver.faces.lock import vault_lock
    from beaver.faces.store import FaceStore
    from beaver.faces.vault import export_aliases

    rt = current()
    settings = rt.settings()
    folder = settings.facevault_dir
    with vault_lock(folder, "beaver face label"), FaceStore.open(folder, create=False) as store:
        labels.require_people(store)
        scripted = any((merge, split, reject, ignore, hide, unhide, confirm, name))
        if merge:
            result = labels.merge_people(store, *merge)
            rt.info(
                f"Merged {merge[0]} into {result.into.key} ({result.into.label}): "
                f"{result.moved} faces moved"
                + (f", {result.unassigned} left out (same photo)" if result.unassigned else "")
            )
        if split:
            new = labels.split_person(store, split[0], _face_ids(split[1]))
            rt.info(f"Split {new.faces} faces off into {new.key}.")
        if reject:
            rt.info(f"Rejected {labels.reject_faces(store, reject)} faces from their people.")
        if ignore:
            rt.info(f"Ignoring {labels.ignore_faces(store, ignore)} faces from now on.")
        if hide or unhide or confirm or name:
            if person is None:
                raise UsageError(
                    "Name the person.", hint="e.g. `beaver face label person_001 Emma`."
                )
            if name:
                done = labels.name_person(store, person, name)
                rt.info(f"{done.key} is now {done.name!r} ({done.faces} faces).")
            if confirm:
                labels.confirm_person(store, person)
            if hide or unhide:
                done = labels.set_hidden(store, person, hidden=hide)
                rt.info(f"{done.key} is {'hidden' if hide else 'shown'}.")
        if not scripted:
            if person is not None and show_paths:
                _label.show_person(store, labels.find_person(store, person), show_paths=True)
            else:
                _label.interactive(store, settings, only=person, show_paths=show_paths)
        cache.write_cache(store, folder, export_aliases(folder))


@app.command()
def export(
    person: Annotated[
        list[str] | None, typer.Option(help="Person id or name to export (repeatable).")
    ] = None,
    all_people: Annotated[
        bool, typer.Option("--all", help="Export every person who is not hidden.")
    ] = False,
    export_format: Annotated[
        str, typer.Option("--format", help="organized: the photos; crops: face crops.")
    ] = "organized",
    symlink: Annotated[
        bool, typer.Option(help="Link to the originals instead of copying (organized only).")
    ] = False,
    output: OutputOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Write a folder of photos per person, with a manifest of where each came from."""
    from beaver.cli._label import run_export

    if export_format not in ("organized", "crops"):
        raise UsageError(
            f"Unknown format {export_format!r}.", hint="Choose one of: organized, crops."
        )
    if not person and not all_people:
        raise UsageError("Say who to export.", hint="Use --person NAME (repeatable) or --all.")
    fmt: Literal["organized", "crops"] = "crops" if export_format == "crops" else "organized"
    run_export(person or [], fmt=fmt, symlink=symlink, output=output, json_output=json_output)
