"""``beaver caption``: caption images with a captioner plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from beaver.cli._app import BeaverTyper, current
from beaver.cli._options import JsonOpt, complete_captioners
from beaver.cli._output import print_json, warn
from beaver.errors import UsageError
from beaver.settings import CaptionSettings

_D = CaptionSettings()
ModeName = Literal["skip", "overwrite", "append", "prepend"]
DeviceName = Literal["auto", "cpu", "cuda", "mps"]
DtypeName = Literal["auto", "float32", "float16", "bfloat16"]


def caption(
    input_dir: Annotated[
        Path, typer.Option("--input", "-i", help="Folder of images to caption.", show_default=False)
    ],
    output_name: Annotated[
        str,
        typer.Option(
            help="Writes outputs/processed/NAME/captions.json (e.g. the person's name).",
            show_default=False,
        ),
    ],
    captioner: Annotated[
        str | None,
        typer.Option(
            help=f"Captioner plugin (default: {_D.captioner}); `beaver plugins` lists them.",
            autocompletion=complete_captioners,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Hugging Face hub id or local model folder (default: the plugin's)."),
    ] = None,
    trigger: Annotated[
        str | None, typer.Option(help="Trigger word, always the first word of every caption.")
    ] = None,
    prefix: Annotated[str, typer.Option(help="Text put before each caption.")] = "",
    suffix: Annotated[str, typer.Option(help="Text put after each caption.")] = "",
    mode: Annotated[
        ModeName,
        typer.Option(
            help="Images that already have a caption: skip them, overwrite, or append or "
            "prepend the new text."
        ),
    ] = "skip",
    sidecars: Annotated[
        bool,
        typer.Option(help="Also write one .txt per image under outputs/processed/NAME/captions/."),
    ] = False,
    recursive: Annotated[bool, typer.Option(help="Descend into sub-folders.")] = True,
    exclude: Annotated[
        list[str] | None, typer.Option(help="Glob of paths or names to skip (repeatable).")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1, help=f"Images per model call (default: {_D.batch_size}); halved on GPU OOM."
        ),
    ] = None,
    device: Annotated[
        DeviceName | None, typer.Option(help="auto picks cuda, then mps, then cpu.")
    ] = None,
    dtype: Annotated[
        DtypeName | None,
        typer.Option(help="Model precision (default: half on CUDA, float32 elsewhere)."),
    ] = None,
    dataset: Annotated[
        str, typer.Option(help="The seed's --dataset; only 'custom' (a folder) exists.")
    ] = "custom",
    json_output: JsonOpt = False,
) -> None:
    """Caption every image in a folder with a local captioner (BLIP, Florence-2, CoCa, WD14…).

    Re-running skips images that already have a caption (see --mode); an interrupted run
    continues where it stopped.
    """
    from beaver.captions.command import caption_images
    from beaver.captions.run import CaptionInterrupted

    if dataset != "custom":
        raise UsageError(
            f"--dataset {dataset!r}: only 'custom' (the folder given with --input) exists.",
        )
    section = {
        k: v
        for k, v in {
            "captioner": captioner,
            "model": model,
            "batch_size": batch_size,
            "dtype": dtype,
        }.items()
        if v is not None
    }
    overrides: dict[str, Any] = {"caption": section} if section else {}
    if device is not None:
        overrides["device"] = device
    rt = current()
    settings = rt.settings(overrides)
    try:
        with rt.progress() as bar:
            report = caption_images(
                settings,
                rt.plugins(),
                input_dir,
                output_name,
                mode=mode,
                trigger=trigger,
                prefix=prefix,
                suffix=suffix,
                recursive=recursive,
                exclude=exclude or (),
                sidecars=sidecars,
                progress=bar,
            )
    except CaptionInterrupted as stop:
        _summary(stop.report, json_output=json_output, quiet=rt.quiet)
        warn("Interrupted: every caption so far is saved; run the same command to continue.")
        raise typer.Exit(130) from None
    _summary(report, json_output=json_output, quiet=rt.quiet)


def _summary(report: Any, *, json_output: bool, quiet: bool) -> None:
    if json_output:
        print_json(
            {
                "images": report.images,
                "captioned": report.captioned,
                "kept": report.kept,
                "resumed": report.resumed,
                "skipped": report.skipped,
                "batch_size": report.batch_size,
                "smaller_batches": report.smaller_batches,
                "images_per_second": round(report.images_per_second, 3),
                "seconds": round(report.seconds, 3),
                "sidecars": report.sidecars,
                "interrupted": report.interrupted,
                "output": report.output,
            }
        )
        return
    if quiet:
        return
    skipped = sum(len(v) for v in report.skipped.values())
    typer.echo(
        f"{report.images} images: {report.captioned} captioned "
        f"({report.images_per_second:.2f}/s), {report.kept + report.resumed} already captioned, "
        f"{skipped} skipped in {report.seconds:.1f}s."
    )
    for reason, paths in sorted(report.skipped.items(), key=lambda kv: -len(kv[1])):
        example = paths[0] if len(paths) == 1 else f"{paths[0]} and {len(paths) - 1} more"
        typer.echo(f"  skipped {len(paths)}: {reason} ({example})")
    if report.smaller_batches:
        typer.echo(f"  out of GPU memory: continued with batches of {report.batch_size}.")
    typer.echo(f"Captions: {report.output}")


def register(app: BeaverTyper) -> None:
    """Add the command to the root app."""
    app.command("caption")(caption)
