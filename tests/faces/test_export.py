"""`beaver face export`: organized folders and face crops, manifests, re-runs, and safety."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from beaver.errors import InputError
from beaver.faces import export as export_module
from beaver.faces.export import (
    MANIFEST,
    ExportFace,
    ExportFormat,
    ExportManifest,
    ExportPerson,
    ExportPhoto,
    crop_square,
    export_people,
    manifest_schema,
    person_folders,
    safe_name,
)

RED = (220, 30, 30)
BLUE = (30, 30, 220)
GREEN = (30, 200, 30)
Box = tuple[float, float, float, float]


def _photo(
    path: Path,
    size: tuple[int, int] = (200, 100),
    squares: Iterable[tuple[Box, tuple[int, int, int]]] = (),
    *,
    orientation: int | None = None,
) -> Path:
    """Write a JPEG whose upright (oriented) view is ``size`` with coloured squares on grey."""
    image = Image.new("RGB", size, (120, 120, 120))
    for (x1, y1, x2, y2), colour in squares:
        image.paste(colour, (int(x1), int(y1), int(x2), int(y2)))
    path.parent.mkdir(parents=True, exist_ok=True)
    if orientation == 6:  # stored turned back, so a viewer's 90° turn shows `image`
        exif = Image.Exif()
        exif[0x0112] = 6
        image.transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif.tobytes())
    else:
        image.save(path, quality=95)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _export_photo(path: Path, *faces: tuple[int, Box]) -> ExportPhoto:
    return ExportPhoto(path, _sha(path), tuple(ExportFace(i, box, 0.9) for i, box in faces))


def _tree(root: Path) -> dict[str, str]:
    """Relative path → 'link:<target>' or 'file', for every entry under root."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = f"link:{path.readlink()}"
        elif path.is_file():
            out[rel] = "file"
    return out


def _state(paths: Iterable[Path]) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}


def _collect(into: list[tuple[Path, str]]) -> Callable[[Path, str], None]:
    return lambda path, reason: into.append((path, reason))


def _manifest(folder: Path) -> ExportManifest:
    return ExportManifest.model_validate_json((folder / MANIFEST).read_bytes())


@pytest.fixture
def library(tmp_path: Path) -> dict[str, Path]:
    """Four photos: two named IMG_0001.JPG in different folders, one byte-identical copy."""
    lib = tmp_path / "library"
    a = _photo(lib / "a" / "IMG_0001.JPG", squares=[((10, 10, 60, 60), RED)])
    b = _photo(lib / "b" / "IMG_0001.JPG", squares=[((20, 20, 70, 70), BLUE)])
    c = _photo(lib / "c" / "beach.jpg", squares=[((100, 20, 160, 80), GREEN)])
    dup = lib / "d" / "copy.jpg"
    dup.parent.mkdir()
    dup.write_bytes(c.read_bytes())
    return {"a": a, "b": b, "c": c, "dup": dup}


def _alice(lib: dict[str, Path], *which: str) -> ExportPerson:
    boxes = {"a": (10, 10, 60, 60), "b": (20, 20, 70, 70), "c": (100, 20, 160, 80)}
    boxes["dup"] = boxes["c"]
    ids = {"a": 1, "b": 2, "c": 3, "dup": 4}
    photos = tuple(_export_photo(lib[k], (ids[k], boxes[k])) for k in which or ids)
    return ExportPerson("person_001", "Alice", photos)


