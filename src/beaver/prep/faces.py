"""The faces of ``beaver prep``'s input photos: from face_cache.json, or detected on the fly.

The face cache is keyed by the absolute path of each photo the scan saw. Photos exported
elsewhere (``outputs/facevault/organized/<Name>/``) or copied by hand are found by content
(sha256), so a cache built from the original library still describes its copies.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from threading import BoundedSemaphore
from typing import Literal

from pydantic import ValidationError

from beaver.errors import InputError
from beaver.faces.cache import CACHE_NAME, CacheImage, FaceCache, read_cache
from beaver.faces.scan import ScanPlan, detector_slots, find_faces
from beaver.images import ImageLoadError, LoadedImage, load_image
from beaver.interfaces import FaceDetector
from beaver.prep.shots import Face, PersonRef, ShotResult, ShotThresholds, classify

SCAN_HINT = "Run `beaver face scan` to rebuild it, or leave out the face cache."

DETECT_PLAN = ScanPlan(roots=(), min_size=10, decode_size=1000)
"""Filters for on-the-fly detection: the scan's, but keeping faces down to 10 px, because a
far shot's face is small (the scan's 40 px, meant for recognition, turns some far shots of
the calibration set into unknown)."""


@dataclass(frozen=True)
class ImageFaces:
    """One photo's size and faces, wherever they came from."""

    width: int
    height: int
    faces: tuple[Face, ...]
    source: str
    """The original photo's path (for a copy, the photo it was copied from)."""
    matched_by: Literal["path", "sha256", "detected"]
    identities: bool
    """Whether the faces carry person ids and names (cache) or not (detected on the fly)."""

    def classify(self, thresholds: ShotThresholds, target: PersonRef | None) -> ShotResult:
        """Shot type of this photo; ``target`` is ignored when the faces have no identities."""
        return classify(
            self.width,
            self.height,
            self.faces,
            thresholds,
            target if self.identities else None,
            source=self.source,
        )


@dataclass
class FaceLookup:
    """Which input photos have face information, and which do not."""

    found: dict[Path, ImageFaces] = field(default_factory=dict)
    missing: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)
    """Photos that could not be read or decoded, with a short reason."""

    @property
    def total(self) -> int:
        return len(self.found) + len(self.missing) + len(self.failed)

    def summary(self, where: str = "in the face cache") -> str:
        """``"12 of 15 images found in the face cache"``."""
        return f"{len(self.found)} of {self.total} images found {where}"


class FaceCacheIndex:
    """face_cache.json, indexed by path and by content hash."""

    def __init__(self, cache: FaceCache, path: Path | None = None) -> None:
        self.cache = cache
        self.path = path
        self._by_path = cache.images
        self._by_sha: dict[str, tuple[str, CacheImage]] = {}
        for key, image in cache.images.items():
            # An original is a better source than a copy that shares its content.
            held = self._by_sha.get(image.sha256)
            if held is None or (held[1].source is not None and image.source is None):
                self._by_sha[image.sha256] = (key, image)

    @classmethod
    def load(cls, path: Path) -> FaceCacheIndex:
        """Read ``path`` (a face_cache.json, or the folder holding one); raises InputError."""
        if path.is_dir():
            path = path / CACHE_NAME
        try:
            cache = read_cache(path)
        except FileNotFoundError:
            raise InputError(path, "no such face cache.", hint=SCAN_HINT) from None
        except OSError as exc:
            raise InputError(path, f"cannot read the face cache ({exc.strerror}).") from None
        except ValidationError as exc:
            raise InputError(path, _cache_problem(exc), hint=SCAN_HINT) from None
        return cls(cache, path)

    def __len__(self) -> int:
        return len(self._by_path)

    def lookup(self, photo: Path, data: bytes | None = None) -> ImageFaces | None:
        """The cached faces of ``photo``, by its absolute path, else by its content's sha256.

        ``data`` is the file's content when the caller has read it; otherwise the file is
        read only when its path is not in the cache. Raises OSError when it cannot be read.
        """
        for key in _path_keys(photo):
            image = self._by_path.get(key)
            if image is not None:
                return _image_faces(image, image.source or key, "path")
        if not self._by_sha:
            return None
        if data is None:
            data = photo.read_bytes()
        hit = self._by_sha.get(hashlib.sha256(data).hexdigest())
        if hit is None:
            return None
        key, image = hit
        return _image_faces(image, image.source or key, "sha256")

    def match(self, photos: Iterable[Path]) -> FaceLookup:
        """Look up every photo; ``summary()`` of the answer says how many matched."""
        out = FaceLookup()
        for photo in photos:
            try:
                found = self.lookup(photo)
            except OSError as exc:
                out.failed[photo] = (exc.strerror or type(exc).__name__).lower()
                continue
            if found is None:
                out.missing.append(photo)
            else:
                out.found[photo] = found
        return out


