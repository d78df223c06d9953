"""A `beaver prep` re-run keeps what the user decided in `beaver preview`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from beaver.cli import build_app
from beaver.preview.editor import DatasetEditor
from beaver.train.dataset import read_dataset

runner = CliRunner()


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _prep(tmp_path: Path, photos: Path) -> Path:
    result = runner.invoke(
        build_app(),
        ["--output-dir", str(tmp_path / "out"), "prep", str(photos), "--name", "Emma"],
    )
    assert result.exit_code == 0, result.output
    return tmp_path / "out" / "lora_datasets" / "emma"


def test_prep_rerun_keeps_shot_caption_exclusion_and_emphasis(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    for i in range(5):
        pixels = rng.integers(0, 256, (100, 75, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((600, 800), Image.Resampling.NEAREST).save(
            photos / f"p{i}.jpg", quality=90
        )
    ds = _prep(tmp_path, photos)
    mids = sorted(e["filename"] for e in _read(ds / "preview_manifest.json")["images"])
    assert len(mids) == 5
    assert all(m.startswith("mid/") for m in mids)  # no faces known: everything is mid
    source = {Path(v["source"]).name: k for k, v in _read(ds / "shots.json").items()}
    editor = DatasetEditor(ds)
    close = editor.set_shot(f"mid/{source['p0.jpg']}", "close")["image"]["filename"]
    editor.set_caption(f"mid/{source['p1.jpg']}", "emma, a woman sitting on a bench")
    gone = editor.set_excluded(f"mid/{source['p2.jpg']}", True)["image"]["filename"]
    editor.set_emphasis(f"mid/{source['p3.jpg']}", True)
    before = {n: _read(ds / n) for n in ("shots.json", "preview_manifest.json")}

    _prep(tmp_path, photos)

    manifest = {e["filename"]: e for e in _read(ds / "preview_manifest.json")["images"]}
    shots = _read(ds / "shots.json")
    by_source = {Path(v["source"]).name: k for k, v in shots.items()}
    assert manifest[close]["shot_type"] == "close"
    assert shots[by_source["p0.jpg"]]["confidence"] == 1.0
    p1 = next(e for e in manifest.values() if e["filename"].endswith(by_source["p1.jpg"]))
    assert p1["caption"] == "emma, a woman sitting on a bench"
    assert "sitting" in p1["concepts"]
    assert (ds / p1["filename"]).with_suffix(".txt").read_text().startswith("emma, a woman sit")
    assert manifest[gone]["excluded"] is True
    assert (ds / gone).is_file()
    meta = _read(ds / "metadata.json")
    assert meta["total_images"] == 4
    assert meta["excluded"]["excluded_in_preview"] == [str((photos / "p2.jpg").resolve())]
    assert meta["emphasis"] == [f"mid/{by_source['p3.jpg']}"]
    assert read_dataset(ds)[0].total_images == 4
    # The re-run changed nothing the user had decided.
    assert before["preview_manifest.json"]["images"] == list(manifest.values())
    # ... and preview can still bring the excluded photo back.
    back = DatasetEditor(ds).set_excluded(gone, False)["image"]["filename"]
    assert back == f"mid/{by_source['p2.jpg']}"
    assert _read(ds / "metadata.json")["total_images"] == 5