def test_organized_tree_names_collisions_dedup_and_manifest(
    tmp_path: Path, library: dict[str, Path]
) -> None:
    out = tmp_path / "out"
    report = export_people([_alice(library)], out, fmt="organized")
    assert _tree(out) == {
        "Alice/IMG_0001.JPG": "file",
        "Alice/IMG_0001_2.JPG": "file",
        "Alice/beach.jpg": "file",
        f"Alice/{MANIFEST}": "file",
    }
    assert (out / "Alice/IMG_0001.JPG").read_bytes() == library["a"].read_bytes()
    assert (out / "Alice/IMG_0001_2.JPG").read_bytes() == library["b"].read_bytes()
    assert (report.written, report.unchanged, report.removed, report.skipped) == (3, 0, 0, 0)
    assert report.people[0].folder == out / "Alice"
    data = json.loads((out / "Alice" / MANIFEST).read_text(encoding="utf-8"))
    assert data["version"] == 1
    assert (data["person"], data["name"], data["format"]) == ("person_001", "Alice", "organized")
    files = {f["file"]: f for f in data["files"]}
    assert files["IMG_0001_2.JPG"]["source"] == str(library["b"])
    assert files["IMG_0001_2.JPG"]["sha256"] == _sha(library["b"])
    assert files["IMG_0001_2.JPG"]["mode"] == "copy"
    assert files["IMG_0001_2.JPG"]["faces"] == [
        {"face_id": 2, "bbox": [20.0, 20.0, 70.0, 70.0], "crop_bbox": None}
    ]
    # The byte-identical copy is exported once, from the first source in path order.
    assert files["beach.jpg"]["source"] == str(library["c"])


def test_second_run_writes_nothing_and_keeps_mtimes(
    tmp_path: Path, library: dict[str, Path]
) -> None:
    out = tmp_path / "out"
    for fmt in ("organized", "crops"):
        export_people([_alice(library)], out / fmt, fmt=fmt)
        files = [p for p in (out / fmt).rglob("*") if p.is_file()]
        before = _state(files)
        report = export_people([_alice(library)], out / fmt, fmt=fmt)
        assert (report.written, report.removed, report.skipped) == (0, 0, 0)
        assert report.unchanged == 3  # the byte-identical copy is not exported
        assert _state(files) == before


def test_names_stay_put_across_runs_and_only_stale_entries_go(
    tmp_path: Path, library: dict[str, Path]
) -> None:
    out = tmp_path / "out"
    export_people([_alice(library)], out, fmt="organized")
    mine = out / "Alice" / "notes.txt"
    mine.write_text("the user's own file", encoding="utf-8")
    # Without photo a, photo b keeps its suffixed name rather than taking IMG_0001.JPG.
    report = export_people([_alice(library, "b", "c")], out, fmt="organized")
    assert (report.written, report.unchanged, report.removed) == (0, 2, 1)
    assert set(_tree(out)) == {
        "Alice/IMG_0001_2.JPG",
        "Alice/beach.jpg",
        "Alice/notes.txt",
        f"Alice/{MANIFEST}",
    }
    assert mine.read_text(encoding="utf-8") == "the user's own file"
    assert [e.file for e in _manifest(out / "Alice").files] == ["IMG_0001_2.JPG", "beach.jpg"]


def test_a_users_file_in_the_way_is_never_overwritten(
    tmp_path: Path, library: dict[str, Path]
) -> None:
    folder = tmp_path / "out" / "Alice"
    folder.mkdir(parents=True)
    theirs = folder / "beach.jpg"
    theirs.write_bytes(b"not ours")
    (folder / "IMG_0001.jpg").write_bytes(b"differs only in case")
    export_people([_alice(library, "a", "c")], tmp_path / "out", fmt="organized")
    assert theirs.read_bytes() == b"not ours"
    assert (folder / "IMG_0001.jpg").read_bytes() == b"differs only in case"
    assert (folder / "beach_2.jpg").read_bytes() == library["c"].read_bytes()
    assert (folder / "IMG_0001_2.JPG").read_bytes() == library["a"].read_bytes()
    # Emptying the person later removes only what the manifest lists.
    export_people([ExportPerson("person_001", "Alice", ())], tmp_path / "out", fmt="organized")
    assert sorted(p.name for p in folder.iterdir()) == ["IMG_0001.jpg", "beach.jpg", MANIFEST]


