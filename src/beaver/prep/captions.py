"""Find each dataset photo's caption in a captions file, however the two folders relate.

captions.json keys are paths relative to the folder that was captioned; prep's input may
be that folder, a copy of it, or a folder of exported copies. A photo is matched by its
path relative to the captioned folder, then relative to prep's input, then by a file name
that only one entry has, then by content hash (entries written by `beaver caption` carry
one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from beaver.captions.schema import CaptionFile, ImageCaption


def match_captions(
    file: CaptionFile,
    photos: Sequence[Path],
    input_dir: Path,
    hashes: Mapping[Path, str],
) -> dict[Path, ImageCaption]:
    """The caption entry of every photo that has one."""
    entries = file.images
    captioned = Path(file.input) if file.input else None
    by_name: dict[str, list[str]] = {}
    by_sha: dict[str, str] = {}
    for name, entry in entries.items():
        by_name.setdefault(PurePosixPath(name).name.casefold(), []).append(name)
        if entry.sha256:
            by_sha.setdefault(entry.sha256, name)
    out: dict[Path, ImageCaption] = {}
    for photo in photos:
        key: str | None = _relative(photo, captioned) if captioned else None
        if key is None or key not in entries:
            key = _relative(photo, input_dir)
        if key is None or key not in entries:
            named = by_name.get(photo.name.casefold(), [])
            key = named[0] if len(named) == 1 else None
        if key is None and photo in hashes:
            key = by_sha.get(hashes[photo])
        if key is not None and key in entries:
            out[photo] = entries[key]
    return out


def _relative(photo: Path, root: Path) -> str | None:
    try:
        return PurePosixPath(photo.resolve().relative_to(root.resolve())).as_posix()
    except (ValueError, OSError):
        return None
