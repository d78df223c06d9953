"""The four JSON files of a prepared dataset, in the workflow document's shapes.

``metadata.json`` (overview), ``shots.json`` and ``concepts.json`` (per image, keyed by the
dataset file name) and ``preview_manifest.json`` (for the preview UI). The document's keys
are all there with its shapes; beaver adds a few keys of its own to metadata.json (what it
read, quality checks, warnings) and ``source`` to shots.json entries. JSON Schemas are in
docs/schemas/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from beaver.fsutil import write_atomic
from beaver.prep.concepts import ImageConcepts, TopConcept

ShotName = Literal["close", "mid", "far", "unknown"]
METADATA, SHOTS, CONCEPTS, PREVIEW = (
    "metadata.json",
    "shots.json",
    "concepts.json",
    "preview_manifest.json",
)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceInfo(_Frozen):
    """A file prep read, and how much of the dataset it covered."""

    path: str
    matched: int = Field(ge=0, description="Dataset images it had an entry for.")


class Metadata(_Frozen):
    """metadata.json: the dataset at a glance (the document's keys first)."""

    person: str = Field(description="The --name given.")
    trigger_word: str
    total_images: int = Field(ge=0)
    shot_distribution: dict[str, int] = Field(
        description="Images per shot type: close, mid, far (and unknown when any)."
    )
    top_concepts: list[TopConcept]
    created_at: str = Field(description="Local time of this run, ISO 8601 without zone.")
    generator: str = Field("", description="The beaver version that wrote the dataset.")
    input: str = Field("", description="The input folder.")
    captions: SourceInfo | None = Field(None, description="The --captions file, if any.")
    face_cache: SourceInfo | None = Field(None, description="The --facevault-cache, if any.")
    faces_from: Literal["face cache", "detector", "none"] = Field(
        "none", description="Where face boxes came from (none: every image went to mid)."
    )
    shot_thresholds: dict[str, float] = Field(
        default_factory=dict, description="face height / image height cut-offs used."
    )
    quality: dict[str, Any] = Field(
        default_factory=dict, description="Counts of flagged and excluded photos by reason."
    )
    excluded: dict[str, list[str]] = Field(
        default_factory=dict, description="Excluded source photos by reason (nothing deleted)."
    )
    warnings: list[str] = Field(default_factory=list, description="Distribution warnings.")
    recommended_mix: dict[str, float] = Field(
        default_factory=dict, description="The guidelines' share per shot type."
    )
    taxonomy: str = Field("", description="The --taxonomy file used ('': the built-in one).")
    emphasis: list[str] = Field(
        default_factory=list,
        description="Images tagged for emphasis in `beaver preview` (beaver train repeats "
        "them more), relative to the dataset folder.",
    )


class ShotEntry(_Frozen):
    """shots.json: one image's shot classification."""

    shot_type: ShotName
    face_ratio: float | None = Field(
        description="Face height / image height of the target face (null: no face)."
    )
    confidence: float = Field(ge=0, le=1)
    face_bbox: list[int] | None = Field(description="[x1, y1, x2, y2] in source pixels.")
    source: str = Field(description="The original photo's path.")


class PreviewDataset(_Frozen):
    """preview_manifest.json's dataset block."""

    name: str
    trigger: str
    total_images: int


class PreviewImage(_Frozen):
    """preview_manifest.json: one image for the preview UI."""

    filename: str = Field(description="Path relative to the dataset folder.")
    shot_type: ShotName
    shot_confidence: float
    caption: str
    concepts: list[str]
    pose: str | None
    setting: str | None
    excluded: bool = Field(False, description="Left out of training in `beaver preview`.")
    emphasis: bool = Field(False, description="Tagged for emphasis in `beaver preview`.")


class PreviewManifest(_Frozen):
    """preview_manifest.json."""

    dataset: PreviewDataset
    images: list[PreviewImage]


def schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema per file name (docs/schemas/<name>.schema.json)."""
    from pydantic import RootModel

    return {
        "metadata": Metadata.model_json_schema(),
        "shots": RootModel[dict[str, ShotEntry]].model_json_schema(),
        "concepts": RootModel[dict[str, ImageConcepts]].model_json_schema(),
        "preview_manifest": PreviewManifest.model_json_schema(),
    }


def write_json(path: Path, data: BaseModel | dict[str, Any]) -> None:
    """Pretty JSON, atomically."""
    if isinstance(data, BaseModel):
        payload: Any = data.model_dump(mode="json")
    else:
        payload = {
            k: (v.model_dump(mode="json") if isinstance(v, BaseModel) else v)
            for k, v in data.items()
        }
    write_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