def test_symlink_export_then_copy_never_touches_originals(
    tmp_path: Path, library: dict[str, Path]
) -> None:
    out = tmp_path / "out"
    originals = _state(library.values())
    report = export_people([_alice(library)], out, fmt="organized", symlink=True)
    assert report.written == 3
    tree = _tree(out)
    assert tree["Alice/IMG_0001.JPG"] == f"link:{library['a']}"
    assert tree["Alice/beach.jpg"] == f"link:{library['c']}"
    assert {e.mode for e in _manifest(out / "Alice").files} == {"symlink"}
    # Switching to copies replaces each link itself, never writing through it.
    report = export_people([_alice(library)], out, fmt="organized")
    assert (report.written, report.unchanged) == (3, 0)
    link = out / "Alice" / "IMG_0001.JPG"
    assert not link.is_symlink()
    assert link.read_bytes() == library["a"].read_bytes()
    assert link.stat().st_ino != library["a"].stat().st_ino
    # And back to links; then crops, which drop every organized file.
    export_people([_alice(library)], out, fmt="organized", symlink=True)
    assert (out / "Alice" / "IMG_0001.JPG").is_symlink()
    report = export_people([_alice(library)], out, fmt="crops")
    assert report.removed == 3
    assert sorted(_tree(out)) == [
        "Alice/IMG_0001_face1.jpg",
        "Alice/IMG_0001_face2.jpg",
        "Alice/beach_face3.jpg",
        f"Alice/{MANIFEST}",
    ]
    assert _state(library.values()) == originals


