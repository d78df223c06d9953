"""Finding photos under folders: order, recursion, exclusions, hidden names, links and errors."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Self

import pytest

from beaver.images import find_images

TREE = [
    "b.jpg",
    "A.JPG",
    "a.png",
    "notes.txt",
    "raw.CR2",
    "noext",
    ".hidden.jpg",
    ".cache/thumb.jpg",
    "2020/x.heic",
    "2020/sub/y.webp",
    "2020/sub/deeper/z.TIFF",
    "2021/c.jpeg",
    "Screenshots/s.png",
    "Screenshots/2019/t.png",
    "a.d/inner.jpg",
]


def make_tree(root: Path, files: Iterable[str] = TREE) -> Path:
    """Create empty files (and their folders) under ``root``."""
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return root


def found(
    roots: list[Path], *, base: Path | None = None, **kwargs: object
) -> tuple[list[str], list[tuple[str, str]]]:
    """Paths found (relative to ``base`` or the first root) and the errors reported."""
    errors: list[tuple[Path, str]] = []
    base = base or roots[0]
    paths = list(find_images(roots, on_error=lambda p, r: errors.append((p, r)), **kwargs))  # type: ignore[arg-type]
    assert all(isinstance(p, Path) for p in paths)
    rel = [p.relative_to(base).as_posix() if p.is_relative_to(base) else str(p) for p in paths]
    return rel, [(str(p), reason) for p, reason in errors]


def test_walks_depth_first_in_sorted_order(tmp_path: Path) -> None:
    paths, errors = found([make_tree(tmp_path)])
    assert paths == [
        "2020/sub/deeper/z.TIFF",
        "2020/sub/y.webp",
        "2020/x.heic",
        "2021/c.jpeg",
        "A.JPG",
        "Screenshots/2019/t.png",
        "Screenshots/s.png",
        "a.d/inner.jpg",
        "a.png",
        "b.jpg",
    ]
    assert errors == []


def test_order_does_not_depend_on_creation_order(tmp_path: Path) -> None:
    first = found([make_tree(tmp_path / "one")])[0]
    second = found([make_tree(tmp_path / "two", reversed(TREE))])[0]
    assert first == second


def test_not_recursive_stays_in_the_root(tmp_path: Path) -> None:
    paths, _ = found([make_tree(tmp_path)], recursive=False)
    assert paths == ["A.JPG", "a.png", "b.jpg"]


@pytest.mark.parametrize(
    ("patterns", "gone"),
    [
        (["*.png"], {"a.png", "Screenshots/s.png", "Screenshots/2019/t.png"}),
        (["*.PNG"], {"a.png", "Screenshots/s.png", "Screenshots/2019/t.png"}),
        (["Screenshots/*"], {"Screenshots/s.png", "Screenshots/2019/t.png"}),
        (["screenshots"], {"Screenshots/s.png", "Screenshots/2019/t.png"}),
        (["Screenshots/"], {"Screenshots/s.png", "Screenshots/2019/t.png"}),
        (["2020/sub"], {"2020/sub/y.webp", "2020/sub/deeper/z.TIFF"}),
        (["./2021/*.jpeg"], {"2021/c.jpeg"}),
        (["sub"], {"2020/sub/y.webp", "2020/sub/deeper/z.TIFF"}),
        (["b.jpg", "*/x.*"], {"b.jpg", "2020/x.heic"}),
        (["2019"], {"Screenshots/2019/t.png"}),
        (["nothing-matches"], set()),
    ],
)
def test_exclude_globs_match_relative_paths_and_names(
    tmp_path: Path, patterns: list[str], gone: set[str]
) -> None:
    everything = set(found([make_tree(tmp_path)])[0])
    kept = found([tmp_path], exclude=patterns)[0]
    assert set(kept) == everything - gone
    assert len(kept) == len(set(kept))


def test_excluded_folders_are_not_entered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path)
    entered: list[str] = []
    scandir = os.scandir

    def recording(path: str) -> object:
        entered.append(Path(path).name)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", recording)
    list(find_images([tmp_path], exclude=["Screenshots"]))
    assert "Screenshots" not in entered
    assert "2019" not in entered
    assert ".cache" not in entered  # hidden folders are skipped without a look inside
    assert "2020" in entered


def test_hidden_files_and_folders_are_skipped(tmp_path: Path) -> None:
    paths, _ = found([make_tree(tmp_path)])
    assert not any(part.startswith(".") for path in paths for part in path.split("/"))


def test_a_hidden_root_is_still_walked(tmp_path: Path) -> None:
    root = make_tree(tmp_path / ".photos", ["a.jpg"])
    assert found([root])[0] == ["a.jpg"]


def test_symlinked_files_are_found_and_folder_links_not_followed(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "lib", ["a/p.jpg"])
    outside = make_tree(tmp_path / "elsewhere", ["q.jpg", "r/s.jpg"])
    (root / "a" / "loop").symlink_to(root, target_is_directory=True)
    (root / "a" / "linked.jpg").symlink_to(outside / "q.jpg")
    (root / "folder-link.jpg").symlink_to(outside / "r", target_is_directory=True)
    (root / "r-link").symlink_to(outside / "r", target_is_directory=True)
    (root / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    (root / "dangling.txt").symlink_to(tmp_path / "gone.txt")
    paths, errors = found([root])
    assert paths == ["a/linked.jpg", "a/p.jpg"]
    assert errors == [(str(root / "dangling.jpg"), "broken symbolic link")]


def test_a_symlinked_root_is_followed(tmp_path: Path) -> None:
    make_tree(tmp_path / "real", ["a.jpg"])
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    assert found([tmp_path / "link"])[0] == ["a.jpg"]


def test_unreadable_folder_is_reported_and_the_walk_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path)
    scandir = os.scandir
    locked = tmp_path / "2020" / "sub"

    def guarded(path: str) -> object:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", guarded)
    paths, errors = found([tmp_path])
    assert errors == [(str(locked), "permission denied")]
    assert "2020/x.heic" in paths
    assert "2021/c.jpeg" in paths
    assert not any(p.startswith("2020/sub/") for p in paths)


def test_a_folder_that_vanishes_mid_walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path)
    scandir = os.scandir

    def flaky(path: str) -> object:
        if Path(path).name == "2021":
            raise FileNotFoundError(2, "No such file or directory", path)
        if Path(path).name == "a.d":
            raise OSError(5, "Input/output error", path)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", flaky)
    _, errors = found([tmp_path])
    assert errors == [
        (str(tmp_path / "2021"), "no such folder"),
        (str(tmp_path / "a.d"), "input/output error"),
    ]


def test_roots_that_are_files_or_missing(tmp_path: Path) -> None:
    make_tree(tmp_path, ["one.JPG", "notes.txt", "folder/two.png"])
    roots = [
        tmp_path / "missing",
        tmp_path / "one.JPG",
        tmp_path / "notes.txt",
        tmp_path / "folder",
    ]
    paths, errors = found(roots, base=tmp_path)
    assert paths == ["one.JPG", "folder/two.png"]
    assert errors == [
        (str(tmp_path / "missing"), "no such folder"),
        (str(tmp_path / "notes.txt"), "not a folder or an image file"),
    ]


def test_a_root_file_can_be_excluded_by_name(tmp_path: Path) -> None:
    make_tree(tmp_path, ["one.png"])
    assert found([tmp_path / "one.png"], base=tmp_path, exclude=["*.png"])[0] == []


def test_unstattable_root_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Path, **kwargs: object) -> os.stat_result:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "stat", refuse)
    assert found([tmp_path / "x"], base=tmp_path) == (
        [],
        [(str(tmp_path / "x"), "permission denied")],
    )


def test_overlapping_roots_yield_each_photo_once(tmp_path: Path) -> None:
    make_tree(tmp_path)
    paths, _ = found([tmp_path / "2020", tmp_path, tmp_path / "2020" / "x.heic"], base=tmp_path)
    assert paths[:3] == ["2020/sub/deeper/z.TIFF", "2020/sub/y.webp", "2020/x.heic"]
    assert len(paths) == len(set(paths)) == 10


def test_relative_roots_give_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path / "lib", ["a.jpg", "b/c.png"])
    monkeypatch.chdir(tmp_path)
    assert list(find_images([Path("lib")])) == [Path("lib/a.jpg"), Path("lib/b/c.png")]


def test_errors_are_dropped_without_a_callback(tmp_path: Path) -> None:
    assert list(find_images([tmp_path / "missing", tmp_path])) == []


def test_a_folder_named_like_an_image_is_walked(tmp_path: Path) -> None:
    make_tree(tmp_path, ["album.jpg/inside.jpg"])
    assert found([tmp_path])[0] == ["album.jpg/inside.jpg"]


class FakeEntry:
    """A directory entry whose type checks fail, as they can on a flaky network share."""

    def __init__(self, folder: Path, name: str) -> None:
        self.name = name
        self.path = str(folder / name)

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        raise OSError(5, "Input/output error")

    def is_file(self) -> bool:
        raise PermissionError(13, "Permission denied")

    def is_symlink(self) -> bool:
        return False


def test_entries_whose_type_cannot_be_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Scan(list[FakeEntry]):
        def __enter__(self) -> Self:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(os, "scandir", lambda path: Scan([FakeEntry(Path(path), "odd.jpg")]))
    assert found([tmp_path]) == ([], [(str(tmp_path / "odd.jpg"), "permission denied")])
