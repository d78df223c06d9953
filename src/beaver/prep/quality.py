"""Dataset quality: duplicates, low resolution, blur and photos of other people.

Nothing is deleted: each photo gets a :class:`Verdict` naming its issues, and flagged photos
are left out of the dataset unless the user keeps them (``--keep-all``). The thresholds were
calibrated on the real photos of ``../shared/faces``; docs/prep-quality.md has the numbers.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from beaver.images import load_image

__all__ = [
    "BLUR_THRESHOLD",
    "MAX_DHASH_DISTANCE",
    "MAX_PHASH_DISTANCE",
    "MEASURE_SIDE",
    "MIN_SIDE",
    "ImageFacts",
    "QualityIssue",
    "QualityReport",
    "Verdict",
    "assess",
    "dhash",
    "duplicate_groups",
    "flag_other_people",
    "measure",
    "phash",
    "sharpness",
]

MEASURE_SIDE = 512
"""Long side (px) of the grey image that sharpness and the hashes are computed on."""

MIN_SIDE = 512
"""Default minimum short side (px): SD 1.5 trains at 512; use 1024 for SDXL or Flux."""

BLUR_THRESHOLD = 20.0
"""Sharpness below this is "badly blurred": the sharpest real photo blurred by a 3 px
Gaussian at 512 px scored 15.3, the bluntest real photo 28.0 (docs/prep-quality.md)."""

MAX_PHASH_DISTANCE = 6
"""Near-duplicates differ in at most this many of the 64 pHash bits (copies measured 0 to 2,
resized and re-encoded copies up to 4; the closest distinct photos 8)."""

MAX_DHASH_DISTANCE = 10
"""…and in at most this many dHash bits: a second, cheap check against pHash collisions."""

_TILES = 8  # sharpness: the Laplacian's variance on an 8x8 grid of tiles…
_TILE_PERCENTILE = 90  # …taken at the 90th percentile, i.e. the sharpest ~6 tiles


class QualityIssue(StrEnum):
    """Why a photo is flagged; the value is the key used in metadata.json."""

    DUPLICATE = "duplicate"
    LOW_RESOLUTION = "low_resolution"
    BLURRED = "blurred"
    OTHER_PEOPLE = "other_people"


@dataclass(frozen=True)
class ImageFacts:
    """What the quality checks need to know about one photo, from one reduced decode."""

    path: Path
    width: int
    height: int
    sha256: str
    dhash: int
    phash: int
    sharpness: float

    @property
    def pixels(self) -> int:
        """Original width times height."""
        return self.width * self.height


@dataclass(frozen=True)
class Verdict:
    """One photo's issues; ``duplicate_of`` is the photo kept in its place."""

    path: Path
    issues: tuple[QualityIssue, ...]
    excluded: bool
    duplicate_of: Path | None = None


@dataclass(frozen=True)
class QualityReport:
    """Per-photo verdicts, counts per issue and the settings they were judged by."""

    verdicts: tuple[Verdict, ...]
    min_side: int
    blur_threshold: float
    keep_all: bool

    def count(self, issue: QualityIssue) -> int:
        """How many photos have this issue."""
        return sum(1 for v in self.verdicts if issue in v.issues)

    @property
    def kept(self) -> tuple[Path, ...]:
        """The photos that go into the dataset, in input order."""
        return tuple(v.path for v in self.verdicts if not v.excluded)

    @property
    def excluded(self) -> tuple[Path, ...]:
        """The photos left out, in input order."""
        return tuple(v.path for v in self.verdicts if v.excluded)

    def summary(self) -> dict[str, int | float | bool]:
        """The ``"quality"`` entry of metadata.json: counts, then the thresholds used."""
        return {
            "duplicates": self.count(QualityIssue.DUPLICATE),
            "low_resolution": self.count(QualityIssue.LOW_RESOLUTION),
            "blurred": self.count(QualityIssue.BLURRED),
            "other_people": self.count(QualityIssue.OTHER_PEOPLE),
            "excluded": len(self.excluded),
            "kept": len(self.kept),
            "min_side": self.min_side,
            "blur_threshold": self.blur_threshold,
            "max_phash_distance": MAX_PHASH_DISTANCE,
            "keep_all": self.keep_all,
        }

    def messages(self) -> list[str]:
        """One line per issue found, for the screen."""
        fate = "kept (--keep-all)" if self.keep_all else "left out (--keep-all keeps them)"
        lines = []
        if n := self.count(QualityIssue.DUPLICATE):
            lines.append(f"{_photos(n)} duplicate another photo: one copy of each is kept.")
        if n := self.count(QualityIssue.LOW_RESOLUTION):
            lines.append(f"{_photos(n)} below {self.min_side} px on the short side: {fate}.")
        if n := self.count(QualityIssue.BLURRED):
            lines.append(f"{_photos(n)} badly blurred: {fate}.")
        if n := self.count(QualityIssue.OTHER_PEOPLE):
            lines.append(f"{_photos(n)} show only other people: {fate}.")
        return lines


