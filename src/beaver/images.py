"""Decoding photos: EXIF orientation, HEIC, fast reduced-size JPEG decode, and finding them.

This is the one place beaver turns a file into pixels. It reads input files and never writes,
moves or deletes them, and it leaves Pillow's global settings alone (the HEIF opener aside).
"""

from __future__ import annotations

import fnmatch
import io
import os
import re
import stat
import struct
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFile

from beaver.errors import BeaverError

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "ImageLoadError",
    "LoadedImage",
    "find_images",
    "header_size",
    "load_image",
    "open_image",
    "register_heif",
]

_AVIF = find_spec("PIL._avif") is not None
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".heic", ".heif", ".tif", ".tiff", ".bmp"}
    | ({".avif"} if _AVIF else set())
)
"""Lower-case suffixes (with the dot) of the files beaver treats as photos."""

MAX_PIXELS: int = 250_000_000
"""Images with more pixels are refused as decompression bombs (100 MP cameras are real)."""

# Formats we decode, cheapest guess first; the JPEG entry opens MPO files as their first frame.
_FORMATS = ("JPEG", "PNG", "HEIF", "WEBP", "AVIF", "TIFF", "BMP", "GIF")
_FORMAT_NAMES = (
    "JPEG/PNG/HEIC/WebP/AVIF/TIFF/BMP/GIF" if _AVIF else "JPEG/PNG/HEIC/WebP/TIFF/BMP/GIF"
)
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
)
_HEIF_SUFFIXES = frozenset({".heic", ".heif"})
_WHITE = (255, 255, 255)
# EXIF orientation → the transpose that shows the photo upright (as ImageOps.exif_transpose).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_XMP_ORIENTATION = re.compile(rb"tiff:Orientation(?:=\"|>)([1-8])")


class ImageLoadError(BeaverError):
    """A file that cannot be decoded as a photo; ``reason`` is a short lower-case phrase."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """Decoded RGB pixels (EXIF orientation applied) and the original oriented size."""

    pixels: npt.NDArray[np.uint8]
    width: int
    height: int

    @property
    def scale(self) -> float:
        """Decoded width over original width (≤ 1): divide pixel coordinates by it."""
        return float(self.pixels.shape[1]) / self.width


_heif_lock = threading.Lock()
_heif_registered: bool | None = None


def register_heif() -> bool:
    """Register pillow-heif's HEIC/HEIF opener once; False when pillow-heif is not installed."""
    global _heif_registered
    with _heif_lock:
        if _heif_registered is None:
            try:
                import pillow_heif
            except ImportError:
                _heif_registered = False
            else:
                pillow_heif.register_heif_opener()
                _heif_registered = True
        return _heif_registered


def load_image(
    path: Path, *, data: bytes | None = None, max_side: int | None = None
) -> LoadedImage:
    """Decode a photo to RGB pixels, at reduced size (long side ≥ ``max_side``) when asked.

    ``data`` is the file's content when the caller has read it already. Raises ImageLoadError.
    """
    image, width, height = _decode(path, data, max_side)
    # Read-only (a view of Pillow's bytes): a writable copy would cost another ~15 ms at 12 MP.
    return LoadedImage(pixels=np.asarray(image, dtype=np.uint8), width=width, height=height)


def open_image(
    path: Path, *, data: bytes | None = None, max_side: int | None = None
) -> Image.Image:
    """The photo as an upright RGB PIL image; raises ImageLoadError.

    Full resolution, or reduced (long side ≥ ``max_side``, cheaply, as in :func:`load_image`).
    """
    return _decode(path, data, max_side)[0]


def header_size(path: Path, data: bytes) -> tuple[int, int] | None:
    """Stored width and height from the header alone, nothing decoded; None when unreadable.

    EXIF orientation may swap the two; the long side is the same either way.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"PIL\.")
            return _identify(path, data).size
    except (ImageLoadError, OSError, ValueError):
        return None


def _decode(path: Path, data: bytes | None, max_side: int | None) -> tuple[Image.Image, int, int]:
    """Decode to an upright RGB image plus the original oriented width and height."""
    if data is None:
        data = _read(path)
    if not data:
        raise ImageLoadError(path, "empty file")
    try:
        with warnings.catch_warnings():
            # Pillow warns, without naming the file, about odd EXIF or MPO data and big images
            # that decode fine. (Before Python 3.14 this is not thread-safe; a race can only
            # leave this same narrow filter in place.)
            warnings.filterwarnings("ignore", module=r"PIL\.")
            image = _identify(path, data)
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageLoadError(
                    path,
                    f"decompression bomb: {width * height / 1e6:.0f} MP exceeds the "
                    f"{MAX_PIXELS / 1e6:.0f} MP limit",
                )
            if max_side is not None and isinstance(image, _jpeg_class()):
                _draft(image, max_side)
            image.load()
            orientation = _orientation(image)
            rgb = _to_rgb(image)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        # Pillow's own check (TIFF strips, GIF frames) at its stricter 2 x MAX_IMAGE_PIXELS.
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6
        raise ImageLoadError(
            path, f"decompression bomb: over Pillow's {limit:.0f} MP limit"
        ) from exc
    except MemoryError:
        raise
    except Exception as exc:  # Pillow and its plugins fail with many types on bad data
        raise ImageLoadError(path, "truncated or corrupt file") from exc
    if max_side is not None:
        rgb = _shrink(rgb, max_side)
    if orientation in _TRANSPOSE:
        rgb = rgb.transpose(_TRANSPOSE[orientation])
        if orientation >= 5:
            width, height = height, width
    return rgb, width, height


def _read(path: Path) -> bytes:
    """The file's bytes, with the OS's complaint turned into an ImageLoadError."""
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageLoadError(path, "no such file") from exc
    except IsADirectoryError as exc:
        raise ImageLoadError(path, "is a folder, not a file") from exc
    except PermissionError as exc:
        raise ImageLoadError(path, "permission denied") from exc
    except OSError as exc:
        raise ImageLoadError(path, f"cannot read file ({_os_reason(exc)})") from exc


def _jpeg_class() -> type[ImageFile.ImageFile]:
    """Pillow's JPEG image class (imported on first use)."""
    from PIL import JpegImagePlugin

    return JpegImagePlugin.JpegImageFile


