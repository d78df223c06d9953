"""``beaver prep``: classify shots, extract concepts, write a training-ready dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from beaver.cli._app import BeaverTyper, current
from beaver.cli._options import JsonOpt, NameOpt, OutputOpt
from beaver.cli._output import print_json, warn
from beaver.errors import ConfigError
from beaver.settings import PrepSettings

_D = PrepSettings()


def prep(
    input_dir: Annotated[
        Path, typer.Argument(help="Folder of the person's photos.", show_default=False)
    ],
    name: NameOpt,
    output: OutputOpt = None,
    trigger: Annotated[
        str | None,
        typer.Option("--trigger", "-t", help="Trigger word (default: from the name)."),
    ] = None,
    facevault_cache: Annotated[
        Path | None, typer.Option(help="face_cache.json from `beaver face scan`.")
    ] = None,
    captions: Annotated[
        Path | None, typer.Option(help="captions.json from `beaver caption`.")
    ] = None,
    taxonomy: Annotated[
        Path | None, typer.Option(help="Concept taxonomy JSON (default: the built-in one).")
    ] = None,
    organize_by_shot: Annotated[
        bool, typer.Option(help="Sort images into close/ mid/ far/.")
    ] = True,
    min_per_shot: Annotated[
        int | None,
        typer.Option(help=f"Warn below this many images per shot (default: {_D.min_per_shot})."),
    ] = None,
    symlink: Annotated[bool, typer.Option(help="Link images instead of copying.")] = False,
    keep_all: Annotated[
        bool,
        typer.Option(
            help="Keep photos flagged as too small, blurred or showing only other people."
        ),
    ] = False,
    crop: Annotated[
        bool,
        typer.Option(
            help="Crop each photo around the person's face to a training aspect ratio "
            "(1:1 close, 3:4 mid and far)."
        ),
    ] = False,
    close_threshold: Annotated[
        float | None,
        typer.Option(
            help=f"Close when face height / image height is at least this "
            f"(default: {_D.close_threshold})."
        ),
    ] = None,
    far_threshold: Annotated[
        float | None,
        typer.Option(
            help=f"Far when face height / image height is below this (default: {_D.far_threshold})."
        ),
    ] = None,
    recursive: Annotated[bool, typer.Option(help="Descend into sub-folders.")] = True,
    json_output: JsonOpt = False,
) -> None:
    """Prepare a LoRA training dataset: shot types, concepts, captions, metadata.

    Works with a face cache and captions, or with neither (just organise the photos).
    Re-running updates the dataset in place; the photos themselves are never changed.
    """
    from beaver.prep.command import PrepPlan, prepare
    from beaver.prep.shots import ShotThresholds
    from beaver.prep.trigger import check_trigger

    section: dict[str, Any] = {
        k: v
        for k, v in {
            "min_per_shot": min_per_shot,
            "close_threshold": close_threshold,
            "far_threshold": far_threshold,
        }.items()
        if v is not None
    }
    rt = current()
    settings = rt.settings({"prep": section} if section else {})
    word, notes = check_trigger(trigger, name)
    try:
        thresholds = ShotThresholds(
            close=settings.prep.close_threshold, far=settings.prep.far_threshold
        )
    except ValueError as exc:
        raise ConfigError(
            "--close-threshold must be greater than --far-threshold.",
            hint=f"Defaults: {_D.close_threshold} and {_D.far_threshold}.",
        ) from exc
    plan = PrepPlan(
        input_dir=input_dir.expanduser().resolve(),
        output_dir=(output or settings.dataset_dir(word)).expanduser().resolve(),
        name=name,
        trigger=word,
        facevault_cache=facevault_cache,
        captions=captions,
        taxonomy=taxonomy,
        organize_by_shot=organize_by_shot,
        min_per_shot=settings.prep.min_per_shot,
        symlink=symlink,
        keep_all=keep_all,
        crop=crop,
        min_side=settings.prep.min_side,
        thresholds=thresholds,
        class_word=settings.prep.class_word,
        recursive=recursive,
    )
    for note in notes:
        warn(note)
    with rt.progress() as bar:
        report = prepare(plan, detector=_detector(settings, rt), progress=bar)
    for line in report.warnings:
        warn(line)
    if json_output:
        print_json(
            {
                "output": report.output,
                "photos": report.photos,
                "total_images": report.total_images,
                "shot_distribution": report.shot_distribution,
                "faces_from": report.faces_from,
                "captions_matched": report.captions_matched,
                "cache_matched": report.cache_matched,
                "excluded": report.excluded,
                "quality": report.quality,
                "skipped": report.skipped,
                "warnings": report.warnings,
                "seconds": round(report.seconds, 3),
            }
        )
        return
    if rt.quiet:
        return
    shots = ", ".join(f"{k} {v}" for k, v in report.shot_distribution.items())
    typer.echo(
        f"{report.total_images} of {report.photos} photos in the dataset ({shots}); "
        f"faces from {report.faces_from}."
    )
    if report.cache_matched is not None:
        typer.echo(f"  {report.cache_matched} of {report.photos} photos found in the face cache.")
    if report.captions_matched is not None:
        typer.echo(f"  {report.captions_matched} of {report.photos} photos have a caption.")
    for reason, paths in sorted(report.excluded.items()):
        typer.echo(f"  left out {len(paths)}: {reason.replace('_', ' ')} ({paths[0]}…)")
    for reason, paths in sorted(report.skipped.items()):
        typer.echo(f"  skipped {len(paths)}: {reason} ({paths[0]})")
    typer.echo(f"Dataset: {report.output}")


def _detector(settings: Any, rt: Any) -> Any:
    """A factory for the configured face detector (built only if a photo needs it)."""
    from beaver.faces import engine

    def build() -> Any:
        spec = rt.plugins().face_detectors().get(settings.face.detector)
        return spec.create(engine.detector_options(spec, settings))

    return build


def register(app: BeaverTyper) -> None:
    """Add the command to the root app."""
    app.command("prep")(prep)
