"""Where packs are found: registry, models dir, ~/.insightface; resolve_pack's order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from beaver.errors import ConfigError, InputError, ModelError
from beaver.models import store
from beaver.models.store import (
    find_pack,
    installed_packs,
    list_packs,
    register_pack,
    remove_pack,
    resolve_pack,
)


def make_pack(folder: Path, *files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in files or ("det.onnx",):
        (folder / name).write_bytes(b"onnx" * 10)
    return folder


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


def home_pack(name: str, *files: str) -> Path:
    return make_pack(Path.home() / ".insightface" / "models" / name, *files)


def test_register_stores_the_absolute_folder(models_dir: Path, tmp_path: Path):
    folder = make_pack(tmp_path / "mine")

    stored = register_pack(tmp_path / "mine", "mypack", models_dir)

    assert stored == folder.resolve()
    data = json.loads((models_dir / "packs.json").read_text(encoding="utf-8"))
    assert data == {"packs": {"mypack": str(folder.resolve())}, "version": 1}
    # Atomic write leaves no temp file behind; the folder itself was not copied.
    assert sorted(p.name for p in models_dir.iterdir()) == ["packs.json"]


def test_register_a_missing_folder_fails(models_dir: Path, tmp_path: Path):
    with pytest.raises(InputError) as info:
        register_pack(tmp_path / "nope", "x", models_dir)
    assert info.value.path == (tmp_path / "nope").resolve()
    assert "folder not found" in str(info.value)
    assert not (models_dir / "packs.json").exists()


def test_register_a_folder_without_onnx_fails(models_dir: Path, tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("hi", encoding="utf-8")
    with pytest.raises(InputError) as info:
        register_pack(empty, "x", models_dir)
    assert str(info.value).startswith(f"{empty.resolve()}: no .onnx files in this folder.")
    assert "holds the pack's .onnx files" in str(info.value)


def test_register_refuses_a_name_that_is_a_path(models_dir: Path, tmp_path: Path):
    folder = make_pack(tmp_path / "mine")
    with pytest.raises(ModelError, match="Invalid model pack name"):
        register_pack(folder, "../up", models_dir)


def test_registered_name_shadows_the_other_places(models_dir: Path, tmp_path: Path):
    home_pack("buffalo_l")
    make_pack(models_dir / "buffalo_l")
    mine = make_pack(tmp_path / "elsewhere")
    register_pack(mine, "buffalo_l", models_dir)

    found = find_pack("buffalo_l", models_dir)

    assert found is not None
    assert (found.path, found.source) == (mine.resolve(), "registered")


def test_models_dir_comes_before_home(models_dir: Path):
    home_pack("buffalo_l")
    local = make_pack(models_dir / "buffalo_l")
    found = find_pack("buffalo_l", models_dir)
    assert found is not None
    assert (found.path, found.source) == (local, "models_dir")


def test_home_insightface_packs_are_found(models_dir: Path):
    folder = home_pack("antelopev2", "glintr100.onnx")
    found = find_pack("antelopev2", models_dir)
    assert found is not None
    assert (found.path, found.source) == (folder, "insightface")


def test_a_folder_without_onnx_is_not_installed(models_dir: Path):
    (models_dir / "buffalo_l").mkdir(parents=True)
    (models_dir / "buffalo_l" / "notes.txt").write_text("x", encoding="utf-8")
    assert find_pack("buffalo_l", models_dir) is None


def test_a_pack_unzipped_one_level_down_is_found(models_dir: Path):
    inner = make_pack(Path.home() / ".insightface" / "models" / "antelopev2" / "antelopev2")
    found = find_pack("antelopev2", models_dir)
    assert found is not None
    assert found.path == inner


def test_installed_packs_lists_each_name_once(models_dir: Path, tmp_path: Path):
    home_pack("buffalo_l")
    home_pack("antelopev2")
    make_pack(models_dir / "buffalo_l")
    register_pack(make_pack(tmp_path / "x"), "custom", models_dir)
    (models_dir / ".downloads").mkdir()

    packs = installed_packs(models_dir)

    assert [(p.name, p.source) for p in packs] == [
        ("antelopev2", "insightface"),
        ("buffalo_l", "models_dir"),
        ("custom", "registered"),
    ]


def test_resolve_returns_an_existing_folder_as_is(models_dir: Path, tmp_path: Path):
    folder = make_pack(tmp_path / "some" / "pack")
    assert resolve_pack(str(folder), models_dir) == folder


def test_resolve_a_missing_folder_path(models_dir: Path, tmp_path: Path):
    with pytest.raises(InputError, match="model pack folder not found"):
        resolve_pack(str(tmp_path / "gone"), models_dir)


def test_resolve_order_registered_then_models_dir_then_home(models_dir: Path, tmp_path: Path):
    home = home_pack("buffalo_l")
    assert resolve_pack("buffalo_l", models_dir) == home
    local = make_pack(models_dir / "buffalo_l")
    assert resolve_pack("buffalo_l", models_dir) == local
    mine = make_pack(tmp_path / "mine")
    register_pack(mine, "buffalo_l", models_dir)
    assert resolve_pack("buffalo_l", models_dir) == mine.resolve()


def test_resolve_a_missing_known_pack_says_pull(models_dir: Path):
    with pytest.raises(ModelError) as info:
        resolve_pack("buffalo_s", models_dir)
    message = str(info.value)
    assert "Model pack 'buffalo_s' is not installed" in message
    assert "Run `beaver models pull buffalo_s`." in message
    assert "buffalo_s.zip (sha256 d85a87f5" in message
    assert f"unzip it into {models_dir / 'buffalo_s'}/" in message


def test_resolve_an_unknown_name_lists_what_is_installed(models_dir: Path):
    home_pack("antelopev2")
    make_pack(models_dir / "buffalo_l")
    with pytest.raises(ModelError) as info:
        resolve_pack("nosuch", models_dir)
    message = str(info.value)
    assert "Unknown model pack 'nosuch' (installed: antelopev2, buffalo_l;" in message
    assert "`beaver models add PATH --name nosuch`" in message


def test_resolve_a_registered_folder_that_vanished(models_dir: Path, tmp_path: Path):
    mine = make_pack(tmp_path / "mine")
    register_pack(mine, "custom", models_dir)
    for f in mine.iterdir():
        f.unlink()
    mine.rmdir()
    with pytest.raises(ModelError, match="which no longer exists"):
        resolve_pack("custom", models_dir)


def test_corrupt_registry_is_a_config_error(models_dir: Path):
    models_dir.mkdir()
    (models_dir / "packs.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"packs\.json: not a valid model pack registry"):
        find_pack("buffalo_l", models_dir)


def test_list_packs_shows_installed_missing_and_known(models_dir: Path, tmp_path: Path):
    local = make_pack(models_dir / "buffalo_l", "det_10g.onnx", "w600k_r50.onnx")
    gone = make_pack(tmp_path / "gone")
    register_pack(gone, "vanished", models_dir)
    (gone / "det.onnx").unlink()

    rows = {r.name: r for r in list_packs(models_dir)}

    assert rows["buffalo_l"].status == "installed"
    assert rows["buffalo_l"].path == local
    assert rows["buffalo_l"].size_bytes == 80
    assert "non-commercial" in rows["buffalo_l"].licence
    assert rows["vanished"].status == "missing"
    assert rows["buffalo_s"].status == "not installed"
    assert rows["buffalo_s"].size_bytes == 159_000_000
    assert rows["yunet_sface"].path is None
    assert [r.name for r in list_packs(models_dir)] == [
        "buffalo_l",
        "vanished",
        "buffalo_s",
        "yunet_sface",
    ]


def test_remove_only_unregisters(models_dir: Path, tmp_path: Path):
    mine = make_pack(tmp_path / "mine")
    register_pack(mine, "custom", models_dir)

    result = remove_pack("custom", models_dir, delete=True)

    assert result.unregistered == mine.resolve()
    assert result.deleted is None
    assert (mine / "det.onnx").is_file()  # the user's folder is never deleted
    assert store.load_registry(models_dir).packs == {}


def test_remove_a_downloaded_pack_needs_delete(models_dir: Path):
    pack = make_pack(models_dir / "buffalo_l")
    with pytest.raises(ModelError, match="Pass --delete"):
        remove_pack("buffalo_l", models_dir)
    assert pack.is_dir()

    result = remove_pack("buffalo_l", models_dir, delete=True)

    assert result.deleted == pack
    assert not pack.exists()
    assert list(models_dir.iterdir()) == []


def test_remove_never_touches_home_packs(models_dir: Path):
    folder = home_pack("buffalo_l")
    with pytest.raises(ModelError, match="delete that folder yourself"):
        remove_pack("buffalo_l", models_dir, delete=True)
    assert (folder / "det.onnx").is_file()