def _identify(path: Path, data: bytes) -> ImageFile.ImageFile:
    """Open the header with the first plugin that accepts the content; decode nothing yet.

    This mirrors ``Image.open`` minus its decompression-bomb check, which refuses ~179 MP:
    beaver applies its own MAX_PIXELS instead.
    """
    from PIL import (  # noqa: F401  (importing a plugin registers it)
        BmpImagePlugin,
        GifImagePlugin,
        JpegImagePlugin,
        PngImagePlugin,
        TiffImagePlugin,
        WebPImagePlugin,
    )

    if _AVIF:
        from PIL import AvifImagePlugin  # noqa: F401

    looks_heif = data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS
    heif = (looks_heif or path.suffix.lower() in _HEIF_SUFFIXES) and register_heif()
    prefix = data[:16]
    fp = io.BytesIO(data)
    broken = False
    for name in _FORMATS:
        if name not in Image.OPEN or (name == "HEIF" and not heif):
            continue
        factory, accept = Image.OPEN[name]
        accepted = accept(prefix) if accept is not None else True
        if isinstance(accepted, str) or not accepted:
            continue  # a str means "this format, but its codec is missing"
        # First frame only: the JPEG class reads an MPO's base image without parsing MPF.
        opener = _jpeg_class() if name == "JPEG" else factory
        fp.seek(0)
        try:
            return opener(fp, str(path))
        except (SyntaxError, IndexError, TypeError, struct.error):
            broken = True  # its signature, but a header that does not parse
    if broken:
        raise ImageLoadError(path, "truncated or corrupt file")
    if looks_heif and not heif:
        raise ImageLoadError(path, "HEIC support missing: pip install pillow-heif")
    raise ImageLoadError(path, f"not an image (content is not {_FORMAT_NAMES})")


def _draft(image: ImageFile.ImageFile, max_side: int) -> None:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 scale while the long side stays ≥ max_side."""
    width, height = image.size
    long_side = max(width, height)
    factor = next(f for f in (8, 4, 2, 1) if f == 1 or -(-long_side // f) >= max_side)
    if factor > 1:
        # Pillow picks the largest scale ≤ min(W // w, H // h); asking for (W//f, H//f) gives f.
        image.draft("RGB", (max(1, width // factor), max(1, height // factor)))


def _shrink(image: Image.Image, max_side: int) -> Image.Image:
    """Integer box-reduce when the long side exceeds 2·max_side, keeping it ≥ max_side."""
    long_side = max(image.size)
    if long_side <= 2 * max_side:
        return image
    return image.reduce(long_side // max_side)


def _orientation(image: Image.Image) -> int:
    """The EXIF (or XMP) orientation (1 to 8); 1 when absent or unreadable.

    Read from the raw bytes: never raises, and covers TIFF tags, HEIF and PNG alike.
    """
    tags = getattr(image, "tag_v2", None)  # TIFF: the file's own tags are its EXIF
    if tags is not None:
        value = tags.get(0x0112, 1)
        return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1
    raw = image.info.get("exif")
    if isinstance(raw, bytes):
        return _exif_orientation(raw)
    xmp = image.info.get("xmp")
    if isinstance(xmp, bytes) and (match := _XMP_ORIENTATION.search(xmp)):
        return int(match.group(1))
    return 1


def _exif_orientation(raw: bytes) -> int:
    """Tag 0x0112 of IFD0 in a raw EXIF block (with or without the ``Exif\\0\\0`` header)."""
    if raw.startswith(b"Exif\x00\x00"):
        raw = raw[6:]
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(raw[:4])
    if order is None:
        return 1
    try:
        (ifd,) = struct.unpack_from(order + "I", raw, 4)
        (count,) = struct.unpack_from(order + "H", raw, ifd)
        for entry in range(ifd + 2, min(ifd + 2 + 12 * count, len(raw) - 11), 12):
            tag, kind = struct.unpack_from(order + "HH", raw, entry)
            if tag == 0x0112:
                code = {3: "H", 4: "I"}.get(kind)
                value: int = struct.unpack_from(order + code, raw, entry + 8)[0] if code else 1
                return value if 1 <= value <= 8 else 1
    except struct.error:
        pass
    return 1


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB with transparency composited onto white and wide (16/32-bit) grey scaled to 8 bits."""
    mode = image.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _wide_to_grey(image).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = (image.convert("LA") if mode == "La" else image).convert("RGBA")
        canvas = Image.new("RGB", rgba.size, _WHITE)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image if mode == "RGB" else image.convert("RGB")


