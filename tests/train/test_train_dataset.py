"""Reading a prepared dataset for training: what trainers would trip over is found first."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from beaver.errors import DatasetError
from beaver.testing.trainset import write_dataset
from beaver.train.dataset import read_dataset


def test_reads_folders_captions_and_metadata(tmp_path):
    data, notes = read_dataset(write_dataset(tmp_path / "ds"))
    assert notes == []
    assert data.person == "Emma"
    assert data.trigger_word == "emma"
    assert data.shot_distribution == {"close": 15, "mid": 20, "far": 12}
    first = data.folders[0].images[0]
    assert first.file == "close/emma_close_0001.jpg"
    assert first.caption.startswith("emma, a woman")
    assert first.has_caption
    assert data.top_concepts[:2] == ("smiling", "outdoor")
    assert data.class_tokens == "emma, person"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no such folder"),
        (lambda p: p.write_text("x"), ": is a file, not a dataset folder"),
        (lambda p: p.mkdir(), "not a beaver prep dataset \\(metadata.json is missing\\)"),
    ],
)
def test_a_folder_that_is_not_a_dataset_says_what_is_missing(tmp_path, setup, message):
    target = tmp_path / "ds"
    setup(target)
    with pytest.raises(DatasetError, match=message) as err:
        read_dataset(target)
    assert "beaver prep" in (err.value.hint or "")


def test_malformed_metadata_names_the_file_and_line(tmp_path):
    ds = write_dataset(tmp_path / "ds")
    (ds / "metadata.json").write_text('{\n  "person": "Emma",\n  oops\n}')
    with pytest.raises(DatasetError, match=r"metadata.json: not valid JSON \(line 3"):
        read_dataset(ds)
    (ds / "metadata.json").write_text(json.dumps({"person": "Emma"}))
    with pytest.raises(DatasetError, match="trigger_word: Field required"):
        read_dataset(ds)


def test_an_empty_dataset_is_refused(tmp_path):
    ds = write_dataset(tmp_path / "ds", shots={"close": 0, "mid": 0})
    with pytest.raises(DatasetError, match=r"has no images \(close/, mid/ empty\)"):
        read_dataset(ds)


def test_an_empty_caption_file_is_refused_before_sd_scripts_asserts(tmp_path):
    ds = write_dataset(tmp_path / "ds")
    (ds / "mid" / "emma_mid_0003.txt").write_text("  \n")
    with pytest.raises(DatasetError, match=r"emma_mid_0003\.txt: the caption file is empty"):
        read_dataset(ds)


def test_caption_problems_are_warned_about(tmp_path):
    ds = write_dataset(tmp_path / "ds")
    (ds / "close" / "emma_close_0001.txt").unlink()
    (ds / "close" / "emma_close_0002.txt").write_text("a woman smiling\n")
    (ds / "close" / "emma_close_0003.txt").write_text("emma, one\nemma, two\n")
    data, notes = read_dataset(ds)
    text = "\n".join(notes)
    assert "1 image(s) have no .txt caption; they train on 'emma, person'" in text
    assert "1 caption(s) do not start with the trigger word 'emma'" in text
    assert "trainers read only the first" in text
    image = data.folders[0].images[0]
    assert (image.has_caption, image.caption) == (False, "emma, person")
    assert data.folders[0].images[2].caption == "emma, one"


def test_images_trainers_skip_and_nested_folders_are_warned_about(tmp_path):
    ds = write_dataset(tmp_path / "ds")
    Image.new("RGB", (8, 8)).save(ds / "mid" / "odd.gif")
    (ds / "far" / "sub").mkdir()
    Image.new("RGB", (8, 8)).save(ds / "far" / "sub" / "deep.png")
    data, notes = read_dataset(ds)
    assert data.shot_distribution["mid"] == 20
    assert any("type trainers skip (odd.gif" in n for n in notes)
    assert any("sub-folder(s) with images" in n for n in notes)


def test_an_unreadable_caption_encoding_is_refused(tmp_path):
    ds = write_dataset(tmp_path / "ds")
    (ds / "far" / "emma_far_0001.txt").write_bytes(b"emma, caf\xe9\n")
    with pytest.raises(DatasetError, match="not UTF-8"):
        read_dataset(ds)


def test_images_left_out_in_preview_are_neither_read_nor_warned_about(tmp_path):
    flat = write_dataset(tmp_path / "flat", shots={"all": 20}, organised=False)
    (flat / "excluded").mkdir()
    (flat / "emma_all_0001.jpg").rename(flat / "excluded" / "emma_all_0001.jpg")
    data, notes = read_dataset(flat)
    assert data.total_images == 19
    assert not any("sub-folder" in n for n in notes)
    (flat / "extra").mkdir()
    Image.new("RGB", (8, 8)).save(flat / "extra" / "x.png")
    assert any("1 sub-folder(s) with images" in n for n in read_dataset(flat)[1])
