"""The seed's three integration workflows, end to end through the ``beaver`` CLI.

Real plugins (insightface, wd14) with tiny generated models: "faces" are coloured squares
that the tiny pack detects and tells apart by hue, and the tiny WD14 tagger captions them.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from beaver.cli import build_app
from beaver.prep.quality import BLUR_THRESHOLD, sharpness
from beaver.testing.tinymodels import GREY, IDENTITY_COLOURS, draw_faces, make_tiny_pack

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

runner = CliRunner()
TAXONOMY = Path(__file__).resolve().parents[1] / "configs" / "taxonomy.json"
PACK = "tinypack"
RGB = tuple[int, int, int]
SIDE = 640  # every photo is SIDE x SIDE: face height / SIDE gives the shot type
# Face sides: 260/640 = 0.41 ≥ 0.37 → close; 150/640 = 0.23 → mid; 70/640 = 0.11 < 0.148 → far.
SHOT_SIDES = {"close": 260, "mid": 150, "far": 70}
RED, BLUE, GREEN = IDENTITY_COLOURS[0], IDENTITY_COLOURS[3], IDENTITY_COLOURS[2]
# person: (colour, shot types of their photos); at least --min-cluster 5 photos each.
PEOPLE: dict[str, tuple[RGB, list[str]]] = {
    "emma": (RED, ["close", "close", "mid", "mid", "far", "far"]),
    "leo": (BLUE, ["close", "mid", "mid", "far", "far"]),
    "mia": (GREEN, ["close", "close", "mid", "far", "far"]),
}


def _photo(rng: np.random.Generator, cx: int, cy: int, side: int, colour: RGB) -> Image.Image:
    """One face on a textured grey background (grey noise: no saturation, so no "face")."""
    pixels = np.asarray(draw_faces((SIDE, SIDE), [(cx, cy, side, colour)])).copy()
    background = (pixels == np.asarray(GREY, dtype=np.uint8)).all(axis=2)
    # Coarse blocks make each photo distinct to the duplicate check; fine noise keeps it sharp.
    blocks = rng.integers(70, 190, (SIDE // 16, SIDE // 16), dtype=np.int16)
    grey = np.kron(blocks, np.ones((16, 16), dtype=np.int16))
    grey = np.clip(grey + rng.integers(-25, 26, grey.shape), 0, 255).astype(np.uint8)
    pixels[background] = grey[background][:, None]
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    make_tiny_pack(folder, PACK)
    return folder


@pytest.fixture(scope="module")
def tagger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from beaver.testing.tinytagger import write_tiny_tagger

    return write_tiny_tagger(tmp_path_factory.mktemp("tagger") / "wd14-tiny")


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """The photo library: {person: {photo path: shot type}}; never written by the tests."""
    root = tmp_path_factory.mktemp("Pictures")
    rng = np.random.default_rng(11)
    photos: dict[str, dict[str, str]] = {}
    for who, (colour, shots) in PEOPLE.items():
        photos[who] = {}
        for k, shot in enumerate(shots):
            side = SHOT_SIDES[shot]
            image = _photo(rng, 250 + 40 * k, 260 + 30 * k, side, colour)
            assert sharpness(np.asarray(image)) > 2 * BLUR_THRESHOLD  # prep keeps it
            path = root / f"{who}_{k}.png"
            image.save(path)
            photos[who][str(path)] = shot
    return photos


@pytest.fixture
def env(models: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BEAVER_MODELS_DIR", str(models))
    return models


def _beaver(out: Path, *args: str) -> Any:
    result = runner.invoke(build_app(), ["--output-dir", str(out), *args])
    assert result.exit_code == 0, f"beaver {' '.join(args)}:\n{result.output}"
    return result


def _json(out: Path, *args: str) -> Any:
    return json.loads(_beaver(out, *args, "--json").stdout)


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _scan_and_cluster(out: Path, folder: Path) -> list[dict[str, Any]]:
    scan = _json(out, "face", "scan", str(folder), "--model-pack", PACK,
                 "--min-score", "0.6", "--min-size", "40")  # fmt: skip
    assert (scan["images"], scan["faces"]) == (16, 16)
    cluster = _json(out, "face", "cluster", "--threshold", "0.35", "--min-cluster", "5")
    assert (cluster["people"], cluster["assigned"]) == (3, 16)
    people: list[dict[str, Any]] = _json(out, "face", "people")
    assert sorted(p["faces"] for p in people) == [5, 5, 6]
    return people


def _person_of(out: Path, photo: str) -> str:
    cache = _read(out / "facevault" / "face_cache.json")
    (face,) = cache["images"][photo]["faces"]
    return str(face["person"])


def _check_dataset(
    dataset: Path, name: str, expected: dict[str, str], sources: set[str], captions: Path
) -> dict[str, Any]:
    """The seed's dataset layout; ``expected`` maps each original photo to its shot type.

    ``sources`` are the paths shots.json may name for those photos (copies or originals);
    ``captions`` is the captions.json that `beaver caption` wrote for them.
    """
    tagged = {k: v["caption"] for k, v in _read(captions)["images"].items()}
    trigger = name.lower()
    metadata = _read(dataset / "metadata.json")
    assert (metadata["person"], metadata["trigger_word"]) == (name, trigger)
    assert metadata["total_images"] == len(expected)
    assert metadata["excluded"] == {}
    wanted = {s: list(expected.values()).count(s) for s in ("close", "mid", "far")}
    assert {"close", "mid", "far"} <= set(metadata["shot_distribution"])
    assert {k: v for k, v in metadata["shot_distribution"].items() if v} == {
        k: v for k, v in wanted.items() if v
    }
    shots = _read(dataset / "shots.json")
    assert len(shots) == len(expected)
    assert {entry["source"] for entry in shots.values()} <= sources
    by_name = {Path(entry["source"]).name: entry for entry in shots.values()}
    assert {n: e["shot_type"] for n, e in by_name.items()} == {
        Path(p).name: s for p, s in expected.items()
    }
    for filename, entry in shots.items():
        image = dataset / entry["shot_type"] / filename
        assert image.is_file(), image
        text = image.with_suffix(".txt").read_text(encoding="utf-8")
        caption = tagged[Path(entry["source"]).name]  # the tagger's, e.g. "1girl, solo"
        assert text == f"{trigger}, {caption}\n"
        sidecar = dataset / "captions" / image.with_suffix(".txt").name
        assert sidecar.read_text(encoding="utf-8") == text
    concepts = _read(dataset / "concepts.json")
    assert set(concepts) == set(shots)
    assert all(concepts[f]["raw_caption"] == tagged[Path(e["source"]).name]
               for f, e in shots.items())  # fmt: skip
    preview = _read(dataset / "preview_manifest.json")
    assert preview["dataset"]["total_images"] == len(expected)
    assert len(preview["images"]) == len(expected)
    return dict(metadata)


def _caption(out: Path, tagger: Path, folder: Path, name: str) -> Path:
    report = _json(out, "caption", "--captioner", "wd14", "--model", str(tagger),
                   "--dataset", "custom", "--input", str(folder), "--output-name", name)  # fmt: skip
    captions = out / "processed" / name / "captions.json"
    assert Path(report["output"]) == captions
    data = _read(captions)
    images = {p.name for p in folder.iterdir() if p.suffix == ".png"}
    assert set(data["images"]) == images
    return captions


def test_workflow_1_from_scratch(
    tmp_path: Path, env: Path, tagger: Path, library: dict[str, dict[str, str]]
) -> None:
    out = tmp_path / "outputs"
    folder = Path(next(iter(library["emma"]))).parent
    people = _scan_and_cluster(out, folder)
    emma_id = _person_of(out, next(iter(library["emma"])))
    assert next(p for p in people if p["id"] == emma_id)["faces"] == 6  # the red faces
    assert all(_person_of(out, photo) == emma_id for photo in library["emma"])

    _beaver(out, "face", "label", emma_id, "Emma")
    people = _json(out, "face", "people")
    assert next(p for p in people if p["id"] == emma_id)["name"] == "Emma"

    _beaver(out, "face", "export", "--person", "Emma", "--format", "organized")
    organized = out / "facevault" / "organized" / "Emma"
    copies = {p for p in organized.iterdir() if p.suffix == ".png"}
    assert {p.name for p in copies} == {Path(p).name for p in library["emma"]}

    captions = _caption(out, tagger, organized, "emma")
    report = _json(out, "prep", str(organized), "--name", "Emma",
                   "--facevault-cache", str(out / "facevault" / "face_cache.json"),
                   "--captions", str(captions), "--taxonomy", str(TAXONOMY))  # fmt: skip
    dataset = out / "lora_datasets" / "emma"
    assert Path(report["output"]) == dataset
    sources = {str(p) for p in copies} | {str(p.resolve()) for p in copies} | set(library["emma"])
    metadata = _check_dataset(dataset, "Emma", library["emma"], sources, captions)
    assert metadata["faces_from"] == "face cache"
    assert metadata["face_cache"]["matched"] == metadata["total_images"] == 6
    assert metadata["shot_distribution"]["close"] == 2
    for photo in library["emma"]:  # originals untouched, nothing in the photo folders
        assert Path(photo).is_file()
    assert not list(organized.glob("*.txt"))
    _check_training(out, dataset, metadata)


def _check_training(out: Path, dataset: Path, metadata: dict[str, Any]) -> Path:
    """Step 5: `beaver train` on the prepared dataset, every backend, then list-models."""
    train = _json(out, "train", str(dataset))
    run = Path(train["run_dir"])
    assert run.parent == out / "lora_models" / metadata["trigger_word"]
    assert list(train["backends"]) == ["kohya", "diffusers", "comfyui"]
    images = metadata["total_images"]
    assert train["plan"]["epochs"] == (20 if images < 20 else 15)
    kohya = tomllib.loads((run / "kohya" / "dataset.toml").read_text(encoding="utf-8"))
    subsets = kohya["datasets"][0]["subsets"]
    shots = {k for k, v in metadata["shot_distribution"].items() if v}
    assert {Path(s["image_dir"]).name for s in subsets} == shots
    assert all(Path(s["image_dir"]).parent == dataset for s in subsets)
    rows = (run / "diffusers" / "data" / "metadata.jsonl").read_text().splitlines()
    captions = {json.loads(r)["text"] for r in rows}
    assert all(c.startswith(metadata["trigger_word"]) for c in captions)
    listed = _json(out, "train", "list-models")
    assert str(run) in {r["path"] for r in listed}
    return run


def test_workflow_2_quick_prep(
    tmp_path: Path,
    env: Path,
    tagger: Path,
    library: dict[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BEAVER_FACE__MODEL_PACK", PACK)
    out = tmp_path / "outputs"
    photos = tmp_path / "emma_photos"
    photos.mkdir()
    expected = {}
    for photo, shot in library["emma"].items():
        copy = photos / Path(photo).name
        shutil.copyfile(photo, copy)
        expected[str(copy)] = shot

    captions = _caption(out, tagger, photos, "emma")
    _beaver(out, "prep", str(photos), "--name", "Emma", "--captions", str(captions))
    dataset = out / "lora_datasets" / "emma"
    sources = set(expected) | {str(Path(p).resolve()) for p in expected}
    metadata = _check_dataset(dataset, "Emma", expected, sources, captions)
    assert metadata["faces_from"] == "detector"
    assert metadata["face_cache"] is None
    assert not (out / "facevault").exists()  # no face vault was needed


def test_workflow_3_multiple_people(
    tmp_path: Path, env: Path, tagger: Path, library: dict[str, dict[str, str]]
) -> None:
    out = tmp_path / "outputs"
    folder = Path(next(iter(library["emma"]))).parent
    _scan_and_cluster(out, folder)
    names = {"emma": "Emma", "leo": "Leo", "mia": "Mia"}
    for who, name in names.items():
        _beaver(out, "face", "label", _person_of(out, next(iter(library[who]))), name)

    _beaver(out, "face", "export", "--all", "--format", "organized")
    organized = out / "facevault" / "organized"
    folders = sorted(p for p in organized.iterdir() if p.is_dir())
    assert [p.name for p in folders] == sorted(names.values())

    cache = out / "facevault" / "face_cache.json"
    for person in folders:
        name = person.name
        who = name.lower()
        captions = _caption(out, tagger, person, name)
        _beaver(out, "prep", str(person), "--name", name, "--facevault-cache", str(cache),
                "--captions", str(captions), "--taxonomy", str(TAXONOMY))  # fmt: skip
        copies = {p for p in person.iterdir() if p.suffix == ".png"}
        assert {p.name for p in copies} == {Path(p).name for p in library[who]}
        sources = {str(p) for p in copies} | {str(p.resolve()) for p in copies}
        sources |= set(library[who])
        metadata = _check_dataset(
            out / "lora_datasets" / who, name, library[who], sources, captions
        )
        assert metadata["faces_from"] == "face cache"
        assert metadata["face_cache"]["matched"] == len(library[who])
        # Only this person's photos: no other person's photo name in the dataset.
        shots = _read(out / "lora_datasets" / who / "shots.json")
        assert all(Path(e["source"]).name.startswith(f"{who}_") for e in shots.values())
        _check_training(out, out / "lora_datasets" / who, metadata)
    datasets = sorted(p.name for p in (out / "lora_datasets").iterdir())
    assert datasets == sorted(n.lower() for n in names.values())