def test_target_that_is_the_original_is_refused(tmp_path: Path, library: dict[str, Path]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # The person's folder is a link into the library: IMG_0001.JPG there IS photo a.
    (out / "Alice").symlink_to(library["a"].parent)
    originals = _state(library.values())
    skipped: list[tuple[Path, str]] = []
    report = export_people(
        [_alice(library, "a")], out, fmt="organized", on_skip=lambda p, r: skipped.append((p, r))
    )
    assert report.skipped == 1
    assert report.written == 0
    assert skipped == [(out / "Alice" / "IMG_0001.JPG", "is an original photo; not overwritten")]
    assert _state(library.values()) == originals
    # No copy of it was put beside it either: only the (empty) manifest joined the photo.
    assert sorted(p.name for p in library["a"].parent.iterdir()) == ["IMG_0001.JPG", MANIFEST]
    assert _manifest(out / "Alice").files == ()


def test_stale_entry_that_is_now_an_original_is_not_removed(
    tmp_path: Path, library: dict[str, Path]
) -> None:
    out = tmp_path / "out"
    export_people([_alice(library, "a")], out, fmt="organized")
    exported = out / "Alice" / "IMG_0001.JPG"
    # A later scan took the exported copy in as a photo of its own (export inside the library).
    as_source = _export_photo(exported, (9, (10, 10, 60, 60)))
    originals = _state([exported])
    skipped: list[tuple[Path, str]] = []
    bob = ExportPerson("person_002", "Bob", (as_source,))
    export_people(
        [ExportPerson("person_001", "Alice", ()), bob],
        out,
        fmt="organized",
        on_skip=lambda p, r: skipped.append((p, r)),
    )
    assert _state([exported]) == originals
    assert (exported, "is an original photo; not removed") in skipped
    assert (out / "Bob" / "IMG_0001.JPG").read_bytes() == originals[exported][0]


def test_unreadable_sources_are_skipped_and_the_export_goes_on(
    tmp_path: Path, library: dict[str, Path]
) -> None:
    broken = tmp_path / "library" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    missing = tmp_path / "library" / "gone.jpg"
    person = ExportPerson(
        "person_001",
        None,
        (
            ExportPhoto(broken, "s1", (ExportFace(7, (0, 0, 10, 10), 0.9),)),
            ExportPhoto(missing, "s2", (ExportFace(8, (0, 0, 10, 10), 0.9),)),
            _export_photo(library["a"], (1, (10, 10, 60, 60))),
        ),
    )
    formats: tuple[tuple[ExportFormat, int], ...] = (("crops", 1), ("organized", 2))
    for fmt, written in formats:
        skipped: list[tuple[Path, str]] = []
        report = export_people([person], tmp_path / fmt, fmt=fmt, on_skip=_collect(skipped))
        assert report.written == written
        assert report.skipped == 3 - written
        assert missing in [p for p, _ in skipped]
        if fmt == "crops":
            assert (broken, "not an image (content is not JPEG/PNG/HEIC/WebP/TIFF/BMP/GIF)") in [
                (p, r.replace("AVIF/", "")) for p, r in skipped
            ]
        assert {e.source for e in _manifest(tmp_path / fmt / "person_001").files} >= {library["a"]}


def test_an_export_that_cannot_read_a_source_keeps_its_earlier_file(
    tmp_path: Path, library: dict[str, Path]
) -> None:
    out = tmp_path / "out"
    export_people([_alice(library, "a")], out, fmt="crops")
    crop = out / "Alice" / "IMG_0001_face1.jpg"
    before = crop.read_bytes()
    moved = tmp_path / "unmounted.jpg"
    library["a"].rename(moved)
    # A changed box wants a new crop, but the photo's drive is gone: keep what we have.
    changed = ExportPerson(
        "person_001",
        "Alice",
        (ExportPhoto(library["a"], _sha(moved), (ExportFace(1, (12, 10, 60, 60), 0.9),)),),
    )
    report = export_people([changed], out, fmt="crops")
    assert (report.written, report.skipped, report.removed) == (0, 1, 0)
    assert crop.read_bytes() == before
    assert [e.file for e in _manifest(out / "Alice").files] == ["IMG_0001_face1.jpg"]


def test_crops_are_squares_centred_and_shifted_inside(tmp_path: Path) -> None:
    src = _photo(
        tmp_path / "p.jpg",
        (300, 200),
        [((130, 80, 170, 120), RED), ((0, 0, 40, 40), BLUE), ((260, 150, 300, 200), GREEN)],
    )
    person = ExportPerson(
        "person_003",
        None,
        (
            _export_photo(
                src, (1, (130, 80, 170, 120)), (2, (0, 0, 40, 40)), (3, (260, 150, 300, 200))
            ),
        ),
    )
    export_people([person], tmp_path / "out", fmt="crops", margin=0.5)
    folder = tmp_path / "out" / "person_003"
    entries = {e.file: e for e in _manifest(folder).files}
    assert _manifest(folder).margin == 0.5
    for name, colour, crop_box in (
        ("p_face1.jpg", RED, (20.0, 20.0, 60.0, 60.0)),  # centred, fully inside
        ("p_face2.jpg", BLUE, (0.0, 0.0, 40.0, 40.0)),  # shifted right/down
        ("p_face3.jpg", GREEN, (60.0, 50.0, 100.0, 100.0)),  # shifted left/up
    ):
        with Image.open(folder / name) as image:
            assert image.size == ((100, 100) if name == "p_face3.jpg" else (80, 80))
            pixels = np.asarray(image.convert("RGB"), dtype=float)
        (face,) = entries[name].faces
        assert face.crop_bbox == crop_box
        x1, y1, x2, y2 = (int(v) for v in crop_box)
        inner = pixels[y1 + 4 : y2 - 4, x1 + 4 : x2 - 4].reshape(-1, 3).mean(axis=0)
        assert np.abs(inner - colour).max() < 12


def test_crop_square_pads_only_when_the_image_is_smaller() -> None:
    assert crop_square((40, 40, 60, 60), 100, 100, 0.5) == (30, 30, 40)
    assert crop_square((0, 0, 20, 20), 100, 100, 0.5) == (0, 0, 40)
    assert crop_square((90, 90, 100, 100), 100, 100, 0.5) == (80, 80, 20)
    # A 60 px square in a 50x100 image: pad sideways (image centred), shift inside vertically.
    assert crop_square((10, 0, 40, 30), 50, 100, 0.5) == (-5, 0, 60)


def test_crops_use_oriented_pixels_of_rotated_jpegs(tmp_path: Path) -> None:
    # Upright the photo is 120 wide, 200 tall, a red square near the bottom left.
    src = _photo(tmp_path / "rot.jpg", (120, 200), [((10, 140, 50, 180), RED)], orientation=6)
    with Image.open(src) as stored:
        assert stored.size == (200, 120)
    person = ExportPerson("person_004", None, (_export_photo(src, (5, (10, 140, 50, 180))),))
    export_people([person], tmp_path / "out", fmt="crops", margin=0.0)
    with Image.open(tmp_path / "out" / "person_004" / "rot_face5.jpg") as crop:
        assert crop.size == (40, 40)
        centre = np.asarray(crop.convert("RGB"), dtype=float)[10:30, 10:30].reshape(-1, 3)
    assert np.abs(centre.mean(axis=0) - RED).max() < 12


def test_margin_change_rewrites_crops(tmp_path: Path, library: dict[str, Path]) -> None:
    export_people([_alice(library, "a")], tmp_path, fmt="crops", margin=0.4)
    report = export_people([_alice(library, "a")], tmp_path, fmt="crops", margin=0.2)
    assert (report.written, report.unchanged) == (1, 0)
    with Image.open(tmp_path / "Alice" / "IMG_0001_face1.jpg") as image:
        assert image.size == (70, 70)


def test_interrupted_export_is_redone_and_keeps_its_names(
    tmp_path: Path, library: dict[str, Path]
) -> None:
    out = tmp_path / "out"
    export_people([_alice(library)], out, fmt="organized")
    manifest = _manifest(out / "Alice")
    (out / "Alice" / MANIFEST).write_text(
        manifest.model_copy(update={"complete": False}).model_dump_json(), encoding="utf-8"
    )
    report = export_people([_alice(library)], out, fmt="organized")
    assert (report.written, report.unchanged) == (3, 0)
    assert _manifest(out / "Alice").complete
    assert [e.file for e in _manifest(out / "Alice").files] == [e.file for e in manifest.files]


def test_renamed_person_moves_to_the_new_folder(tmp_path: Path, library: dict[str, Path]) -> None:
    out = tmp_path / "out"
    unnamed = ExportPerson("person_001", None, _alice(library).photos)
    export_people([unnamed], out, fmt="organized")
    keep = out / "other"
    keep.mkdir()
    (keep / "x.txt").write_text("x", encoding="utf-8")
    report = export_people([_alice(library)], out, fmt="organized")
    assert report.removed == 3
    assert not (out / "person_001").exists()
    assert (keep / "x.txt").exists()
    assert len(list((out / "Alice").iterdir())) == 4


def test_moved_folder_with_user_files_is_kept(tmp_path: Path, library: dict[str, Path]) -> None:
    out = tmp_path / "out"
    export_people([ExportPerson("person_001", None, _alice(library, "a").photos)], out, fmt="crops")
    (out / "person_001" / "mine.txt").write_text("mine", encoding="utf-8")
    export_people([_alice(library, "a")], out, fmt="crops")
    assert sorted(p.name for p in (out / "person_001").iterdir()) == ["mine.txt"]


def test_invalid_manifest_stops_with_a_hint(tmp_path: Path, library: dict[str, Path]) -> None:
    folder = tmp_path / "Alice"
    folder.mkdir()
    (folder / MANIFEST).write_text('{"something": "else"}', encoding="utf-8")
    with pytest.raises(InputError, match="not a beaver export manifest") as info:
        export_people([_alice(library, "a")], tmp_path, fmt="organized")
    assert info.value.hint is not None
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST]


