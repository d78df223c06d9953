"""``--preview``: a contact sheet of face crops per person and one self-contained index.html.

Each source photo is decoded once, at the smallest size that still fills a tile for its
smallest wanted face, and every tile any person needs from it is cut then.
"""

from __future__ import annotations

import html
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from PIL import Image

from beaver.faces.export import ExportFace, ExportPerson, crop_square, safe_name
from beaver.fsutil import write_atomic
from beaver.images import ImageLoadError, LoadedImage, header_size, load_image

MARGIN = 0.25
COLUMNS = 10
GREY = (128, 128, 128)
BACKGROUND = (24, 24, 24)
FALLBACK_SIDE = 2048
"""Decode size when a photo's header cannot tell its size (the decoder then reports why)."""


@dataclass(frozen=True)
class _Slot:
    """Tile ``index`` of person ``person``'s sheet shows ``face``."""

    person: int
    index: int
    face: ExportFace


def write_preview(
    people: Sequence[ExportPerson],
    out_dir: Path,
    *,
    tile: int = 128,
    max_faces: int = 60,
    title: str = "beaver faces",
) -> Path:
    """Write ``out_dir/<key>.jpg`` per person (best faces first) and ``index.html``; returns it."""
    sheets = _sheet_names(people)
    wanted: dict[Path, list[_Slot]] = {}
    shown: list[int] = []
    for p, person in enumerate(people):
        faces = sorted(
            ((photo.source, face) for photo in person.photos for face in photo.faces),
            key=lambda pair: (-pair[1].score, pair[1].face_id),
        )[:max_faces]
        for index, (source, face) in enumerate(faces):
            wanted.setdefault(source, []).append(_Slot(p, index, face))
        shown.append(len(faces))
    by_person: list[list[Path]] = [[] for _ in people]
    for source, slots in wanted.items():
        for p in dict.fromkeys(s.person for s in slots):
            by_person[p].append(source)
    # Tiles cut early for a later person wait here; each photo is decoded only once.
    ready: dict[tuple[int, int], Image.Image] = {}
    for p, person in enumerate(people):
        for source in by_person[p]:
            if _needs(ready, wanted[source], p):
                ready.update(_cut_tiles(source, wanted[source], tile))
        if shown[p]:
            tiles = [ready.pop((p, i)) for i in range(shown[p])]
            write_atomic(out_dir / sheets[person.key], _sheet(tiles, tile))
    page = _index_html(people, out_dir, sheets, shown, tile, title)
    page_path = out_dir / "index.html"
    write_atomic(page_path, page)
    return page_path


def _needs(ready: dict[tuple[int, int], Image.Image], slots: list[_Slot], person: int) -> bool:
    """Whether any of this person's tiles from the photo is still uncut."""
    return any((s.person, s.index) not in ready for s in slots if s.person == person)


