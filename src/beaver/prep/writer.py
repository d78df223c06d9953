"""Lay out a dataset folder: named images, captions beside them and in captions/, idempotently.

Names are ``<trigger>_<shot>_<NNNN>.<ext>`` in ``close/ mid/ far/ unknown/`` (or all in the
dataset folder with ``--no-organize-by-shot``). A photo keeps its name across re-runs:
``.beaver-prep.json`` maps each photo's content hash to its name, new photos get the next
free number, and files of photos no longer in the input are removed (they are beaver's
own copies, never an original). Every write is atomic (temp file + rename).

Trainers read the pixels as stored and ignore EXIF orientation (sd-scripts opens images
with Pillow and never transposes them), so a photo stored sideways with an orientation
tag, or in a format trainers cannot read (HEIC, TIFF, AVIF…), is written as an upright
JPEG (PNG when it has transparency) instead of being copied or linked.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from beaver.errors import DiskFullError, InputError
from beaver.fsutil import write_atomic
from beaver.images import ImageLoadError, open_image
from beaver.prep.dataset import ShotName
from beaver.prep.edits import EXCLUDED_DIR

STATE = ".beaver-prep.json"
CAPTIONS_DIR = "captions"
TRAINER_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
"""What sd-scripts, diffusers and ComfyUI's loaders all read."""
SHOT_FOLDERS: tuple[ShotName, ...] = ("close", "mid", "far", "unknown")


@dataclass(frozen=True)
class Item:
    """One photo to place."""

    source: Path
    key: str
    """Identifies the photo across runs: its content hash (plus its path for kept copies)."""
    shot: ShotName
    caption: str
    crop: tuple[int, int, int, int] | None = None
    """Part of the photo to keep (``--crop``), in its upright pixels; None: all of it."""


@dataclass(frozen=True)
class Placed:
    """Where a photo went: its name relative to the dataset folder."""

    item: Item
    name: str
    converted: bool


def place(
    dataset: Path,
    items: Sequence[Item],
    *,
    trigger: str,
    organize_by_shot: bool = True,
    symlink: bool = False,
) -> list[Placed]:
    """Write every item into ``dataset`` (see the module docstring); returns them in order."""
    try:
        return _place(
            dataset, items, trigger=trigger, organize_by_shot=organize_by_shot, symlink=symlink
        )
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(exc.filename or dataset) from None
        where = exc.filename or dataset
        raise InputError(
            where,
            f"cannot write the dataset ({exc.strerror or type(exc).__name__})",
            hint="Pick a writable folder with --output.",
        ) from None


def _place(
    dataset: Path,
    items: Sequence[Item],
    *,
    trigger: str,
    organize_by_shot: bool,
    symlink: bool,
) -> list[Placed]:
    dataset.mkdir(parents=True, exist_ok=True)
    old, old_crops = _load_state(dataset)
    names = _assign(items, old, trigger=trigger, organize_by_shot=organize_by_shot)
    placed = []
    for item in items:
        name = names[item.key]
        fresh = old_crops.get(item.key) != item.crop or old.get(item.key) != name
        converted = _write_image(
            item.source, dataset / name, symlink=symlink, crop=item.crop, fresh=fresh
        )
        stem = Path(name).with_suffix("")
        text = item.caption.strip() + "\n"
        _write_text(dataset / f"{stem}.txt", text)
        _write_text(dataset / CAPTIONS_DIR / f"{Path(name).stem}.txt", text)
        placed.append(Placed(item, name, converted))
    keep = {p.name for p in placed}
    kept_stems = {Path(name).stem for name in keep}
    for stale in sorted(set(old.values()) - keep):
        _remove_outputs(dataset, stale, kept_stems)
    write_atomic(
        dataset / STATE,
        json.dumps(
            {
                "version": 1,
                "names": {p.item.key: p.name for p in placed},
                "crops": {p.item.key: list(p.item.crop) for p in placed if p.item.crop},
            },
            indent=1,
        )
        + "\n",
    )
    return placed


def _load_state(dataset: Path) -> tuple[dict[str, str], dict[str, tuple[int, ...]]]:
    path = dataset / STATE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}, {}  # beaver's own bookkeeping: a damaged file only costs stable names
    names = data.get("names") if isinstance(data, dict) else None
    if not isinstance(names, dict):
        return {}, {}
    crops = data.get("crops") if isinstance(data.get("crops"), dict) else {}
    return (
        {str(k): str(v) for k, v in names.items() if _safe_name(str(v))},
        {str(k): tuple(int(x) for x in v) for k, v in crops.items() if isinstance(v, list)},
    )


def _safe_name(name: str) -> bool:
    parts = Path(name).parts
    return bool(parts) and ".." not in parts and not Path(name).is_absolute()


_NUMBER = re.compile(r"_(\d{4,})$")


