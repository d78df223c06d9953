"""captions.json: reading beaver's file and other tools' plain mapping; clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from beaver.captions.schema import CaptionFile, ImageCaption, read_captions, write_captions
from beaver.errors import InputError


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "captions.json"
    data = CaptionFile(
        captioner="wd14",
        trigger="emma",
        images={"a.jpg": ImageCaption(caption="emma, smile", raw="smile", tags=["smile"])},
    )
    write_captions(path, data)
    assert read_captions(path) == data
    assert json.loads(path.read_text(encoding="utf-8"))["version"] == 1


def test_plain_mapping_of_other_tools(tmp_path: Path) -> None:
    path = tmp_path / "captions.json"
    path.write_text(json.dumps({"a.jpg": "a woman", "sub\\b.png": "a man"}), encoding="utf-8")
    data = read_captions(path)
    assert {k: v.caption for k, v in data.images.items()} == {
        "a.jpg": "a woman",
        "sub/b.png": "a man",
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not valid JSON (line 1)"),
        ('{"version": 2, "images": {}}', "captions file version 2 is newer"),
        ('{"version": 1, "images": {"a.jpg": 3}}', "not a captions file (images.a.jpg"),
        ("[1, 2]", "not a captions file"),
    ],
)
def test_bad_files_are_named(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "captions.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match="captions.json: " + re.escape(problem)):
        read_captions(path)


def test_missing_file_says_to_caption_first(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="beaver caption"):
        read_captions(tmp_path / "captions.json")
