"""`beaver face scan` against the naive loop on 12-megapixel JPEGs, same pack, same machine.

Naive: for each photo ``cv2.imread`` + insightface ``FaceAnalysis.get``. Ours: the scan
pipeline (photos decoded at reduced size and run through the detector in worker threads,
several at once). Prints the speed ratio, the re-scan cost and how closely the faces
agree. The two alternate for ``--rounds`` rounds and the ratio is the median of the
rounds' ratios, so a noisy neighbour on a shared machine skews one round, not the result.
Needs ../shared/models (SCRFD-2.5G + MobileFaceNet) and ../shared/faces.

    python benchmarks/bench_scan.py [--photos 60] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from beaver.faces.store import iou

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PACK_FILES = ("scrfd_2.5g_bnkps.onnx", "mobilefacenet_yywbxgl.onnx")
SIZE = (4000, 3000)
MIN_SIZE = 40  # beaver's default --min-size: smaller naive faces are not compared


def make_photos(out: Path, count: int) -> list[Path]:
    """Upscale shared photos to 12 MP JPEGs (4000 px long side), q92."""
    rows = list(csv.DictReader((SHARED / "faces" / "MANIFEST.csv").open(encoding="utf-8")))
    rows = [r for r in rows if r["yunet_faces_640"] not in ("", "0")]
    rows.sort(key=lambda r: r["sha256"])  # a fixed, source-mixed sample
    paths = []
    for k, row in enumerate(rows[:count]):
        with Image.open(SHARED / "faces" / row["file"]) as im:
            im = im.convert("RGB")
            scale = SIZE[0] / max(im.size)
            big = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
        path = out / f"photo_{k:03d}.jpg"
        big.save(path, quality=92)
        paths.append(path)
    return paths


def make_pack(root: Path) -> Path:
    """insightface layout: root/models/testpack/{scrfd,mobilefacenet}.onnx."""
    pack = root / "models" / "testpack"
    pack.mkdir(parents=True)
    for name in PACK_FILES:
        shutil.copy(SHARED / "models" / name, pack / name)
    return pack


def naive(root: Path, photos: list[Path], min_score: float) -> tuple[float, dict[str, Any]]:
    """cv2.imread + FaceAnalysis.get per photo."""
    import cv2
    from insightface.app import FaceAnalysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Both sides are timed from cold model files to the last face, like a user's run.
        start = time.perf_counter()
        app = FaceAnalysis(name="testpack", root=str(root), providers=["CPUExecutionProvider"])
        app.prepare(ctx_id=-1, det_thresh=min_score, det_size=(640, 640))
        found: dict[str, Any] = {}
        decoding = 0.0
        for path in photos:
            tick = time.perf_counter()
            image = cv2.imread(str(path))
            decoding += time.perf_counter() - tick
            faces = app.get(image)
            found[str(path)] = [(f.bbox.tolist(), f.normed_embedding) for f in faces]
        found["<decode seconds>"] = decoding
        return time.perf_counter() - start, found


def ours(
    out: Path, root: Path, photos_dir: Path, min_score: float
) -> tuple[float, float, dict[str, Any]]:
    """The real scan (first run and re-run) through the plugin and the face store."""
    from beaver.faces.store import FaceStore
    from beaver.faces.vault import scan_library
    from beaver.plugins import make_plugin_manager
    from beaver.settings import load_settings

    settings = load_settings(
        None,
        {
            "output_dir": str(out),
            "models_dir": str(root / "models"),
            # beaver's defaults otherwise: faces under 40 px are not kept (nor embedded).
            "face": {"model_pack": "testpack", "min_score": min_score},
        },
    ).settings
    plugins = make_plugin_manager()
    start = time.perf_counter()
    scan_library(settings, plugins, [photos_dir])
    first = time.perf_counter() - start
    start = time.perf_counter()
    scan_library(settings, plugins, [photos_dir])
    again = time.perf_counter() - start
    found: dict[str, Any] = {}
    with FaceStore.open(settings.facevault_dir) as store:
        for face in store.faces():
            found.setdefault(face.path, []).append(face)
        embeddings = {
            int(i): e
            for i, e in zip(
                store.cluster_inputs(store.get_meta("engine") or "").face_ids,
                store.cluster_inputs(store.get_meta("engine") or "").embeddings,
                strict=True,
            )
        }
    return first, again, {p: [(f.bbox, embeddings[f.id]) for f in fs] for p, fs in found.items()}


def compare(base: dict[str, Any], mine: dict[str, Any]) -> dict[str, float]:
    """Greedy IoU matching per photo: median IoU, cosine, and faces only one side found."""
    ious, cosines, only_base, only_mine, small = [], [], 0, 0, 0
    for path in set(base) | set(mine):
        a, b = list(base.get(path, [])), list(mine.get(path, []))
        used: set[int] = set()
        for box, emb in a:
            if min(box[2] - box[0], box[3] - box[1]) < MIN_SIZE:
                small += 1
                continue
            best, score = None, 0.3
            for k, (other, _) in enumerate(b):
                if k not in used and iou(tuple(box), tuple(other)) > score:
                    best, score = k, iou(tuple(box), tuple(other))
            if best is None:
                only_base += 1
                continue
            used.add(best)
            ious.append(score)
            cosines.append(float(np.dot(emb, b[best][1])))
        only_mine += len(b) - len(used)
    return {
        "matched": len(ious),
        "median_iou": statistics.median(ious) if ious else 0.0,
        "median_cosine": statistics.median(cosines) if cosines else 0.0,
        "only_naive": only_base,
        "only_beaver": only_mine,
        "naive_under_min_size": small,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-score", type=float, default=0.6)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not (SHARED / "faces").is_dir() or not (SHARED / "models").is_dir():
        print(f"skipped: {SHARED} (real photos and models) is absent", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory(prefix="beaver-bench-") as tmp:
        work = Path(tmp)
        photos_dir = work / "photos"
        photos_dir.mkdir()
        photos = make_photos(photos_dir, args.photos)
        root = work / "insightface"
        make_pack(root)
        rounds = []
        for k in range(max(1, args.rounds)):
            naive_s, base = naive(root, photos, args.min_score)
            first_s, again_s, mine = ours(work / f"out{k}", root, photos_dir, args.min_score)
            rounds.append(
                (naive_s / first_s, naive_s, first_s, again_s, base.pop("<decode seconds>"))
            )
    # The round with the median ratio speaks for the run; all ratios are printed.
    rounds.sort()
    ratio, naive_s, first_s, again_s, decode_s = rounds[len(rounds) // 2]
    result = {
        "naive_decode_seconds": round(decode_s, 2),
        "photos": len(photos),
        "megapixels": SIZE[0] * SIZE[1] / 1e6,
        "rounds": len(rounds),
        "round_speedups": [round(r[0], 2) for r in rounds],
        "naive_seconds": round(naive_s, 2),
        "beaver_seconds": round(first_s, 2),
        "speedup": round(ratio, 2),
        "rescan_seconds": round(again_s, 3),
        "rescan_fraction": round(again_s / first_s, 4),
        **{k: round(v, 4) for k, v in compare(base, mine).items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"face scan on {result['photos']} photos of {result['megapixels']:.0f} MP (CPU)")
        print("  (the round with the median speed-up:)")
        print(f"  naive loop (cv2.imread + FaceAnalysis.get): {naive_s:7.2f} s")
        print(f"  beaver face scan:                          {first_s:7.2f} s")
        print(
            f"  speed-up:                                  {result['speedup']:7.2f}x"
            f"  (median of {len(rounds)} rounds: {', '.join(f'{r:.2f}x' for r in result['round_speedups'])})"
        )
        print(
            f"  (naive: {decode_s:.2f} s decoding, {naive_s - decode_s:.2f} s loading models and "
            f"inference; beaver hides the decoding behind inference)"
        )
        print(
            f"  re-scan, nothing changed:                  {again_s:7.3f} s"
            f"  ({100 * result['rescan_fraction']:.2f}% of the first scan)"
        )
        print(
            f"  faces matched {result['matched']}, median box IoU {result['median_iou']:.3f}, "
            f"median embedding cosine {result['median_cosine']:.3f}, "
            f"only naive {result['only_naive']}, only beaver {result['only_beaver']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