def _wide_to_grey(image: Image.Image) -> Image.Image:
    """Scale 16-bit, 32-bit integer or float grey to 8 bits by its range instead of clipping."""
    values = np.asarray(image, dtype=np.float32)
    if image.mode.startswith("I;16"):
        low, top = 0.0, 65535.0  # the format's own range keeps a dark photo dark
    else:
        finite = values[np.isfinite(values)] if image.mode == "F" else values
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        # The range the numbers were most likely written in; stretch only when none fits.
        ranges = (1.0, 255.0, 65535.0) if image.mode == "F" else (255.0, 65535.0)
        top = next((r for r in ranges if low >= 0 and high <= r), 0.0)
        if top:
            low = 0.0
        else:
            top = max(high, low + 1)
    scaled = np.nan_to_num((values - low) * (255.0 / (top - low)), nan=0.0)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def find_images(
    roots: Sequence[Path],
    *,
    recursive: bool = True,
    exclude: Sequence[str] = (),
    on_error: Callable[[Path, str], None] | None = None,
) -> Iterator[Path]:
    """Photos under ``roots``, depth-first by name, skipping hidden names and folder links.

    ``exclude`` globs (case-insensitive) match a path relative to its root or a bare name;
    a folder that matches is not entered. Problems go to ``on_error(path, reason)`` and the
    walk goes on; a root that is an image file is yielded as is.
    """
    excluded = _exclude_matcher(exclude)
    report = on_error or (lambda _path, _reason: None)
    seen: set[str] = set()
    for root in roots:
        for path in _walk_root(Path(root), recursive, excluded, report):
            if len(roots) > 1:  # overlapping roots yield a photo once
                key = os.path.abspath(path)  # noqa: PTH100  (strings: pathlib is slow at 100k)
                if key in seen:
                    continue
                seen.add(key)
            yield Path(path)


_Excluded = Callable[[str, str], bool]
_Report = Callable[[Path, str], None]


def _exclude_matcher(patterns: Sequence[str]) -> _Excluded:
    """One compiled regex for all globs; tests ``(relative posix path, bare name)``."""
    if not patterns:
        return lambda _rel, _name: False
    regex = re.compile(
        "|".join(fnmatch.translate(p.removeprefix("./")) for p in patterns), re.IGNORECASE
    )
    return lambda rel, name: bool(regex.match(rel) or regex.match(name))


def _walk_root(root: Path, recursive: bool, excluded: _Excluded, report: _Report) -> Iterator[str]:
    """Walk one root (a folder, or a single image file)."""
    try:
        mode = root.stat().st_mode
    except FileNotFoundError:
        report(root, "no such folder")
        return
    except OSError as exc:
        report(root, _os_reason(exc))
        return
    if stat.S_ISDIR(mode):
        yield from _walk_dir(os.fspath(root), "", recursive, excluded, report)
    elif stat.S_ISREG(mode) and _is_image_name(root.name):
        if not excluded(root.name, root.name):
            yield os.fspath(root)
    else:
        report(root, "not a folder or an image file")


def _walk_dir(
    folder: str, rel: str, recursive: bool, excluded: _Excluded, report: _Report
) -> Iterator[str]:
    """Depth-first by sorted name; ``rel`` is the folder's path below its root plus "/"."""
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError as exc:
        report(Path(folder), _os_reason(exc))
        return
    for entry in entries:
        name = entry.name
        if name.startswith("."):
            continue
        entry_rel = rel + name
        try:
            # Not following links: a link to a parent folder would loop forever.
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            if recursive and not (excluded(entry_rel, name) or excluded(entry_rel + "/", name)):
                yield from _walk_dir(entry.path, entry_rel + "/", recursive, excluded, report)
        elif _is_image_name(name) and not excluded(entry_rel, name):
            try:
                is_file = entry.is_file()
            except OSError as exc:
                report(Path(entry.path), _os_reason(exc))
                continue
            if is_file:
                yield entry.path
            elif entry.is_symlink() and not Path(entry.path).exists():
                report(Path(entry.path), "broken symbolic link")


def _is_image_name(name: str) -> bool:
    """Whether the name ends in an image suffix, in any letter case."""
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in IMAGE_SUFFIXES


def _os_reason(exc: OSError) -> str:
    """A short lower-case phrase for an OS error."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "no such folder"
    return (exc.strerror or str(exc) or type(exc).__name__).lower()
