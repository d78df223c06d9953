"""``beaver face scan|cluster|people|label|export`` end to end, with tiny generated models."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beaver.cli import build_app
from beaver.faces.lock import vault_lock
from beaver.testing.tinymodels import IDENTITY_COLOURS, draw_faces, face_box, make_tiny_pack

runner = CliRunner()
EMMA, LEO, MIA = IDENTITY_COLOURS[:3]


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "models"
    make_tiny_pack(folder)
    monkeypatch.setenv("BEAVER_MODELS_DIR", str(folder))
    return folder


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """Six photos each of three people (one sideways via EXIF), and a group photo."""
    lib = tmp_path / "Pictures"
    (lib / "2024").mkdir(parents=True)
    for k in range(6):
        for who, colour in (("emma", EMMA), ("leo", LEO), ("mia", MIA)):
            image = draw_faces((640, 480), [(200 + 20 * k, 220, 110 + 8 * k, colour)])
            image.save(lib / "2024" / f"{who}_{k}.png")
    draw_faces((900, 500), [(220, 250, 140, EMMA), (640, 250, 150, LEO)]).save(lib / "group.png")
    sideways = draw_faces((480, 640), [(240, 200, 150, EMMA)]).rotate(90, expand=True)
    exif = sideways.getexif()
    exif[0x0112] = 6  # stored turned left: viewers turn it right, upright
    sideways.save(lib / "sideways.jpg", exif=exif, quality=95)
    return lib


def _invoke(tmp_path: Path, *args: str, input: str | None = None):
    return runner.invoke(build_app(), ["--output-dir", str(tmp_path / "out"), *args], input=input)


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() + str(p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_scan_writes_store_and_face_cache_and_rescan_reads_nothing(
    tmp_path: Path, models: Path, library: Path
) -> None:
    before = _hashes(library)
    result = _invoke(tmp_path, "face", "scan", str(library), "--model-pack", "tinypack", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["images"], report["scanned"], report["faces"]) == (20, 20, 21)
    cache = json.loads((tmp_path / "out" / "facevault" / "face_cache.json").read_text())
    assert cache["version"] == 1
    assert cache["engine"].startswith("insightface:tinypack:")
    group = cache["images"][str(library / "group.png")]
    assert (group["width"], group["height"]) == (900, 500)
    boxes = sorted(f["bbox"] for f in group["faces"])
    assert boxes[0] == pytest.approx(face_box(220, 250, 140), abs=6)
    assert boxes[1] == pytest.approx(face_box(640, 250, 150), abs=6)
    assert all(len(f["landmarks"]) == 5 and f["person"] is None for f in group["faces"])
    # EXIF orientation: the stored photo is 640x480 sideways, the face is found upright.
    side = cache["images"][str(library / "sideways.jpg")]
    assert (side["width"], side["height"]) == (480, 640)
    assert side["faces"][0]["bbox"] == pytest.approx(face_box(240, 200, 150), abs=8)

    again = _invoke(tmp_path, "face", "scan", str(library), "--model-pack", "tinypack", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["unchanged"] == 20
    assert _hashes(library) == before  # originals never written


def test_people_end_to_end_cluster_label_export(
    tmp_path: Path, models: Path, library: Path
) -> None:
    before = _hashes(library)
    assert (
        _invoke(tmp_path, "face", "scan", str(library), "--model-pack", "tinypack").exit_code == 0
    )
    result = _invoke(tmp_path, "face", "cluster", "--min-cluster", "3", "--preview", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["people"] == 3
    assert summary["assigned"] == 21
    assert (tmp_path / "out" / "facevault" / "preview" / "index.html").exists()

    people = json.loads(_invoke(tmp_path, "face", "people", "--json").stdout)
    assert sorted(p["faces"] for p in people) == [
        6,
        7,
        8,
    ]  # Mia; Leo + group; Emma + group + sideways
    cache = json.loads((tmp_path / "out" / "facevault" / "face_cache.json").read_text())
    emma_id = cache["images"][str(library / "2024" / "emma_0.png")]["faces"][0]["person"]
    group = cache["images"][str(library / "group.png")]["faces"]
    assert len({f["person"] for f in group}) == 2  # two faces in one photo: two people

    named = _invoke(tmp_path, "face", "label", emma_id, "Emma")
    assert named.exit_code == 0, named.output
    assert "Emma" in named.stderr

    exported = _invoke(tmp_path, "face", "export", "--person", "emma", "--json")
    assert exported.exit_code == 0, exported.output
    folder = tmp_path / "out" / "facevault" / "organized" / "Emma"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(
        [*(f"emma_{k}.png" for k in range(6)), "group.png", "sideways.jpg", "manifest.json"]
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {Path(f["source"]).name for f in manifest["files"]} == set(names) - {"manifest.json"}
    again = json.loads(_invoke(tmp_path, "face", "export", "--person", "Emma", "--json").stdout)
    assert again["written"] == 0
    assert again["unchanged"] == 8

    cache = json.loads((tmp_path / "out" / "facevault" / "face_cache.json").read_text())
    copy = cache["images"][str(folder / "group.png")]
    assert copy["source"] == str(library / "group.png")
    assert any(f["name"] == "Emma" for f in copy["faces"])

    # A re-cluster keeps the named person and its number.
    assert _invoke(tmp_path, "face", "cluster", "--min-cluster", "3").exit_code == 0
    people = json.loads(_invoke(tmp_path, "face", "people", "--json").stdout)
    assert next(p for p in people if p["name"] == "Emma")["id"] == emma_id
    assert _hashes(library) == before


def test_label_scripted_merge_reject_hide_and_interactive(
    tmp_path: Path, models: Path, library: Path
) -> None:
    _invoke(tmp_path, "face", "scan", str(library), "--model-pack", "tinypack")
    _invoke(tmp_path, "face", "cluster", "--min-cluster", "3")
    people = json.loads(_invoke(tmp_path, "face", "people", "--json").stdout)
    a, b, c = (p["id"] for p in people)

    answered = _invoke(tmp_path, "face", "label", input="Emma\n/hide\n")
    assert answered.exit_code == 0, answered.output
    people = {
        p["id"]: p
        for p in json.loads(_invoke(tmp_path, "face", "people", "--all", "--json").stdout)
    }
    assert people[a]["name"] == "Emma"
    assert people[b]["hidden"]
    assert people[c]["name"] is None

    merged = _invoke(tmp_path, "face", "label", "--merge", c, "Emma")
    assert merged.exit_code == 0, merged.output
    ids = [
        p["id"] for p in json.loads(_invoke(tmp_path, "face", "people", "--all", "--json").stdout)
    ]
    assert c not in ids

    paths = _invoke(tmp_path, "face", "label", "Emma", "--show-paths")
    face_id = next(
        line.split()[1] for line in paths.stdout.splitlines() if line.strip().startswith("face")
    )
    rejected = _invoke(tmp_path, "face", "label", "--reject", face_id)
    assert rejected.exit_code == 0
    assert "Rejected 1" in rejected.stderr
    _invoke(tmp_path, "face", "cluster", "--min-cluster", "3")
    cache = json.loads((tmp_path / "out" / "facevault" / "face_cache.json").read_text())
    face = next(
        f for img in cache["images"].values() for f in img["faces"] if str(f["face_id"]) == face_id
    )
    assert face["name"] != "Emma"  # never put back


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["face", "scan", "nowhere"], "no such folder"),
        (["face", "scan", ".", "--model-pack", "nopack"], "beaver models"),
        (["face", "scan", ".", "--model-pack", "tinypack"], "no photos"),
        (["face", "scan", ".", "--detector", "nodetector"], "Choose one of"),
        (["face", "cluster"], "beaver face scan"),
        (["face", "people"], "beaver face scan"),
        (["face", "export", "--format", "zip", "--all"], "organized, crops"),
        (["face", "export"], "--all"),
    ],
)
def test_bad_input_is_one_line_without_traceback(
    tmp_path: Path, models: Path, args: list[str], message: str
) -> None:
    result = _invoke(tmp_path, *args)
    assert result.exit_code in (1, 2), result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_missing_default_pack_names_models_pull(
    tmp_path: Path, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BEAVER_MODELS_DIR", str(tmp_path / "empty-models"))
    result = _invoke(tmp_path, "face", "scan", str(library))
    assert result.exit_code == 1
    assert "beaver models pull buffalo_l" in result.stderr
    assert "Traceback" not in result.output


def test_second_writer_is_refused_clearly(tmp_path: Path, models: Path, library: Path) -> None:
    with vault_lock(tmp_path / "out" / "facevault", "beaver face scan"):
        result = _invoke(tmp_path, "face", "scan", str(library), "--model-pack", "tinypack")
    assert result.exit_code == 1
    assert "in use by beaver face scan" in result.stderr


def test_unwritable_output_is_one_line(tmp_path: Path, models: Path, library: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = runner.invoke(
        build_app(),
        ["--output-dir", str(blocker), "face", "scan", str(library), "--model-pack", "tinypack"],
    )
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert str(blocker) in result.stderr


def test_face_filling_the_frame_is_found_with_a_margin(tmp_path: Path, models: Path) -> None:
    # The tiny detector finds squares up to ~250 px of its input; at det_size 320 a face
    # filling a 300 px photo is out of range until the detector adds a margin around it.
    Path("beaver.toml").write_text("[plugins.insightface]\ndet_size = 320\n")
    lib = tmp_path / "selfies"
    lib.mkdir()
    draw_faces((300, 300), [(150, 150, 300, EMMA)]).save(lib / "close.png")
    result = _invoke(tmp_path, "face", "scan", str(lib), "--model-pack", "tinypack", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["faces"] == 1
    cache = json.loads((tmp_path / "out" / "facevault" / "face_cache.json").read_text())
    (face,) = cache["images"][str(lib / "close.png")]["faces"]
    assert face["bbox"] == pytest.approx([0, 0, 300, 300], abs=12)
