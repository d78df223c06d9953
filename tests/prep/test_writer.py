"""The dataset layout: names, captions beside and in captions/, idempotent re-runs, conversions."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from beaver.errors import UsageError
from beaver.prep.trigger import check_trigger, trigger_from_name
from beaver.prep.writer import STATE, Item, place


def _photo(path: Path, colour: tuple[int, int, int], fmt: str = "JPEG", **save: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), colour).save(path, format=fmt, **save)
    return path


def _items(src: Path) -> list[Item]:
    return [
        Item(_photo(src / "a.jpg", (200, 0, 0)), "ha", "close", "emma, a red photo"),
        Item(_photo(src / "b.png", (0, 200, 0), "PNG"), "hb", "mid", "emma, a green photo"),
        Item(_photo(src / "c.jpeg", (0, 0, 200)), "hc", "close", "emma"),
    ]


def _tree(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()
    )


def test_layout_names_and_captions(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    placed = place(out, _items(tmp_path / "src"), trigger="emma")
    assert [p.name for p in placed] == [
        "close/emma_close_0001.jpg",
        "mid/emma_mid_0001.png",
        "close/emma_close_0002.jpg",
    ]
    assert _tree(out) == [
        ".beaver-prep.json",
        "captions/emma_close_0001.txt",
        "captions/emma_close_0002.txt",
        "captions/emma_mid_0001.txt",
        "close/emma_close_0001.jpg",
        "close/emma_close_0001.txt",
        "close/emma_close_0002.jpg",
        "close/emma_close_0002.txt",
        "mid/emma_mid_0001.png",
        "mid/emma_mid_0001.txt",
    ]
    assert (out / "close" / "emma_close_0001.txt").read_text(encoding="utf-8") == (
        "emma, a red photo\n"
    )
    assert (out / "close" / "emma_close_0001.jpg").read_bytes() == (
        tmp_path / "src" / "a.jpg"
    ).read_bytes()


def test_rerun_is_idempotent_and_names_are_stable(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    items = _items(tmp_path / "src")
    place(out, items, trigger="emma")
    before = {p: (out / p).stat().st_mtime_ns for p in _tree(out) if p != STATE}
    new = Item(_photo(tmp_path / "src" / "0.jpg", (90, 90, 0)), "h0", "close", "emma, new")
    placed = place(out, [new, *items], trigger="emma")  # a new photo sorts first
    assert {p.item.key: p.name for p in placed}["h0"] == "close/emma_close_0003.jpg"
    assert {p.item.key: p.name for p in placed}["ha"] == "close/emma_close_0001.jpg"
    after = {p: (out / p).stat().st_mtime_ns for p in before}
    assert after == before  # nothing rewritten


def test_photos_gone_from_the_input_leave_the_dataset_and_the_source_stays(
    tmp_path: Path,
) -> None:
    out = tmp_path / "ds"
    items = _items(tmp_path / "src")
    place(out, items, trigger="emma")
    place(out, items[1:], trigger="emma")
    assert not (out / "close" / "emma_close_0001.jpg").exists()
    assert not (out / "captions" / "emma_close_0001.txt").exists()
    assert (tmp_path / "src" / "a.jpg").exists()
    assert (out / "close" / "emma_close_0002.jpg").exists()


def test_a_changed_shot_moves_the_photo(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    items = _items(tmp_path / "src")
    place(out, items, trigger="emma")
    moved = [Item(items[0].source, "ha", "far", "emma, far away"), *items[1:]]
    placed = place(out, moved, trigger="emma")
    assert placed[0].name == "far/emma_far_0001.jpg"
    assert not (out / "close" / "emma_close_0001.jpg").exists()


def test_symlinks_point_at_the_originals(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    items = _items(tmp_path / "src")
    place(out, items, trigger="emma", symlink=True)
    link = out / "close" / "emma_close_0001.jpg"
    assert link.is_symlink()
    assert link.readlink() == (tmp_path / "src" / "a.jpg").resolve()
    place(out, items, trigger="emma", symlink=False)  # switching writes real copies
    assert not link.is_symlink()
    assert link.read_bytes() == (tmp_path / "src" / "a.jpg").read_bytes()


def test_flat_layout(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    placed = place(out, _items(tmp_path / "src"), trigger="emma", organize_by_shot=False)
    assert [p.name for p in placed] == [
        "emma_close_0001.jpg",
        "emma_mid_0001.png",
        "emma_close_0002.jpg",
    ]
    assert (out / "emma_mid_0001.txt").is_file()


def test_sideways_and_unreadable_formats_become_upright_jpegs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (80, 40), (200, 0, 0)).save(src / "side.jpg", exif=exif.tobytes())
    Image.new("RGB", (30, 20), (0, 200, 0)).save(src / "scan.tiff")
    Image.new("RGBA", (30, 20), (0, 0, 200, 100)).save(src / "alpha.tiff")
    items = [
        Item(src / "side.jpg", "h1", "mid", "emma"),
        Item(src / "scan.tiff", "h2", "mid", "emma"),
        Item(src / "alpha.tiff", "h3", "mid", "emma"),
    ]
    placed = place(tmp_path / "ds", items, trigger="emma", symlink=True)
    assert [p.name for p in placed] == [
        "mid/emma_mid_0001.jpg",
        "mid/emma_mid_0002.jpg",
        "mid/emma_mid_0003.png",
    ]
    assert all(p.converted for p in placed)
    with Image.open(tmp_path / "ds" / placed[0].name) as upright:
        assert upright.size == (40, 80)
        assert upright.getexif().get(0x0112, 1) == 1
    assert not (tmp_path / "ds" / placed[0].name).is_symlink()
    again = place(tmp_path / "ds", items, trigger="emma", symlink=True)
    assert [p.name for p in again] == [p.name for p in placed]


def test_trigger_words() -> None:
    assert trigger_from_name("Emma Watson") == "emma_watson"
    assert trigger_from_name("Zoë") == "zoe"
    assert check_trigger(None, "Emma") == ("emma", [])
    assert check_trigger("ewatson", "Emma Watson")[0] == "ewatson"
    assert check_trigger(None, "Woman")[1]  # a warning
    with pytest.raises(UsageError, match="gives no trigger word"):
        check_trigger(None, "李")
    with pytest.raises(UsageError, match="--trigger 'emma, x'"):
        check_trigger("emma, x", "Emma")


def test_an_unwritable_output_is_one_line(tmp_path: Path) -> None:
    from beaver.errors import InputError

    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="cannot write the dataset"):
        place(blocker / "ds", _items(tmp_path / "src"), trigger="emma")