def test_manifest_never_makes_us_delete_outside_the_folder(
    tmp_path: Path, library: dict[str, Path]
) -> None:
    export_people([_alice(library, "a")], tmp_path / "out", fmt="organized")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep", encoding="utf-8")
    manifest = _manifest(tmp_path / "out" / "Alice")
    bad = manifest.files[0].model_copy(update={"file": "../../victim.txt"})
    (tmp_path / "out" / "Alice" / MANIFEST).write_text(
        manifest.model_copy(update={"files": (bad,)}).model_dump_json(), encoding="utf-8"
    )
    export_people([ExportPerson("person_001", "Alice", ())], tmp_path / "out", fmt="organized")
    assert victim.read_text(encoding="utf-8") == "keep"


def test_progress_counts_photos(tmp_path: Path, library: dict[str, Path]) -> None:
    seen: list[int] = []
    bob = ExportPerson("person_002", "Bob", (_export_photo(library["b"], (11, (20, 20, 70, 70))),))
    export_people([_alice(library), bob], tmp_path, fmt="organized", on_progress=seen.append)
    assert seen == sorted(seen)
    assert seen[-1] == 5
    assert 4 in seen  # Alice's four photos are done before Bob's


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Alice", "Alice"),
        ("  ../etc/passwd ", "_etc_passwd"),
        ("a/b\\c:d*e?f", "a_b_c_d_e_f"),
        ("...hidden", "hidden"),
        ("trailing. ", "trailing"),
        ("CON", "_CON"),
        ("com1.txt", "_com1.txt"),
        ("Zoë", "Zoë"),
        ("\x00\x01", "__"),
        ("..", ""),
    ],
)
def test_safe_name(text: str, expected: str) -> None:
    assert safe_name(text) == expected


