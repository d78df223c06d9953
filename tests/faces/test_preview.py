"""`--preview`: contact sheets of face tiles per person and a self-contained index.html."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from beaver.faces import preview
from beaver.faces.export import ExportFace, ExportPerson, ExportPhoto
from beaver.faces.preview import write_preview
from beaver.images import LoadedImage, load_image

Box = tuple[float, float, float, float]
Colour = tuple[int, int, int]
RED, GREEN, BLUE, YELLOW = (220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 220, 40)


def _photo(
    path: Path, size: tuple[int, int], squares: list[tuple[Box, Colour]], *, rotate: bool = False
) -> Path:
    """A JPEG whose upright view is ``size`` with coloured squares on grey."""
    image = Image.new("RGB", size, (120, 120, 120))
    for (x1, y1, x2, y2), colour in squares:
        image.paste(colour, (int(x1), int(y1), int(x2), int(y2)))
    path.parent.mkdir(parents=True, exist_ok=True)
    if rotate:  # stored turned back, with EXIF orientation 6 to show it upright
        exif = Image.Exif()
        exif[0x0112] = 6
        image.transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif.tobytes())
    else:
        image.save(path, quality=95)
    return path


def _face(face_id: int, box: Box, score: float = 0.9) -> ExportFace:
    return ExportFace(face_id, box, score)


def _tile(sheet: Path, index: int, tile: int, columns: int = 10) -> np.ndarray[Any, Any]:
    with Image.open(sheet) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=float)
    row, col = divmod(index, columns)
    return pixels[row * tile : (row + 1) * tile, col * tile : (col + 1) * tile]


def _centre_colour(tile: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    side = tile.shape[0]
    mid = tile[side // 3 : 2 * side // 3, side // 3 : 2 * side // 3]
    return np.asarray(mid.reshape(-1, 3).mean(axis=0))


def _close(actual: np.ndarray[Any, Any], colour: Colour, tolerance: float = 15) -> bool:
    return bool(np.abs(actual - np.array(colour)).max() < tolerance)


def test_sheets_show_each_face_best_first(tmp_path: Path) -> None:
    group = _photo(
        tmp_path / "lib" / "group.jpg",
        (400, 200),
        [((20, 20, 80, 80), RED), ((150, 50, 210, 110), GREEN), ((300, 100, 360, 160), BLUE)],
    )
    solo = _photo(tmp_path / "lib" / "solo.jpg", (100, 100), [((30, 30, 70, 70), YELLOW)])
    alice = ExportPerson(
        "person_001",
        "Alice",
        (
            ExportPhoto(group, "g", (_face(1, (20, 20, 80, 80), 0.5),)),
            ExportPhoto(solo, "s", (_face(2, (30, 30, 70, 70), 0.99),)),
        ),
    )
    # Bob has two faces in the same group photo (a mirror, say).
    bob = ExportPerson(
        "person_002",
        None,
        (
            ExportPhoto(
                group,
                "g",
                (_face(3, (150, 50, 210, 110), 0.7), _face(4, (300, 100, 360, 160), 0.8)),
            ),
        ),
    )
    index = write_preview([alice, bob], tmp_path / "preview", tile=48)
    assert index == tmp_path / "preview" / "index.html"
    sheet_a, sheet_b = (
        tmp_path / "preview" / "person_001.jpg",
        tmp_path / "preview" / "person_002.jpg",
    )
    for sheet in (sheet_a, sheet_b):
        with Image.open(sheet) as image:
            assert image.size == (96, 48)
            assert image.format == "JPEG"
    assert _close(_centre_colour(_tile(sheet_a, 0, 48)), YELLOW)  # score 0.99 first
    assert _close(_centre_colour(_tile(sheet_a, 1, 48)), RED)
    assert _close(_centre_colour(_tile(sheet_b, 0, 48)), BLUE)
    assert _close(_centre_colour(_tile(sheet_b, 1, 48)), GREEN)
    # The margin shows some background around the face.
    corner = _tile(sheet_a, 1, 48)[:3, :3].reshape(-1, 3).mean(axis=0)
    assert _close(corner, (120, 120, 120), 25)


def test_each_photo_is_decoded_once_at_a_reduced_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = _photo(
        tmp_path / "big.jpg",
        (2000, 1000),
        [((200, 200, 800, 800), RED), ((1200, 300, 1500, 600), BLUE)],
    )
    calls: list[tuple[Path, int | None]] = []
    real = load_image

    def spy(path: Path, *, data: bytes | None = None, max_side: int | None = None) -> LoadedImage:
        calls.append((path, max_side))
        return real(path, data=data, max_side=max_side)

    monkeypatch.setattr("beaver.faces.preview.load_image", spy)
    people = [
        ExportPerson(
            "person_001", "A", (ExportPhoto(big, "b", (_face(1, (200, 200, 800, 800)),)),)
        ),
        ExportPerson(
            "person_002", "B", (ExportPhoto(big, "b", (_face(2, (1200, 300, 1500, 600)),)),)
        ),
    ]
    write_preview(people, tmp_path / "out", tile=64)
    # One decode for both people; the smallest crop (300 px box, 450 px with margin) spans
    # 64 px at 2000 * 64 / 450 = 285 px on the long side.
    assert calls == [(big, 285)]
    assert _close(_centre_colour(_tile(tmp_path / "out" / "person_001.jpg", 0, 64)), RED)
    assert _close(_centre_colour(_tile(tmp_path / "out" / "person_002.jpg", 0, 64)), BLUE)


def test_small_faces_get_a_full_size_decode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = _photo(tmp_path / "p.jpg", (300, 200), [((100, 100, 120, 120), GREEN)])
    calls: list[int | None] = []
    real = load_image

    def spy(path: Path, *, data: bytes | None = None, max_side: int | None = None) -> LoadedImage:
        calls.append(max_side)
        return real(path, data=data, max_side=max_side)

    monkeypatch.setattr("beaver.faces.preview.load_image", spy)
    person = ExportPerson(
        "person_001", None, (ExportPhoto(photo, "p", (_face(1, (100, 100, 120, 120)),)),)
    )
    write_preview([person], tmp_path / "out", tile=64)
    assert calls == [None]
    assert _close(_centre_colour(_tile(tmp_path / "out" / "person_001.jpg", 0, 64)), GREEN)


def test_boxes_are_in_oriented_pixels(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "r.jpg", (120, 200), [((10, 140, 50, 180), RED)], rotate=True)
    person = ExportPerson(
        "person_001", None, (ExportPhoto(photo, "r", (_face(1, (10, 140, 50, 180)),)),)
    )
    write_preview([person], tmp_path / "out", tile=40)
    assert _close(_centre_colour(_tile(tmp_path / "out" / "person_001.jpg", 0, 40)), RED)


def test_unreadable_photos_get_grey_tiles(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    good = _photo(tmp_path / "good.jpg", (100, 100), [((20, 20, 80, 80), BLUE)])
    person = ExportPerson(
        "person_001",
        "A",
        (
            ExportPhoto(tmp_path / "missing.jpg", "m", (_face(1, (0, 0, 10, 10), 0.99),)),
            ExportPhoto(broken, "x", (_face(2, (0, 0, 10, 10), 0.98),)),
            ExportPhoto(good, "g", (_face(3, (20, 20, 80, 80), 0.1),)),
        ),
    )
    write_preview([person], tmp_path / "out", tile=32)
    sheet = tmp_path / "out" / "person_001.jpg"
    assert _close(_centre_colour(_tile(sheet, 0, 32)), preview.GREY, 4)
    assert _close(_centre_colour(_tile(sheet, 1, 32)), preview.GREY, 4)
    assert _close(_centre_colour(_tile(sheet, 2, 32)), BLUE)


def test_max_faces_and_rows_of_ten(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.jpg", (100, 100), [((25, 25, 75, 75), RED)])
    faces = tuple(_face(i, (25, 25, 75, 75), i / 100) for i in range(1, 26))
    person = ExportPerson("person_001", "Many", (ExportPhoto(photo, "p", faces),))
    write_preview([person], tmp_path / "out", tile=16, max_faces=12)
    with Image.open(tmp_path / "out" / "person_001.jpg") as image:
        assert image.size == (160, 32)
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "25 faces in 1 photo, best 12 shown" in page
    assert 'width="160" height="32"' in page


def test_index_is_escaped_self_contained_and_links_sources(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "my photos" / "a&b.jpg", (60, 60), [((10, 10, 50, 50), RED)])
    evil = '<script>alert("x")</script> & Co'
    people = [
        ExportPerson("person_001", evil, (ExportPhoto(photo, "p", (_face(1, (10, 10, 50, 50)),)),)),
        ExportPerson("person_002", None, ()),
    ]
    out = tmp_path / "preview"
    index = write_preview(people, out, title="Faces <&>")
    page = index.read_text(encoding="utf-8")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in page
    assert "<title>Faces &lt;&amp;&gt;</title>" in page
    assert 'src="person_001.jpg"' in page
    assert 'href="../my%20photos/a%26b.jpg"' in page
    assert str(photo).replace("&", "&amp;") in page
    assert "1 face in 1 photo" in page
    assert "No faces." in page  # person_002 has no sheet
    assert not (out / "person_002.jpg").exists()
    # Nothing external: no scripts, stylesheets, fonts or remote URLs.
    assert not re.search(r"https?://|<script|<link|@import|url\(", page)


def test_links_are_absolute_file_uris_when_relative_is_impossible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def other_drive(path: str, start: str) -> str:
        raise ValueError("path is on mount 'D:', start on mount 'C:'")

    monkeypatch.setattr("os.path.relpath", other_drive)
    photo = tmp_path / "x y.jpg"
    assert preview._href(photo, tmp_path / "out") == photo.as_uri()
    assert preview._href(photo, tmp_path / "out").startswith("file:///")


def test_rerun_replaces_files_and_leaves_no_temp_files(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.jpg", (100, 100), [((20, 20, 80, 80), RED)])
    person = ExportPerson(
        "person_001", "A", (ExportPhoto(photo, "p", (_face(1, (20, 20, 80, 80)),)),)
    )
    out = tmp_path / "out"
    write_preview([person], out, tile=32)
    _photo(photo, (100, 100), [((20, 20, 80, 80), GREEN)])
    write_preview([person], out, tile=32)
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "person_001.jpg"]
    assert _close(_centre_colour(_tile(out / "person_001.jpg", 0, 32)), GREEN)


@pytest.mark.shared_data
def test_preview_of_real_photos(shared_faces: Path, tmp_path: Path) -> None:
    with (shared_faces / "MANIFEST.csv").open(encoding="utf-8", newline="") as fh:
        rows = [
            r
            for r in csv.DictReader(fh)
            if r["file"].startswith(("deepface/", "face_recognition/"))
        ]
    people: dict[str, list[ExportPhoto]] = {}
    for i, row in enumerate(rows):
        w, h = int(row["width"]), int(row["height"])
        face = _face(i, (w * 0.3, h * 0.2, w * 0.7, h * 0.6))
        people.setdefault(row["identity"], []).append(
            ExportPhoto(shared_faces / row["file"], row["sha256"], (face,))
        )
    persons = [
        ExportPerson(f"person_{i:03d}", name, tuple(photos))
        for i, (name, photos) in enumerate(sorted(people.items()))
    ]
    index = write_preview(persons, tmp_path / "out", tile=64)
    page = index.read_text(encoding="utf-8")
    for person in persons:
        count = min(len(person.photos), 60)
        with Image.open(tmp_path / "out" / f"{person.key}.jpg") as sheet:
            columns = min(count, 10)
            assert sheet.size == (columns * 64, -(-count // columns) * 64)
            pixels = np.asarray(sheet.convert("RGB"), dtype=float)
        # Real photos, not grey placeholders: every tile has detail.
        for i in range(count):
            y, x = divmod(i, columns)
            assert pixels[y * 64 : (y + 1) * 64, x * 64 : (x + 1) * 64].std() > 10
        assert f'id="{person.key}"' in page
