"""`beaver prep`: shot accuracy on the labelled photos, and prep time for 10k images.

1. Shot accuracy of the product: ``prepare()`` on the 280 hand-labelled photos of
   ../shared/faces (benchmarks/data/shot_labels.csv, label ``none`` left out), faces found
   on the fly by the ``opencv`` plugin (YuNet), ``keep_all`` and ``min_side=0`` so nothing
   is left out for quality; shots.json (``source`` → ``shot_type``) against the labels:
   accuracy, balanced accuracy, confusion matrix. Naive = the seed's literal rule on the
   same faces: the face's AREA fraction, close > 25 %, far < 8 %, else mid.
2. Prep time with ``--symlink`` for ``--images`` generated 800x600 JPEGs (folders of 1,000),
   no face cache, no detector (everything to mid/, the seed's "basic" mode), against the
   naive script: per image a full PIL decode, its sha256 and a symlink. Then the re-run
   (nothing changed) as a fraction of the first run.

Needs ../shared/faces and ../shared/models (YuNet + a recognizer for the opencv pack).

    python benchmarks/bench_prep.py [--images 10000] [--json]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
LABELS = ROOT / "benchmarks" / "data" / "shot_labels.csv"
PACK_FILES = ("face_detection_yunet_2023mar.onnx", "mobilefacenet_paddle.onnx")
CLASSES = ("close", "mid", "far")
SEED_CLOSE, SEED_FAR = 0.25, 0.08  # the seed's "takes up >25% / <8%" read as area fractions
PER_FOLDER = 1000
SIZE = (800, 600)


# --- 1. shot accuracy ------------------------------------------------------------------


def load_labels() -> list[dict[str, str]]:
    with LABELS.open(newline="") as f:
        lines = [line for line in f if not line.startswith("#")]
    return [r for r in csv.DictReader(lines) if r["shot"] in CLASSES]


def upright_size(path: Path) -> tuple[int, int]:
    """Width and height as shown (EXIF orientations 5-8 swap them)."""
    with Image.open(path) as im:
        w, h = im.size
        if im.getexif().get(0x0112) in (5, 6, 7, 8):
            w, h = h, w
    return w, h


def seed_rule(bbox: list[int] | None, width: int, height: int) -> str:
    if not bbox:
        return "unknown"
    x1, y1, x2, y2 = bbox
    area = max(0, min(width, x2) - max(0, x1)) * max(0, min(height, y2) - max(0, y1))
    frac = area / (width * height)
    return "close" if frac > SEED_CLOSE else "far" if frac < SEED_FAR else "mid"


def scores(truth: list[str], predicted: list[str]) -> dict[str, Any]:
    labels = (*CLASSES, "unknown")
    matrix = {t: dict.fromkeys(labels, 0) for t in CLASSES}
    for t, p in zip(truth, predicted, strict=True):
        matrix[t][p] += 1
    recall = {c: matrix[c][c] / max(1, sum(matrix[c].values())) for c in CLASSES}
    return {
        "accuracy": sum(matrix[c][c] for c in CLASSES) / len(truth),
        "balanced_accuracy": sum(recall.values()) / len(CLASSES),
        "recall": recall,
        "confusion": matrix,
    }


def shot_accuracy(work: Path) -> dict[str, Any]:
    from beaver.plugins import make_plugin_manager
    from beaver.prep.command import PrepPlan, prepare

    rows = load_labels()
    photos = work / "labelled"
    for row in rows:
        target = photos / row["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHARED / "faces" / row["file"], target)
    pack = work / "yunet_pack"
    pack.mkdir()
    for name in PACK_FILES:
        (pack / name).symlink_to(SHARED / "models" / name)
    detector = (
        make_plugin_manager().face_detectors().get("opencv").create({"model_pack": str(pack)})
    )
    out = work / "labelled_dataset"
    plan = PrepPlan(
        input_dir=photos, output_dir=out, name="Someone", trigger="sks", keep_all=True, min_side=0
    )
    start = time.perf_counter()
    prepare(plan, detector=lambda: detector)
    seconds = time.perf_counter() - start
    shots = json.loads((out / "shots.json").read_text(encoding="utf-8"))
    by_source = {Path(e["source"]).relative_to(photos).as_posix(): e for e in shots.values()}
    truth, ours, naive = [], [], []
    for row in rows:
        entry = by_source.get(row["file"])
        if entry is None:  # a duplicate of another labelled photo: one copy is kept
            continue
        truth.append(row["shot"])
        ours.append(entry["shot_type"])
        naive.append(seed_rule(entry["face_bbox"], *upright_size(photos / row["file"])))
    return {
        "photos": len(rows),
        "in_dataset": len(truth),
        "prep_seconds": round(seconds, 2),
        "beaver": scores(truth, ours),
        "naive_seed_rule": scores(truth, naive),
    }


# --- 2. prep time ----------------------------------------------------------------------


_GRAIN = np.random.default_rng(0).integers(-12, 13, (SIZE[1], SIZE[0], 3), dtype=np.int16)


def _make_one(path_and_seed: tuple[str, int]) -> None:
    """A noise texture: coarse random colours, smoothly enlarged, plus fine grain."""
    path, seed = path_and_seed
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (SIZE[1] // 20, SIZE[0] // 20, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize(SIZE, Image.Resampling.BICUBIC))
    grain = np.roll(_GRAIN, int(rng.integers(0, _GRAIN.size)))  # cheaper than fresh noise
    pixels = np.clip(base.astype(np.int16) + grain, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=85)


def make_images(root: Path, count: int) -> list[Path]:
    paths = [root / f"set_{k // PER_FOLDER:02d}" / f"img_{k:05d}.jpg" for k in range(count)]
    for folder in {p.parent for p in paths}:
        folder.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(_make_one, [(str(p), k) for k, p in enumerate(paths)], chunksize=64))
    return paths


def naive_prep(paths: list[Path], out: Path) -> float:
    """What a straightforward script does: decode each image, hash it, symlink it."""
    start = time.perf_counter()
    out.mkdir(parents=True)
    for k, path in enumerate(paths):
        data = path.read_bytes()
        with Image.open(path) as im:
            im.convert("RGB")
        digest = hashlib.sha256(data).hexdigest()
        (out / f"{k:05d}_{digest[:12]}{path.suffix}").symlink_to(path)
    return time.perf_counter() - start


def beaver_prep(photos: Path, out: Path) -> tuple[float, float, int]:
    from beaver.prep.command import PrepPlan, prepare

    plan = PrepPlan(input_dir=photos, output_dir=out, name="Someone", trigger="sks", symlink=True)
    start = time.perf_counter()
    report = prepare(plan, detector=None)
    first = time.perf_counter() - start
    start = time.perf_counter()
    prepare(plan, detector=None)
    again = time.perf_counter() - start
    return first, again, report.total_images


def prep_time(work: Path, count: int) -> dict[str, Any]:
    photos = work / "generated"
    start = time.perf_counter()
    paths = make_images(photos, count)
    made = time.perf_counter() - start
    megabytes = sum(p.stat().st_size for p in paths) / 1e6
    naive_s = naive_prep(paths, work / "naive_links")
    first, again, written = beaver_prep(photos, work / "generated_dataset")
    return {
        "images": count,
        "megabytes": round(megabytes, 1),
        "generate_seconds": round(made, 1),
        "naive_seconds": round(naive_s, 2),
        "naive_images_per_s": round(count / naive_s, 1),
        "beaver_seconds": round(first, 2),
        "beaver_images_per_s": round(count / first, 1),
        "beaver_images_written": written,
        "speedup": round(naive_s / first, 2),
        "rerun_seconds": round(again, 2),
        "rerun_fraction": round(again / first, 3),
    }


# --- output ----------------------------------------------------------------------------


def print_scores(result: dict[str, Any]) -> None:
    ours, naive = result["beaver"], result["naive_seed_rule"]
    print(f"shot accuracy: {result['in_dataset']} of {result['photos']} labelled photos")
    print(f"  ({result['prep_seconds']:.1f} s, opencv/YuNet detection on the fly)")
    print(f"  {'':22} {'beaver':>8} {'seed rule':>10}")
    print(f"  {'accuracy':22} {ours['accuracy']:8.3f} {naive['accuracy']:10.3f}")
    print(
        f"  {'balanced accuracy':22} {ours['balanced_accuracy']:8.3f} "
        f"{naive['balanced_accuracy']:10.3f}"
    )
    for c in CLASSES:
        print(f"  {'recall ' + c:22} {ours['recall'][c]:8.3f} {naive['recall'][c]:10.3f}")
    for name, s in (("beaver", ours), ("seed rule (area >25 % / <8 %)", naive)):
        print(f"  confusion, {name} (rows: label; columns: predicted)")
        print(f"    {'':8}" + "".join(f"{p:>9}" for p in (*CLASSES, "unknown")))
        for t in CLASSES:
            print(f"    {t:8}" + "".join(f"{n:9d}" for n in s["confusion"][t].values()))


def print_times(r: dict[str, Any]) -> None:
    print(
        f"prep --symlink on {r['images']} images of 800x600 ({r['megabytes']:.0f} MB; "
        f"generated in {r['generate_seconds']:.0f} s), no faces"
    )
    print(f"  {'':44} {'seconds':>8} {'images/s':>9}")
    print(
        f"  {'naive (PIL full decode + sha256 + symlink)':44} {r['naive_seconds']:8.2f} "
        f"{r['naive_images_per_s']:9.0f}"
    )
    print(
        f"  {'beaver prepare(symlink=True)':44} {r['beaver_seconds']:8.2f} "
        f"{r['beaver_images_per_s']:9.0f}"
    )
    print(f"  {'speed-up':44} {r['speedup']:7.2f}x")
    print(
        f"  {'re-run, nothing changed':44} {r['rerun_seconds']:8.2f}"
        f"  ({100 * r['rerun_fraction']:.1f}% of the first run)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not (SHARED / "faces").is_dir() or not all(
        (SHARED / "models" / n).is_file() for n in PACK_FILES
    ):
        print(f"skipped: {SHARED} (labelled photos and YuNet models) is absent", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory(prefix="beaver-bench-prep-") as tmp:
        work = Path(tmp)
        result = {"shots": shot_accuracy(work), "prep_time": prep_time(work, args.images)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_scores(result["shots"])
        print()
        print_times(result["prep_time"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
