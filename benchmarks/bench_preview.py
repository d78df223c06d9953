"""`beaver preview`: thumbnails of a dataset, against the naive way, and edit latency.

The naive way makes each thumbnail on every request: Pillow opens the JPEG and
``Image.thumbnail`` (which already decodes JPEGs reduced). beaver decodes reduced too, and
keeps each thumbnail in a cache keyed by the file's path, size and time, so a page reload
or a scroll back serves files. Photos: ../shared/faces when present (real camera JPEGs),
else generated 12 MP ones. Also times the edits on a dataset of ``--edit-images`` images.

    python benchmarks/bench_preview.py [--images 120] [--edit-images 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from beaver.preview.server import PreviewServer
from beaver.testing.trainset import write_prepared

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def dataset(folder: Path, count: int) -> Path:
    """A prepared dataset whose images are real photos (or generated 12 MP ones)."""
    ds = write_prepared(folder, shots={"close": count // 3, "mid": count - 2 * (count // 3),
                                       "far": count // 3})  # fmt: skip
    real = sorted((SHARED / "faces").rglob("*.jpg")) if (SHARED / "faces").is_dir() else []
    rng = np.random.default_rng(0)
    for k, image in enumerate(sorted(ds.rglob("emma_*.jpg"))):
        if real:
            shutil.copyfile(real[k % len(real)], image)
        else:
            pixels = rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)
            Image.fromarray(pixels).resize((4000, 3000)).save(image, quality=90)
    return ds


def naive(images: list[Path]) -> float:
    started = time.perf_counter()
    for path in images:
        with Image.open(path) as image:
            image.thumbnail((320, 320))
            image.convert("RGB").save(BytesIO(), "JPEG", quality=85)
    return time.perf_counter() - started


def beaver(server: PreviewServer, names: list[str]) -> float:
    started = time.perf_counter()
    for name in names:
        thumb = server.thumbnail(name)
        assert thumb is not None
        thumb.read_bytes()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--edit-images", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ds = dataset(Path(tmp) / "ds", args.images)
        server = PreviewServer(ds, port=0, cache=Path(tmp) / "thumbs")
        names = [e["filename"] for e in server.editor.snapshot()["images"]]
        paths = [ds / n for n in names]
        t_naive = naive(paths)
        t_cold = beaver(server, names)
        t_warm = beaver(server, names)
        server.httpd.server_close()
        out["thumbnails"] = {
            "images": len(names),
            "naive_s": round(t_naive, 3),
            "beaver_first_view_s": round(t_cold, 3),
            "beaver_cached_s": round(t_warm, 3),
            "first_view_ratio": round(t_naive / t_cold, 2),
            "cached_ratio": round(t_naive / t_warm, 1),
        }
        big = write_prepared(Path(tmp) / "big", shots={"close": args.edit_images // 3,
                             "mid": args.edit_images - 2 * (args.edit_images // 3),
                             "far": args.edit_images // 3}, size=(48, 64))  # fmt: skip
        from beaver.preview.editor import DatasetEditor

        editor = DatasetEditor(big)
        started = time.perf_counter()
        editor.snapshot()
        t_snap = time.perf_counter() - started
        started = time.perf_counter()
        editor.set_shot("close/emma_close_0001.jpg", "far")
        t_edit = time.perf_counter() - started
        out["edits"] = {
            "images": args.edit_images,
            "dataset_json_s": round(t_snap, 3),
            "shot_change_s": round(t_edit, 3),
        }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    th = out["thumbnails"]
    print(
        f"thumbnails of {th['images']} photos: naive {th['naive_s']} s, beaver first view "
        f"{th['beaver_first_view_s']} s ({th['first_view_ratio']}x), cached "
        f"{th['beaver_cached_s']} s ({th['cached_ratio']}x)"
    )
    ed = out["edits"]
    print(
        f"{ed['images']}-image dataset: dataset JSON {ed['dataset_json_s']} s, "
        f"a shot change {ed['shot_change_s']} s"
    )


if __name__ == "__main__":
    main()
