"""`beaver prep` end to end: the seed's examples, the four files' shapes, re-runs, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from beaver.cli import build_app
from beaver.faces.cache import CacheFace, CacheImage, FaceCache

runner = CliRunner()
TAXONOMY = Path(__file__).resolve().parents[2] / "configs" / "taxonomy.json"

# name: (image size, face boxes as (x1, y1, x2, y2, person, name))
PHOTOS: dict[
    str, tuple[tuple[int, int], list[tuple[int, int, int, int, str | None, str | None]]]
] = {
    "close.jpg": ((600, 800), [(150, 100, 450, 500, "person_001", "Emma")]),  # 0.5
    "mid.jpg": ((600, 800), [(250, 100, 410, 300, "person_001", "Emma")]),  # 0.25
    "far.jpg": ((600, 800), [(280, 100, 340, 170, "person_001", "Emma")]),  # 0.0875
    "group.jpg": (
        (800, 600),
        [(100, 100, 300, 300, "person_002", "Liam"), (500, 150, 600, 250, "person_001", "Emma")],
    ),  # Emma's face: 100/600 → mid
    "others.jpg": ((600, 800), [(150, 100, 450, 500, "person_002", "Liam")]),
    "noface.jpg": ((600, 800), []),
}
CAPTIONS = {
    "close.jpg": "a woman smiling with long blonde hair",
    "mid.jpg": "a woman without glasses sitting in a kitchen",
    "group.jpg": "two people standing outdoors",
}


def _library(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for name, (size, _faces) in PHOTOS.items():
        # Distinct textured photos: flat colour would be flagged as blurred.
        pixels = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize(size, Image.Resampling.NEAREST).save(root / name, quality=90)
    return root


def _cache(root: Path, path: Path) -> Path:
    import hashlib

    images = {}
    for name, (size, faces) in PHOTOS.items():
        photo = root / name
        images[str(photo.resolve())] = CacheImage(
            width=size[0],
            height=size[1],
            sha256=hashlib.sha256(photo.read_bytes()).hexdigest(),
            faces=[
                CacheFace(
                    face_id=k,
                    bbox=(x1, y1, x2, y2),
                    score=0.9,
                    landmarks=[],
                    person=person,
                    name=person_name,
                )
                for k, (x1, y1, x2, y2, person, person_name) in enumerate(faces)
            ],
        )
    cache = FaceCache(generator="test", engine="test", images=images)
    path.write_text(cache.model_dump_json(), encoding="utf-8")
    return path


def _prep(tmp_path: Path, *args: str) -> Any:
    return runner.invoke(
        build_app(), ["--output-dir", str(tmp_path / "outputs"), "prep", *args, "--json"]
    )


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture
def full(tmp_path: Path) -> tuple[Path, list[str]]:
    photos = _library(tmp_path / "photos")
    cache = _cache(photos, tmp_path / "face_cache.json")
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps(CAPTIONS), encoding="utf-8")
    args = [
        str(photos), "--name", "Emma", "--facevault-cache", str(cache),
        "--captions", str(captions), "--taxonomy", str(TAXONOMY),
    ]  # fmt: skip
    return photos, args


def test_full_integration_writes_the_seed_layout(
    tmp_path: Path, full: tuple[Path, list[str]]
) -> None:
    photos, args = full
    result = _prep(tmp_path, *args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    out = tmp_path / "outputs" / "lora_datasets" / "emma"
    assert Path(report["output"]) == out
    assert report["excluded"] == {"other_people": [str(photos.resolve() / "others.jpg")]}
    assert report["shot_distribution"] == {"close": 1, "mid": 2, "far": 1, "unknown": 1}
    shots = _read(out / "shots.json")
    assert shots["emma_close_0001.jpg"]["shot_type"] == "close"
    assert shots["emma_close_0001.jpg"]["face_ratio"] == 0.5
    assert shots["emma_close_0001.jpg"]["face_bbox"] == [150, 100, 450, 500]
    assert set(shots["emma_close_0001.jpg"]) == {
        "shot_type", "face_ratio", "confidence", "face_bbox", "source",
    }  # fmt: skip
    group = next(v for v in shots.values() if v["source"].endswith("group.jpg"))
    assert (group["shot_type"], group["face_bbox"]) == ("mid", [500, 150, 600, 250])  # Emma's
    concepts = _read(out / "concepts.json")
    close = concepts["emma_close_0001.jpg"]
    assert set(close) == {
        "raw_caption", "concepts", "pose", "setting", "lighting", "clothing", "attributes",
    }  # fmt: skip
    assert "smiling" in close["concepts"]
    mid = next(concepts[k] for k, v in shots.items() if v["source"].endswith("mid.jpg"))
    assert "glasses" not in mid["concepts"]
    assert mid["pose"] == "sitting"
    metadata = _read(out / "metadata.json")
    for key in ("person", "trigger_word", "total_images", "shot_distribution", "top_concepts",
                "created_at"):  # fmt: skip
        assert key in metadata
    assert (metadata["person"], metadata["trigger_word"], metadata["total_images"]) == (
        "Emma", "emma", 5,
    )  # fmt: skip
    assert all(set(t) == {"concept", "count", "frequency"} for t in metadata["top_concepts"])
    preview = _read(out / "preview_manifest.json")
    assert preview["dataset"] == {"name": "Emma", "trigger": "emma", "total_images": 5}
    assert {i["filename"] for i in preview["images"]} >= {"close/emma_close_0001.jpg"}
    # Captions: trigger first, beside every image and in captions/; never empty.
    assert (out / "close" / "emma_close_0001.txt").read_text(encoding="utf-8") == (
        "emma, a woman smiling with long blonde hair\n"
    )
    far = next(k for k, v in shots.items() if v["shot_type"] == "far")
    assert (out / "captions" / far.replace(".jpg", ".txt")).read_text(encoding="utf-8") == (
        "emma, person\n"
    )
    # The originals are untouched.
    assert sorted(p.name for p in photos.iterdir()) == sorted(PHOTOS)


def test_rerun_changes_nothing_and_keep_all_brings_back_other_people(
    tmp_path: Path, full: tuple[Path, list[str]]
) -> None:
    _photos, args = full
    assert _prep(tmp_path, *args).exit_code == 0
    out = tmp_path / "outputs" / "lora_datasets" / "emma"
    before = {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and p.name != "metadata.json" and p.name != "preview_manifest.json"
    }
    assert _prep(tmp_path, *args).exit_code == 0
    after = {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and p.name != "metadata.json" and p.name != "preview_manifest.json"
    }
    assert after == before
    kept = json.loads(_prep(tmp_path, *args, "--keep-all").stdout)
    assert kept["excluded"] == {}
    assert kept["total_images"] == 6


def test_basic_without_cache_or_captions_puts_everything_in_mid(tmp_path: Path) -> None:
    photos = _library(tmp_path / "photos")
    # No face models are installed in the test's home: the detector cannot load.
    result = _prep(tmp_path, str(photos), "--name", "Emma Watson", "--trigger", "ewatson")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["shot_distribution"] == {"close": 0, "mid": 6, "far": 0}
    assert any("no face information" in w for w in report["warnings"])
    out = tmp_path / "outputs" / "lora_datasets" / "ewatson"
    assert (out / "mid" / "ewatson_mid_0001.jpg").is_file()
    assert (out / "mid" / "ewatson_mid_0001.txt").read_text(encoding="utf-8") == "ewatson, person\n"


def test_symlink_flat_and_output(tmp_path: Path, full: tuple[Path, list[str]]) -> None:
    _photos, args = full
    out = tmp_path / "elsewhere"
    result = _prep(tmp_path, *args, "--symlink", "--no-organize-by-shot", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "emma_close_0001.jpg").is_symlink()
    assert not (out / "close").exists()


def test_bad_input_is_one_line(tmp_path: Path, full: tuple[Path, list[str]]) -> None:
    photos, args = full
    missing = _prep(tmp_path, str(tmp_path / "nope"), "--name", "Emma")
    assert missing.exit_code == 1
    assert "no such folder" in missing.output
    (tmp_path / "empty").mkdir()
    empty = _prep(tmp_path, str(tmp_path / "empty"), "--name", "Emma")
    assert "no images found" in empty.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"a.jpg": "x",\n oops}', encoding="utf-8")
    broken = _prep(tmp_path, str(photos), "--name", "Emma", "--captions", str(bad))
    assert broken.exit_code == 1
    assert "bad.json: not valid JSON (line 2)" in broken.output
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"zzz.jpg": "a cat"}), encoding="utf-8")
    nomatch = _prep(tmp_path, str(photos), "--name", "Emma", "--captions", str(other))
    assert "matches none of the 6 photos" in nomatch.output
    trigger = _prep(tmp_path, str(photos), "--name", "李")
    assert trigger.exit_code == 2
    assert "--trigger" in trigger.output
    thresholds = _prep(tmp_path, *args, "--close-threshold", "0.1", "--far-threshold", "0.2")
    assert thresholds.exit_code != 0
    assert "greater than" in thresholds.output
    for result in (missing, empty, broken, nomatch, trigger, thresholds):
        assert "Traceback" not in result.output


def test_duplicates_small_and_blurred_photos_are_left_out_and_reported(
    tmp_path: Path, full: tuple[Path, list[str]]
) -> None:
    from PIL import ImageFilter

    photos, args = full
    with Image.open(photos / "close.jpg") as image:
        image.resize((300, 400)).save(photos / "close_small_copy.jpg", quality=85)
    other = np.random.default_rng(99).integers(0, 256, (100, 75, 3), dtype=np.uint8)
    blurred = Image.fromarray(other).resize((600, 800)).filter(ImageFilter.GaussianBlur(12))
    blurred.save(photos / "blurry.jpg", quality=90)
    Image.new("RGB", (200, 150), (9, 9, 9)).save(photos / "tiny.png")
    report = json.loads(_prep(tmp_path, *args).stdout)
    excluded = {k: sorted(Path(p).name for p in v) for k, v in report["excluded"].items()}
    assert excluded["duplicate"] == ["close_small_copy.jpg"]
    assert "blurry.jpg" in excluded["blurred"]
    assert "tiny.png" in excluded["low_resolution"] + excluded.get("blurred", [])
    assert report["quality"]["duplicates"] == 1
    assert any("Only" in w and "15" in w for w in report["warnings"])  # a small dataset
    metadata = _read(tmp_path / "outputs" / "lora_datasets" / "emma" / "metadata.json")
    assert metadata["quality"]["excluded"] == sum(len(v) for v in report["excluded"].values())
    assert set(metadata["recommended_mix"]) == {"close", "mid", "far"}
    kept = json.loads(_prep(tmp_path, *args, "--keep-all").stdout)
    assert set(kept["excluded"]) == {"duplicate"}  # one copy of a photo, even with --keep-all


def test_crop_cuts_group_photos_to_the_person(tmp_path: Path, full: tuple[Path, list[str]]) -> None:
    _photos, args = full
    assert _prep(tmp_path, *args, "--crop").exit_code == 0
    out = tmp_path / "outputs" / "lora_datasets" / "emma"
    shots = _read(out / "shots.json")
    name, group = next((k, v) for k, v in shots.items() if v["source"].endswith("group.jpg"))
    with Image.open(out / group["shot_type"] / name) as image:
        assert image.size == (450, 600)  # 3:4 out of 800x600
    x1, y1, x2, y2 = group["face_bbox"]
    assert 0 <= x1 < x2 <= 450  # Emma's face, moved into the crop
    assert (x2 - x1, y2 - y1) == (100, 100)
    # Liam's face (100..300 across) is cut away: the crop starts to the right of it.
    assert 500 - x1 > 300


def test_a_rerun_measures_only_changed_photos(
    tmp_path: Path, full: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from beaver.prep import quality

    photos, args = full
    real = quality.measure
    measured: list[str] = []

    def counting(path: Path, *, data: bytes | None = None) -> Any:
        measured.append(path.name)
        return real(path, data=data)

    monkeypatch.setattr(quality, "measure", counting)
    assert _prep(tmp_path, *args).exit_code == 0
    assert len(measured) == len(PHOTOS)
    measured.clear()
    first = _read(tmp_path / "outputs" / "lora_datasets" / "emma" / "shots.json")
    assert _prep(tmp_path, *args).exit_code == 0
    assert measured == []
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (100, 75, 3), dtype=np.uint8)
    Image.fromarray(pixels).resize((600, 800)).save(photos / "far.jpg", quality=90)
    assert _prep(tmp_path, *args).exit_code == 0
    assert measured == ["far.jpg"]
    assert _read(tmp_path / "outputs" / "lora_datasets" / "emma" / "shots.json").keys() == (
        first.keys()
    )


def test_captions_made_with_another_trigger_get_this_one(tmp_path: Path) -> None:
    from beaver.captions.schema import CaptionFile, ImageCaption, write_captions

    photos = _library(tmp_path / "photos")
    captions = tmp_path / "captions.json"
    write_captions(
        captions,
        CaptionFile(
            input=str(photos),
            trigger="emma",
            images={"close.jpg": ImageCaption(caption="emma, a woman smiling", raw="a woman")},
        ),
    )
    args = [str(photos), "--name", "Emma Watson", "--trigger", "ewatson", "--captions"]
    assert _prep(tmp_path, *args, str(captions)).exit_code == 0
    out = tmp_path / "outputs" / "lora_datasets" / "ewatson"
    texts = {p.read_text(encoding="utf-8") for p in (out / "captions").glob("*.txt")}
    assert "ewatson, a woman smiling\n" in texts
    assert not any(t.startswith("ewatson, emma") for t in texts)
