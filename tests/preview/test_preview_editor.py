"""Edits to a prepared dataset: every file follows, a crash is finished, tabs never interleave."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from beaver.errors import InputError
from beaver.preview.editor import EDITS, DatasetEditor, EditError, read_edits
from beaver.testing.trainset import write_prepared
from beaver.train.dataset import read_dataset


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture
def ds(tmp_path: Path) -> Path:
    return write_prepared(tmp_path / "ds")


def _manifest(ds: Path) -> dict[str, Any]:
    return {e["filename"]: e for e in _json(ds / "preview_manifest.json")["images"]}


def test_shot_change_moves_the_file_and_every_json_follows(ds):
    editor = DatasetEditor(ds)
    result = editor.set_shot("close/emma_close_0003.jpg", "far")
    new = result["image"]["filename"]
    assert new == "far/emma_far_0013.jpg"  # prep's naming: the next free far number
    assert not (ds / "close" / "emma_close_0003.jpg").exists()
    assert (ds / new).is_file()
    assert (ds / "far" / "emma_far_0013.txt").read_text().startswith("emma, a woman, close shot")
    assert (ds / "captions" / "emma_far_0013.txt").is_file()
    assert not (ds / "captions" / "emma_close_0003.txt").exists()
    shots = _json(ds / "shots.json")
    assert "emma_close_0003.jpg" not in shots
    assert shots["emma_far_0013.jpg"]["shot_type"] == "far"
    assert shots["emma_far_0013.jpg"]["confidence"] == 1.0
    assert "emma_far_0013.jpg" in _json(ds / "concepts.json")
    assert _manifest(ds)[new]["shot_type"] == "far"
    meta = _json(ds / "metadata.json")
    assert meta["shot_distribution"] == {"close": 14, "mid": 20, "far": 13}
    assert _json(ds / ".beaver-prep.json")["names"]["key-emma_close_0003"] == new
    assert read_edits(ds)["key-emma_close_0003"] == {"shot": "far"}
    # beaver train reads the moved file where it now is.
    data, _ = read_dataset(ds)
    assert data.shot_distribution == {"close": 14, "mid": 20, "far": 13}


def test_caption_edit_writes_both_files_and_extracts_concepts_again(ds):
    editor = DatasetEditor(ds)
    result = editor.set_caption("mid/emma_mid_0002.jpg", "emma,  a woman sitting,\nsmiling")
    assert result["image"]["caption"] == "emma, a woman sitting, smiling"
    for txt in (ds / "mid" / "emma_mid_0002.txt", ds / "captions" / "emma_mid_0002.txt"):
        assert txt.read_text() == "emma, a woman sitting, smiling\n"
    concepts = _json(ds / "concepts.json")["emma_mid_0002.jpg"]
    assert {"sitting", "smiling"} <= set(concepts["concepts"])
    assert concepts["pose"] == "sitting"
    top = {t["concept"] for t in _json(ds / "metadata.json")["top_concepts"]}
    assert "sitting" in top
    with pytest.raises(EditError, match="cannot be empty"):
        editor.set_caption("mid/emma_mid_0002.jpg", "   ")


def test_exclude_then_include_restores_everything(ds):
    editor = DatasetEditor(ds)
    before = {n: _json(ds / n) for n in ("shots.json", "concepts.json")}
    out = editor.set_excluded("far/emma_far_0004.jpg", True)["image"]
    assert out["filename"] == "excluded/emma_far_0004.jpg"
    assert out["excluded"] is True
    assert out["face_bbox"] is not None  # still shown with its face box
    assert (ds / "excluded" / "emma_far_0004.jpg").is_file()
    assert _json(ds / "shots.json")["emma_far_0004.jpg"]["source"] == "/photos/emma_far_0004.jpg"
    meta = _json(ds / "metadata.json")
    assert meta["total_images"] == 46
    assert meta["shot_distribution"]["far"] == 11
    assert meta["excluded"]["excluded_in_preview"] == ["/photos/emma_far_0004.jpg"]
    assert read_dataset(ds)[0].total_images == 46  # trainers no longer see it
    back = editor.set_excluded("excluded/emma_far_0004.jpg", False)["image"]
    assert back["filename"] == "far/emma_far_0004.jpg"
    assert {n: _json(ds / n) for n in before} == before
    assert "excluded_in_preview" not in _json(ds / "metadata.json")["excluded"]


def test_emphasis_is_recorded_for_train(ds):
    editor = DatasetEditor(ds)
    editor.set_emphasis("close/emma_close_0001.jpg", True)
    assert _json(ds / "metadata.json")["emphasis"] == ["close/emma_close_0001.jpg"]
    assert _manifest(ds)["close/emma_close_0001.jpg"]["emphasis"] is True
    editor.set_emphasis("close/emma_close_0001.jpg", False)
    assert _json(ds / "metadata.json")["emphasis"] == []


def test_distribution_warnings_follow_the_edits(ds):
    editor = DatasetEditor(ds)
    far = sorted(e for e in _manifest(ds) if e.startswith("far/"))
    for name in far[:10]:
        editor.set_shot(name, "mid")
    warnings = _json(ds / "metadata.json")["warnings"]
    assert any("Only 2 far shots" in w for w in warnings)
    assert editor.snapshot()["warnings"] == warnings


def test_unknown_files_and_bad_values_are_refused(ds):
    editor = DatasetEditor(ds)
    with pytest.raises(EditError, match="not in this dataset") as err:
        editor.set_shot("close/nope.jpg", "far")
    assert err.value.status == 404
    with pytest.raises(EditError, match="Unknown shot type 'side'"):
        editor.set_shot("close/emma_close_0001.jpg", "side")
    assert editor.file_for("../metadata.json") is None
    assert editor.file_for("metadata.json") is None
    assert editor.file_for("close/emma_close_0001.jpg") == ds / "close" / "emma_close_0001.jpg"


def test_a_crash_mid_edit_is_finished_when_the_dataset_is_opened_again(ds, monkeypatch):
    editor = DatasetEditor(ds)

    def crash(self: DatasetEditor, data: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(DatasetEditor, "_save", crash)
    with pytest.raises(OSError, match="No space"):
        editor.set_shot("mid/emma_mid_0005.jpg", "close")
    # The file moved, the JSON files did not: the journal says what was under way.
    assert (ds / "close" / "emma_close_0016.jpg").is_file()
    assert _json(ds / EDITS)["pending"]["op"] == "shot"
    assert "mid/emma_mid_0005.jpg" in _manifest(ds)
    monkeypatch.undo()
    reopened = DatasetEditor(ds)
    assert _json(ds / EDITS)["pending"] is None
    assert _manifest(ds)["close/emma_close_0016.jpg"]["shot_type"] == "close"
    assert "mid/emma_mid_0005.jpg" not in _manifest(ds)
    assert reopened.snapshot()["shot_distribution"] == {"close": 16, "mid": 19, "far": 12}


def test_two_tabs_editing_at_once_never_corrupt_the_files(ds):
    editors = [DatasetEditor(ds), DatasetEditor(ds)]  # two servers' worth of state
    errors: list[BaseException] = []

    def work(editor: DatasetEditor, names: list[str]) -> None:
        try:
            for name in names:
                editor.set_caption(name, f"emma, edited {Path(name).stem}")
        except BaseException as exc:
            errors.append(exc)

    mids = sorted(e for e in _manifest(ds) if e.startswith("mid/"))
    threads = [threading.Thread(target=work, args=(editors[i % 2], mids[i::4])) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    manifest = _manifest(ds)
    for name in mids:
        assert manifest[name]["caption"] == f"emma, edited {Path(name).stem}"
        assert (ds / name).with_suffix(".txt").read_text().strip() == manifest[name]["caption"]
    assert len(_json(ds / "concepts.json")) == 47


def test_not_a_dataset_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="not a beaver prep dataset"):
        DatasetEditor(tmp_path)