def _assign(
    items: Sequence[Item], old: dict[str, str], *, trigger: str, organize_by_shot: bool
) -> dict[str, str]:
    """Names for the items: the old one where it still fits, else the next free number."""
    names: dict[str, str] = {}
    used: dict[str, set[int]] = {}

    def folder_and_prefix(shot: ShotName) -> tuple[str, str]:
        return (f"{shot}/" if organize_by_shot else ""), f"{trigger}_{shot}_"

    for item in items:
        previous = old.get(item.key)
        folder, prefix = folder_and_prefix(item.shot)
        if previous is None or item.key in names:
            continue
        path = Path(previous)
        if path.parent.as_posix() == EXCLUDED_DIR:
            # Set aside in preview: it keeps its number (prep moves it back to excluded/).
            path = Path(folder or ".") / path.name
            previous = path.as_posix()
        match = _NUMBER.search(path.stem)
        fits = (
            match is not None
            and previous.startswith(folder + prefix)
            and path.parent.as_posix() == (folder.rstrip("/") or ".")
            and path.suffix == _target_suffix(item.source)
        )
        if fits and match is not None:
            number = int(match.group(1))
            if number not in used.setdefault(item.shot, set()):
                used[item.shot].add(number)
                names[item.key] = previous
    for item in items:
        if item.key in names:
            continue
        folder, prefix = folder_and_prefix(item.shot)
        taken = used.setdefault(item.shot, set())
        number = next(n for n in range(1, len(taken) + 2) if n not in taken)
        taken.add(number)
        names[item.key] = f"{folder}{prefix}{number:04d}{_target_suffix(item.source)}"
    return names


def _target_suffix(source: Path) -> str:
    suffix = source.suffix.lower()
    if suffix in TRAINER_SUFFIXES and _orientation(source) == 1:
        return ".jpg" if suffix == ".jpeg" else suffix
    return ".png" if _has_alpha(source) else ".jpg"


def _orientation(path: Path) -> int:
    return _probe(path)[0]


def _has_alpha(path: Path) -> bool:
    return _probe(path)[1]


def _probe(path: Path) -> tuple[int, bool]:
    """EXIF orientation and transparency, from the header; remembered per file version."""
    try:
        st = path.stat()
    except OSError:
        return 1, False
    return _probe_file(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _probe_file(path: str, size: int, mtime_ns: int) -> tuple[int, bool]:
    del size, mtime_ns  # part of the cache key: a changed file is read again
    try:
        with Image.open(path) as image:
            value = image.getexif().get(0x0112, 1)
            alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    except (OSError, ValueError, SyntaxError):
        return 1, False
    return (int(value) if isinstance(value, int) and 1 <= value <= 8 else 1), alpha


def _write_image(
    source: Path,
    target: Path,
    *,
    symlink: bool,
    crop: tuple[int, int, int, int] | None = None,
    fresh: bool = False,
) -> bool:
    """Copy, link or convert ``source`` to ``target``; returns whether it was converted.

    ``fresh``: the target on disk may be from another crop or photo; write it again.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    wanted = _target_suffix(source)
    suffix = source.suffix.lower()
    direct = (
        crop is None
        and suffix in TRAINER_SUFFIXES
        and _orientation(source) == 1
        and target.suffix == wanted
    )
    if direct and symlink:
        real = source.resolve()
        if target.is_symlink() and target.readlink() == real:
            return False
        _atomic_link(real, target)
        return False
    if direct:
        if _same_copy(source, target):
            return False
        _atomic_copy(source, target)
        return False
    if not fresh and _same_copy(source, target):
        return True
    try:
        image = open_image(source)
    except ImageLoadError as exc:
        raise InputError(source, exc.reason) from None
    if crop is not None:
        image = image.crop(crop)
    with tempfile.NamedTemporaryFile(
        dir=target.parent, prefix=f".{target.name}-", suffix=target.suffix, delete=False
    ) as handle:
        tmp = Path(handle.name)
    try:
        if target.suffix == ".png":
            image.save(tmp, format="PNG")
        elif target.suffix == ".webp":
            image.save(tmp, format="WEBP", quality=95)
        elif target.suffix == ".bmp":
            image.convert("RGB").save(tmp, format="BMP")
        else:
            image.convert("RGB").save(tmp, format="JPEG", quality=95)
        shutil.copystat(source, tmp)  # mtime marks the copy as made from this source
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


def _same_copy(source: Path, target: Path) -> bool:
    """``target`` is a regular file made from ``source`` in an earlier run (same mtime)."""
    if target.is_symlink() or not target.is_file():
        return False
    return int(target.stat().st_mtime) == int(source.stat().st_mtime)


def _atomic_copy(source: Path, target: Path) -> None:
    with tempfile.NamedTemporaryFile(
        dir=target.parent, prefix=f".{target.name}-", delete=False
    ) as handle:
        tmp = Path(handle.name)
    try:
        shutil.copy2(source, tmp)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _atomic_link(real: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}-{os.getpid()}.link")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(real)
    tmp.replace(target)


def _write_text(path: Path, text: str) -> None:
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    write_atomic(path, text, durable=False)  # atomic; made again by a re-run if lost


def _remove_outputs(dataset: Path, name: str, kept_stems: set[str]) -> None:
    """Remove a stale dataset image and its two caption files (beaver's own outputs).

    captions/ is flat: its file stays when a kept image has the same stem (an image that
    moved between folders, e.g. back from excluded/).
    """
    stem = Path(name).with_suffix("")
    paths = [dataset / name, dataset / f"{stem}.txt"]
    if Path(name).stem not in kept_stems:
        paths.append(dataset / CAPTIONS_DIR / f"{Path(name).stem}.txt")
    for path in paths:
        if path.is_symlink() or path.is_file():
            path.unlink()
