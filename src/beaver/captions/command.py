"""``beaver caption`` resolved: settings and flags → one plan and one captioner, then the run."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from beaver.captions.run import CaptionPlan, CaptionReport, caption_folder
from beaver.captions.schema import Mode
from beaver.errors import UsageError
from beaver.faces.lock import vault_lock
from beaver.interfaces import Captioner
from beaver.plugins import BeaverPluginManager, CaptionerSpec
from beaver.progress import Progress
from beaver.settings import BeaverSettings

_NAME = re.compile(r"^[\w][\w .+-]*$")


def check_output_name(name: str) -> str:
    """A folder name under outputs/processed/: no separators, no leading dot."""
    if not _NAME.match(name) or name.strip() != name or name in {".", ".."}:
        raise UsageError(
            f"--output-name {name!r}: use a plain folder name (letters, digits, space, "
            "'.', '+', '-', '_'), such as 'emma'.",
        )
    return name


def captioner_options(spec: CaptionerSpec, settings: BeaverSettings) -> dict[str, Any]:
    """``[plugins.<name>]`` plus the caption settings the plugin declares (model, device, dtype)."""

    def chosen(value: str) -> str | None:
        return None if value == "auto" else value  # auto: the plugin's own default

    return spec.with_settings(
        settings.plugin_options(spec.name),
        {
            "model": settings.caption.model,
            "device": chosen(settings.device),
            "dtype": chosen(settings.caption.dtype),
        },
    )


def decode_workers(settings: BeaverSettings) -> int:
    """Decoding threads: the setting, or up to 4 from the CPU count."""
    return settings.caption.workers or max(1, min(4, os.cpu_count() or 1))


def caption_images(
    settings: BeaverSettings,
    plugins: BeaverPluginManager,
    input_dir: Path,
    output_name: str,
    *,
    mode: Mode = "skip",
    trigger: str | None = None,
    prefix: str = "",
    suffix: str = "",
    recursive: bool = True,
    exclude: Sequence[str] = (),
    sidecars: bool = False,
    progress: Progress | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> CaptionReport:
    """Caption ``input_dir`` into ``outputs/processed/<output_name>/captions.json``."""
    name = check_output_name(output_name)
    spec = plugins.captioners().get(settings.caption.captioner)
    values = captioner_options(spec, settings)
    options = spec.parse_options(values)  # bad options fail before any work
    plan = CaptionPlan(
        input_dir=input_dir.expanduser().resolve(),
        output_dir=settings.processed_dir(name),
        captioner=spec.name,
        options=options.model_dump(mode="json"),
        mode=mode,
        trigger=(trigger or "").strip() or None,
        prefix=prefix,
        suffix=suffix,
        recursive=recursive,
        exclude=tuple(exclude),
        batch_size=settings.caption.batch_size,
        sidecars=sidecars,
        workers=decode_workers(settings),
    )

    def make() -> Captioner:
        return spec.create(values)

    with vault_lock(plan.output_dir, "beaver caption"):
        return caption_folder(plan, make, progress=progress, on_skip=on_skip)