def _photos(n: int) -> str:
    return "1 photo" if n == 1 else f"{n} photos"


def measure(path: Path, *, data: bytes | None = None) -> ImageFacts:
    """Size, checksum, hashes and sharpness of a photo; raises ImageLoadError."""
    if data is None:
        data = path.read_bytes()
    image = load_image(path, data=data, max_side=MEASURE_SIDE)
    grey = _grey(image.pixels)
    return ImageFacts(
        path=path,
        width=image.width,
        height=image.height,
        sha256=hashlib.sha256(data).hexdigest(),
        dhash=_dhash(grey),
        phash=_phash(grey),
        sharpness=_sharpness(grey),
    )


def _grey(pixels: npt.NDArray[np.uint8]) -> Image.Image:
    """Grey, long side at most MEASURE_SIDE (never enlarged: blur is judged at its own scale)."""
    grey = Image.fromarray(pixels).convert("L")
    w, h = grey.size
    if max(w, h) > MEASURE_SIDE:
        f = MEASURE_SIDE / max(w, h)
        grey = grey.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BOX)
    return grey


def sharpness(pixels: npt.NDArray[np.uint8], box: Sequence[float] | None = None) -> float:
    """How sharp an RGB image (or the region ``box`` = x1, y1, x2, y2 in its pixels) is.

    The 90th percentile, over an 8x8 grid of tiles, of the Laplacian's variance on the grey
    image at a long side of at most 512 px: the sharpest parts count, so a sharp face on a
    plain or defocused background scores as sharp. Higher is sharper; see BLUR_THRESHOLD.
    """
    if box is not None:
        h, w = pixels.shape[:2]
        x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
        x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
        if x2 - x1 < 3 or y2 - y1 < 3:
            return 0.0
        pixels = pixels[y1:y2, x1:x2]
    return _sharpness(_grey(pixels))


def _sharpness(grey: Image.Image) -> float:
    g = np.asarray(grey, dtype=np.float32)
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    g64 = g.astype(np.float64)
    lap = 4 * g64[1:-1, 1:-1] - g64[:-2, 1:-1] - g64[2:, 1:-1] - g64[1:-1, :-2] - g64[1:-1, 2:]
    ys = np.linspace(0, lap.shape[0], _TILES + 1).astype(int)
    xs = np.linspace(0, lap.shape[1], _TILES + 1).astype(int)
    if np.all(np.diff(ys) > 0) and np.all(np.diff(xs) > 0):
        # Every tile's variance at once from tile sums of x and x² (one pass, no loop).
        sums = np.add.reduceat(np.add.reduceat(lap, ys[:-1], axis=0), xs[:-1], axis=1)
        squares = np.add.reduceat(np.add.reduceat(lap * lap, ys[:-1], axis=0), xs[:-1], axis=1)
        counts = np.outer(np.diff(ys), np.diff(xs))
        variances = np.maximum(squares / counts - (sums / counts) ** 2, 0.0)
        return float(np.percentile(variances.ravel(), _TILE_PERCENTILE))
    tiles = [
        float(lap[ys[i] : ys[i + 1], xs[j] : xs[j + 1]].var())
        for i in range(_TILES)
        for j in range(_TILES)
        if ys[i + 1] > ys[i] and xs[j + 1] > xs[j]
    ]
    return float(np.percentile(tiles, _TILE_PERCENTILE))


def dhash(pixels: npt.NDArray[np.uint8]) -> int:
    """64-bit difference hash of an RGB image: is each of 9x8 cells brighter than its left?"""
    return _dhash(_grey(pixels))


def phash(pixels: npt.NDArray[np.uint8]) -> int:
    """64-bit perceptual hash: the 8x8 lowest DCT frequencies of 32x32 grey, above median."""
    return _phash(_grey(pixels))


def _dhash(grey: Image.Image) -> int:
    cells = np.asarray(grey.resize((9, 8), Image.Resampling.BOX), dtype=np.int16)
    return _pack(cells[:, 1:] > cells[:, :-1])


def _phash(grey: Image.Image) -> int:
    small = np.asarray(grey.resize((32, 32), Image.Resampling.BOX), dtype=np.float64)
    dct = _dct_matrix()
    low = (dct @ small @ dct.T)[:8, :8].ravel()
    return _pack(low > np.median(low[1:]))  # the DC term would skew the median


@cache
def _dct_matrix() -> npt.NDArray[np.float64]:
    k = np.arange(32)[:, None]
    i = np.arange(32)[None, :]
    return np.cos(np.pi * (2 * i + 1) * k / 64)


def _pack(bits: npt.NDArray[np.bool_]) -> int:
    return int.from_bytes(np.packbits(bits.ravel()).tobytes(), "big")


def flag_other_people(target_found: bool | None) -> bool:
    """Whether a photo shows only other people: faces were found, none of them the target.

    ``None`` means unknown (no face cache, or the person is not named in it); a photo with no
    face at all is ``None`` too and stays in.
    """
    return target_found is False


