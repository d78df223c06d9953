"""``outputs/processed/<name>/captions.json``: the captions of one folder, for ``beaver prep``.

A versioned JSON object: which captioner and model wrote it, the options of the last run,
and per image (path relative to the input folder, ``/``-separated) the final caption, the
captioner's raw output and, for taggers, the tags. Its JSON Schema is in
docs/schemas/captions.schema.json. :func:`read_captions` also accepts the plain
``{"file.jpg": "caption"}`` mapping other tools write.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from beaver.errors import InputError
from beaver.fsutil import write_atomic

CAPTIONS_NAME = "captions.json"
Mode = Literal["skip", "overwrite", "append", "prepend"]


class ImageCaption(BaseModel):
    """The caption of one image."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    caption: str = Field(
        description="The training caption: trigger word first, then prefix, the captioner's "
        "text (joined with earlier text in append/prepend mode) and suffix."
    )
    raw: str = Field("", description="What the captioner itself returned for this image.")
    tags: list[str] = Field(
        default_factory=list, description="A tagger's tags, best first; empty for captioners."
    )
    captioner: str = Field("", description="Captioner plugin that wrote `raw`.")
    model: str = Field("", description="The captioner's model (hub id or folder).")
    size: int = Field(0, ge=0, description="File size in bytes when captioned.")
    mtime_ns: int = Field(0, description="File modification time (ns) when captioned.")
    sha256: str = Field("", description="Content hash when captioned; empty when unknown.")
    run: str = Field("", description="Id of the run that wrote this caption.")


class RunInfo(BaseModel):
    """A run that has not finished: the same command continues it instead of starting over."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Run id; the images it already captioned carry it in `run`.")
    key: str = Field(description="Hash of the captioner, model, options, mode and affixes.")
    model: str = Field("", description="The run's model.")


class CaptionFile(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    generator: str = Field("", description="The beaver version that wrote the file.")
    input: str = Field("", description="Absolute path of the captioned folder.")
    captioner: str = Field("", description="Captioner plugin of the last run.")
    model: str = Field("", description="Model of the last run.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="The captioner's options in the last run."
    )
    trigger: str | None = Field(None, description="Trigger word, first in every caption.")
    prefix: str = Field("", description="Text put before the captioner's text.")
    suffix: str = Field("", description="Text put after the captioner's text.")
    mode: Mode = Field("skip", description="How the last run treated existing captions.")
    images: dict[str, ImageCaption] = Field(
        default_factory=dict, description="Path relative to `input` (`/`-separated) → caption."
    )
    skipped: dict[str, str] = Field(
        default_factory=dict, description="Images that could not be read in the last run → why."
    )
    unfinished: RunInfo | None = Field(
        None, description="The run that was interrupted, if any; null when the last run finished."
    )


def captions_schema() -> dict[str, Any]:
    """JSON Schema of captions.json."""
    return CaptionFile.model_json_schema()


def read_captions(path: Path) -> CaptionFile:
    """captions.json, or a plain ``{"image": "caption"}`` mapping; raises InputError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            path, "no such captions file", hint="Run `beaver caption` first, or fix the path."
        ) from None
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise InputError(
            path,
            f"not valid JSON{where}",
            hint="Fix or delete the file; `beaver caption` writes a new one.",
        ) from None
    if isinstance(data, dict) and data and all(isinstance(v, str) for v in data.values()):
        # Other tools' format: image name → caption.
        return CaptionFile(
            images={k.replace("\\", "/"): ImageCaption(caption=v, raw=v) for k, v in data.items()}
        )
    if isinstance(data, dict) and "version" in data and data["version"] != 1:
        raise InputError(
            path,
            f"captions file version {data['version']!r} is newer than this beaver reads",
            hint="Upgrade beaver, or caption again into a new --output-name.",
        )
    try:
        return CaptionFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InputError(
            path,
            f"not a captions file ({where}: {first['msg']})",
            hint='Expected beaver\'s captions.json or a {"image.jpg": "caption"} mapping.',
        ) from None


def write_captions(path: Path, captions: CaptionFile) -> None:
    """Write atomically (temp file + rename): a crash leaves the previous file whole."""
    text = json.dumps(captions.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
    write_atomic(path, text)