def _sheet_names(people: Sequence[ExportPerson]) -> dict[str, str]:
    """Person key → sheet file name, ``<key>.jpg`` made safe and unique."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for person in people:
        stem = safe_name(person.key) or "person"
        name, n = f"{stem}.jpg", 2
        while name.casefold() in taken:
            name, n = f"{stem}_{n}.jpg", n + 1
        taken.add(name.casefold())
        names[person.key] = name
    return names


def _cut_tiles(source: Path, slots: list[_Slot], tile: int) -> dict[tuple[int, int], Image.Image]:
    """Decode ``source`` once and cut a tile for every slot; grey tiles when it is unreadable."""
    smallest = min(_crop_side(s.face) for s in slots)
    image = _decode(source, smallest, tile)
    if image is None:
        grey = Image.new("RGB", (tile, tile), GREY)
        return {(s.person, s.index): grey for s in slots}
    pixels = Image.fromarray(image.pixels)
    scale = image.scale
    tiles: dict[tuple[int, int], Image.Image] = {}
    for slot in slots:
        x1, y1, x2, y2 = (v * scale for v in slot.face.bbox)
        left, top, side = crop_square((x1, y1, x2, y2), pixels.width, pixels.height, MARGIN)
        crop = pixels.crop((left, top, left + side, top + side))
        tiles[slot.person, slot.index] = crop.resize((tile, tile), Image.Resampling.LANCZOS)
    return tiles


def _crop_side(face: ExportFace) -> float:
    x1, y1, x2, y2 = face.bbox
    return max(x2 - x1, y2 - y1, 1.0) * (1 + 2 * MARGIN)


def _decode(source: Path, crop_side: float, tile: int) -> LoadedImage | None:
    """The photo reduced as far as the smallest crop still spans ``tile`` pixels; None if bad."""
    try:
        data = source.read_bytes()
    except OSError:
        return None
    size = header_size(source, data)
    long_side = max(size) if size else None
    max_side: int | None = FALLBACK_SIDE
    if long_side is not None:
        needed = math.ceil(long_side * tile / crop_side)
        max_side = None if needed >= long_side else needed
    try:
        return load_image(source, data=data, max_side=max_side)
    except ImageLoadError:
        return None


def _sheet(tiles: list[Image.Image], tile: int) -> bytes:
    """The tiles in rows of up to COLUMNS, as JPEG bytes."""
    columns = min(len(tiles), COLUMNS)
    rows = math.ceil(len(tiles) / columns)
    sheet = Image.new("RGB", (columns * tile, rows * tile), BACKGROUND)
    for i, image in enumerate(tiles):
        sheet.paste(image, ((i % columns) * tile, (i // columns) * tile))
    buffer = io.BytesIO()
    sheet.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def _href(source: Path, out_dir: Path) -> str:
    """A link to the photo: relative to the page where possible, else an absolute file:// URI."""
    absolute = source.absolute()
    try:
        relative = os.path.relpath(absolute, out_dir.absolute())
    except ValueError:  # another drive on Windows
        return absolute.as_uri()
    return quote(Path(relative).as_posix())


_STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:2em;background:#fafafa;color:#222}
nav a{margin-right:.8em}section{margin:2em 0;padding-top:1em;border-top:1px solid #ccc}
h2 small{color:#777;font-weight:normal;margin-left:.5em}img{max-width:100%;height:auto}
li{font:12px monospace;word-break:break-all}
"""


def _index_html(
    people: Sequence[ExportPerson],
    out_dir: Path,
    sheets: dict[str, str],
    shown: list[int],
    tile: int,
    title: str,
) -> str:
    """The page: per person its key, name, face count, sheet and source photos."""
    esc = html.escape
    nav = " ".join(f'<a href="#{esc(p.key)}">{esc(p.name or p.key)}</a>' for p in people)
    sections: list[str] = []
    for person, count in zip(people, shown, strict=True):
        total = sum(len(photo.faces) for photo in person.photos)
        label = esc(person.name or "(unnamed)")
        photos = len(person.photos)
        faces = f"{total} face{'s' * (total != 1)} in {photos} photo{'s' * (photos != 1)}"
        if count < total:
            faces += f", best {count} shown"
        if count:
            columns = min(count, COLUMNS)
            size = f'width="{columns * tile}" height="{math.ceil(count / columns) * tile}"'
            sheet = f'<img src="{esc(quote(sheets[person.key]))}" {size} alt="faces of {label}">'
        else:
            sheet = "<p>No faces.</p>"
        links = "".join(
            f'<li><a href="{esc(_href(photo.source, out_dir))}">{esc(str(photo.source))}</a></li>'
            for photo in person.photos
        )
        sections.append(
            f'<section id="{esc(person.key)}"><h2>{label}<small>{esc(person.key)}</small></h2>'
            f"<p>{faces}</p>{sheet}<details><summary>Photos ({len(person.photos)})</summary>"
            f"<ol>{links}</ol></details></section>"
        )
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body><h1>{esc(title)}</h1><nav>{nav}</nav>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