def duplicate_groups(
    facts: Sequence[ImageFacts],
    *,
    max_phash_distance: int = MAX_PHASH_DISTANCE,
    max_dhash_distance: int = MAX_DHASH_DISTANCE,
) -> list[list[int]]:
    """Indices of photos that are copies of each other (same bytes, or near in both hashes).

    Groups of two or more, each sorted, in order of their first member. Candidates come from
    a multi-index on the pHash: split into ``max_phash_distance + 1`` chunks, two hashes
    within that distance agree exactly on at least one chunk, so only photos sharing a chunk
    are compared, never all pairs.
    """
    n = len(facts)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    by_sha: dict[str, int] = {}
    for i, fact in enumerate(facts):
        first = by_sha.setdefault(fact.sha256, i)
        if first != i:
            union(first, i)
    for i, j in _near_pairs(facts, max_phash_distance, max_dhash_distance):
        union(i, j)
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        members[find(i)].append(i)
    return [group for _, group in sorted(members.items()) if len(group) > 1]


def _near_pairs(
    facts: Sequence[ImageFacts], max_phash: int, max_dhash: int
) -> list[tuple[int, int]]:
    n = len(facts)
    if n < 2:
        return []
    p = np.array([f.phash for f in facts], dtype=np.uint64)
    d = np.array([f.dhash for f in facts], dtype=np.uint64)
    chunks = max(1, min(64, max_phash + 1))
    bounds = np.linspace(0, 64, chunks + 1).astype(int)
    found: list[npt.NDArray[np.int64]] = []
    for lo, hi in itertools.pairwise(bounds):
        keys = (p >> np.uint64(lo)) & np.uint64((1 << int(hi - lo)) - 1)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        sizes = np.diff(np.r_[starts, n])
        for start, size in zip(starts[sizes > 1], sizes[sizes > 1], strict=True):
            run = order[start : start + size]
            a, b = np.triu_indices(int(size), 1)
            found.append(np.minimum(run[a], run[b]) * n + np.maximum(run[a], run[b]))
    if not found:
        return []
    pairs = np.unique(np.concatenate(found))
    i, j = pairs // n, pairs % n
    near = (_popcount(p[i] ^ p[j]) <= max_phash) & (_popcount(d[i] ^ d[j]) <= max_dhash)
    return list(zip(i[near].tolist(), j[near].tolist(), strict=True))


_BYTE_BITS = np.array([v.bit_count() for v in range(256)], dtype=np.uint8)


def _popcount(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """Set bits per element (numpy ≥ 2 has this built in; 1.26 needs a lookup table)."""
    if hasattr(np, "bitwise_count"):
        return np.asarray(np.bitwise_count(x), dtype=np.int64)
    as_bytes = x.view(np.uint8).reshape(-1, 8)
    counts: npt.NDArray[np.int64] = _BYTE_BITS[as_bytes].sum(axis=1, dtype=np.int64)
    return counts


def assess(
    facts: Sequence[ImageFacts],
    *,
    min_side: int = MIN_SIDE,
    blur_threshold: float = BLUR_THRESHOLD,
    keep_all: bool = False,
    keep_duplicates: bool = False,
    target_found: Mapping[Path, bool | None] | None = None,
) -> QualityReport:
    """Judge every photo; flagged photos are excluded unless ``keep_all``.

    Of each group of duplicates one photo is kept: the most pixels, then the sharpest, then
    the first by path. The others are excluded even with ``keep_all`` (a second copy adds
    nothing to training) unless ``keep_duplicates``. ``target_found`` maps a photo to
    whether the wanted person's face is in it (see :func:`flag_other_people`).
    """
    found = target_found or {}
    duplicate_of: dict[int, int] = {}
    for group in duplicate_groups(facts):
        best = min(group, key=lambda k: (-facts[k].pixels, -facts[k].sharpness, facts[k].path))
        duplicate_of.update((k, best) for k in group if k != best)
    verdicts = []
    for k, fact in enumerate(facts):
        issues: list[QualityIssue] = []
        if k in duplicate_of:
            issues.append(QualityIssue.DUPLICATE)
        if min(fact.width, fact.height) < min_side:
            issues.append(QualityIssue.LOW_RESOLUTION)
        if fact.sharpness < blur_threshold:
            issues.append(QualityIssue.BLURRED)
        if flag_other_people(found.get(fact.path)):
            issues.append(QualityIssue.OTHER_PEOPLE)
        flagged = any(issue is not QualityIssue.DUPLICATE for issue in issues)
        dropped = (k in duplicate_of and not keep_duplicates) or (flagged and not keep_all)
        verdicts.append(
            Verdict(
                path=fact.path,
                issues=tuple(issues),
                excluded=dropped,
                duplicate_of=facts[duplicate_of[k]].path if k in duplicate_of else None,
            )
        )
    return QualityReport(
        verdicts=tuple(verdicts),
        min_side=min_side,
        blur_threshold=blur_threshold,
        keep_all=keep_all,
    )
