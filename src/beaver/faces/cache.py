"""``outputs/facevault/face_cache.json``: what ``beaver prep`` reads to classify shots.

The database is the source of truth; this file is regenerated from it after every scan,
cluster, label and export, atomically. The schema is in docs/schemas/face_cache.schema.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from beaver import __version__
from beaver.faces.store import FaceStore, person_key
from beaver.fsutil import write_atomic

CACHE_NAME = "face_cache.json"


class CacheFace(BaseModel):
    """One face of a photo."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    face_id: int = Field(description="The face's id in the face store (`face label --reject`).")
    bbox: tuple[float, float, float, float] = Field(
        description="[x1, y1, x2, y2] in original-image pixels, EXIF orientation applied."
    )
    score: float = Field(description="Detector confidence, 0-1.")
    landmarks: list[tuple[float, float]] = Field(
        description="Five points (eyes, nose, mouth corners) in original pixels; may be empty."
    )
    person: str | None = Field(description="Person id (`person_001`), null when unassigned.")
    name: str | None = Field(description="The person's name, null when unnamed or unassigned.")


class CacheImage(BaseModel):
    """One photo: its size and every face found in it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: int = Field(description="Width in pixels after EXIF orientation.")
    height: int = Field(description="Height in pixels after EXIF orientation.")
    sha256: str = Field(description="Content hash; copies of a photo share it.")
    source: str | None = Field(
        None, description="For an exported copy: the original photo's path; null for originals."
    )
    faces: list[CacheFace] = Field(description="Faces, best first; empty when none was found.")


class FaceCache(BaseModel):
    """The whole file, keyed by absolute photo path."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    generator: str = Field(description="The beaver version that wrote the file.")
    engine: str | None = Field(description="Detector and recognizer that found the faces.")
    images: dict[str, CacheImage] = Field(description="Absolute path → photo.")


def cache_schema() -> dict[str, Any]:
    """JSON Schema of face_cache.json."""
    return FaceCache.model_json_schema()


def build_cache(store: FaceStore, aliases: dict[str, str] | None = None) -> FaceCache:
    """Build the cache from the store; ``aliases`` maps exported copies to their originals."""
    images: dict[str, dict[str, Any]] = {}
    for row in store.cache_rows():
        path, width, height, sha, face_id, *box, score, marks, pid, name, rejected = row
        entry = images.setdefault(
            path, {"width": width, "height": height, "sha256": sha, "faces": []}
        )
        if face_id is None or rejected:
            continue
        entry["faces"].append(
            CacheFace(
                face_id=face_id,
                bbox=(box[0], box[1], box[2], box[3]),
                score=score,
                landmarks=[tuple(p) for p in json.loads(marks)] if marks else [],
                person=None if pid is None else person_key(pid),
                name=name,
            )
        )
    for copy, original in (aliases or {}).items():
        if original in images and copy not in images:
            images[copy] = {**images[original], "source": original}
    return FaceCache(
        generator=f"beaver {__version__}",
        engine=store.get_meta("engine"),
        images={p: CacheImage(**v) for p, v in images.items()},
    )


def write_cache(store: FaceStore, folder: Path, aliases: dict[str, str] | None = None) -> Path:
    """Regenerate ``folder/face_cache.json`` atomically; return its path."""
    cache = build_cache(store, aliases)
    path = folder / CACHE_NAME
    write_atomic(path, cache.model_dump_json(indent=1) + "\n")
    return path


def read_cache(path: Path) -> FaceCache:
    """Load and validate a face cache (``beaver prep`` uses this)."""
    return FaceCache.model_validate_json(path.read_bytes())