def test_safe_name_is_short_enough_in_bytes() -> None:
    name = safe_name("é" * 300)
    assert len(name.encode("utf-8")) <= 150
    assert name == "é" * 75


def test_person_folders_collisions_get_the_key() -> None:
    people = [
        ExportPerson("person_001", "Alice", ()),
        ExportPerson("person_002", "alice", ()),
        ExportPerson("person_003", None, ()),
        ExportPerson("person_004", "../", ()),
        ExportPerson("person_005", "Bob", ()),
    ]
    assert person_folders(people) == {
        "person_001": "Alice_person_001",
        "person_002": "alice_person_002",
        "person_003": "person_003",
        "person_004": "_",
        "person_005": "Bob",
    }


def test_manifest_schema_describes_version_1() -> None:
    schema = manifest_schema()
    assert schema["title"] == "ExportManifest"
    assert schema["properties"]["version"]["const"] == 1
    assert {"person", "name", "format", "files"} <= set(schema["properties"])
    assert "crop_bbox" in schema["$defs"]["ManifestFace"]["properties"]


def test_a_crash_mid_export_leaves_files_the_next_run_owns(
    tmp_path: Path, library: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    real = export_module._write_link_or_copy
    calls: list[str] = []

    def crash_after_one(item: Any, target: Path) -> None:
        if calls:
            raise KeyboardInterrupt
        calls.append(target.name)
        real(item, target)

    monkeypatch.setattr(export_module, "_write_link_or_copy", crash_after_one)
    with pytest.raises(KeyboardInterrupt):
        export_people([_alice(library)], out, fmt="organized")
    interrupted = _manifest(out / "Alice")
    assert not interrupted.complete
    assert [e.file for e in interrupted.files] == ["IMG_0001.JPG", "IMG_0001_2.JPG", "beach.jpg"]
    assert sorted(p.name for p in (out / "Alice").iterdir()) == ["IMG_0001.JPG", MANIFEST]
    monkeypatch.undo()
    report = export_people([_alice(library)], out, fmt="organized")
    assert (report.written, report.unchanged) == (3, 0)
    # The file written before the crash was taken back, not dodged as someone else's.
    assert sorted(p.name for p in (out / "Alice").iterdir()) == [
        "IMG_0001.JPG",
        "IMG_0001_2.JPG",
        "beach.jpg",
        MANIFEST,
    ]
    assert _manifest(out / "Alice").complete


def _shared_photo(faces_dir: Path, row: dict[str, str], face_id: int) -> ExportPhoto:
    w, h = int(row["width"]), int(row["height"])
    box = (w * 0.3, h * 0.25, w * 0.7, h * 0.65)
    return ExportPhoto(faces_dir / row["file"], row["sha256"], (ExportFace(face_id, box, 0.9),))


@pytest.mark.shared_data
def test_real_photos_export_without_touching_them(shared_faces: Path, tmp_path: Path) -> None:
    with (shared_faces / "MANIFEST.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    picked = [
        r
        for r in rows
        if r["identity"] in {"John_Shimkus", "obama", "unknown"} or r["file"].endswith(".png")
    ]
    photos = tuple(_shared_photo(shared_faces, r, i) for i, r in enumerate(picked))
    person = ExportPerson("person_001", "Real", photos)
    originals = _state(p.source for p in photos)
    skipped: list[tuple[Path, str]] = []
    organized = export_people([person], tmp_path, fmt="organized", on_skip=_collect(skipped))
    # The two byte-identical dlib chips are exported once.
    assert organized.written == len({r["sha256"] for r in picked}) == len(picked) - 1
    crops = export_people([person], tmp_path / "crops", fmt="crops", on_skip=_collect(skipped))
    assert skipped == []
    assert crops.written == len(picked) - 1
    for entry in _manifest(tmp_path / "crops" / "Real").files:
        with Image.open(tmp_path / "crops" / "Real" / entry.file) as crop:
            (face,) = entry.faces
            x1, y1, x2, y2 = face.bbox
            assert crop.mode == "RGB"
            assert crop.size[0] == crop.size[1] == round(max(x2 - x1, y2 - y1) * 1.8)
    assert _state(p.source for p in photos) == originals