def detect_faces_on_the_fly(
    paths: Sequence[Path],
    detector: FaceDetector,
    plan: ScanPlan,
    *,
    on_done: Callable[[Path], None] | None = None,
) -> FaceLookup:
    """Find faces in ``paths`` with a detector plugin, for photos the face cache lacks.

    Uses the scan's filters (``plan.min_score``, ``plan.min_size`` in original pixels) and
    decode size (``plan.decode_size``), decoding in ``plan.workers`` threads. Faces carry no
    identities, so the largest is the subject. Embeddings are not needed: a detector that can
    locate without embedding (:class:`beaver.interfaces.FaceLocator`) is asked to locate only.
    """
    gate = BoundedSemaphore(detector_slots(detector))

    def one(path: Path) -> ImageFaces | str:
        try:
            image = load_image(path, max_side=plan.decode_size)
        except ImageLoadError as exc:
            return exc.reason
        faces = locate_faces(detector, image, plan, gate=gate)
        return ImageFaces(
            width=image.width,
            height=image.height,
            faces=tuple(faces),
            source=str(_absolute(path)),
            matched_by="detected",
            identities=False,
        )

    out = FaceLookup()
    workers = max(1, min(plan.workers, len(paths)))
    with ThreadPoolExecutor(workers, thread_name_prefix="beaver-shots") as pool:
        for path, result in zip(paths, pool.map(one, paths), strict=True):
            if isinstance(result, str):
                out.failed[path] = result
            else:
                out.found[path] = result
            if on_done is not None:
                on_done(path)
    return out


def locate_faces(
    detector: FaceDetector,
    image: LoadedImage,
    plan: ScanPlan,
    *,
    gate: AbstractContextManager[object] | None = None,
) -> list[Face]:
    """Faces of a (reduced) decode in original pixels, filtered as the scan filters them.

    Like :func:`beaver.faces.scan.detect_faces` without the embeddings, which shot
    classification does not need (and without which that function drops a face).
    """
    return [
        Face(bbox=box, score=float(face.score))
        for face, box, _marks in find_faces(detector, image, plan, gate=gate)
    ]


def _image_faces(
    image: CacheImage, source: str, matched_by: Literal["path", "sha256"]
) -> ImageFaces:
    faces = tuple(
        Face(bbox=f.bbox, score=f.score, person=f.person, name=f.name) for f in image.faces
    )
    return ImageFaces(image.width, image.height, faces, source, matched_by, identities=True)


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))  # noqa: PTH100 - no symlink resolution, unlike resolve()


def _path_keys(photo: Path) -> list[str]:
    """The cache keys ``photo`` may be stored under: as given (absolute), then resolved."""
    plain = str(_absolute(photo))
    try:
        resolved = str(photo.resolve())
    except OSError:
        return [plain]
    return [plain] if resolved == plain else [plain, resolved]


def _cache_problem(exc: ValidationError) -> str:
    """One line for a face cache that is not valid JSON or not the schema."""
    first = exc.errors()[0]
    if first["type"] == "json_invalid":
        # pydantic's message names the line and column: "... at line 3 column 2".
        detail = str(first.get("ctx", {}).get("error", first["msg"]))
        return f"not valid JSON: {detail}."
    where = ".".join(str(p) for p in first["loc"]) or "the top level"
    more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
    return f"not a face cache: {where}: {first['msg'].lower()}{more}."
