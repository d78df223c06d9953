"""Who-is-who quality on ../shared/faces: BCubed of beaver's people against the labels.

Both sides use the same test pack (SCRFD-2.5G + MobileFaceNet) and the seed's defaults
(threshold 0.35 cosine distance, min cluster 5):

- naive: insightface ``FaceAnalysis.get`` per photo, ``hdbscan.HDBSCAN`` on the normalised
  embeddings of every face found, noise faces joined to the nearest cluster centre within
  the threshold;
- beaver: ``beaver face scan`` + ``beaver face cluster``.

Scored on the labeled single-face photos (MANIFEST.csv ``yunet_faces_640 == 1``): each photo's
largest face against its identity; a photo whose face was not found or not assigned counts
as a person of its own.

    python benchmarks/bench_faces_quality.py [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PACK_FILES = ("scrfd_2.5g_bnkps.onnx", "mobilefacenet_yywbxgl.onnx")
THRESHOLD, MIN_CLUSTER = 0.35, 5
NOT_PEOPLE = {"group", "noface", "unknown"}


def labeled_rows() -> list[dict[str, str]]:
    rows = csv.DictReader((SHARED / "faces" / "MANIFEST.csv").open(encoding="utf-8"))
    return [r for r in rows if r["yunet_faces_640"] == "1" and r["identity"] not in NOT_PEOPLE]


def largest(faces: list[tuple[Any, Any]]) -> Any:
    return max(faces, key=lambda f: (f[0][2] - f[0][0]) * (f[0][3] - f[0][1]))[1] if faces else None


def naive(root: Path) -> dict[str, Any]:
    """Predicted person per photo path (largest face), the naive way."""
    import cv2
    import hdbscan
    from insightface.app import FaceAnalysis

    paths = sorted(
        str(p)
        for p in (SHARED / "faces").rglob("*")
        if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app = FaceAnalysis(name="testpack", root=str(root), providers=["CPUExecutionProvider"])
        app.prepare(ctx_id=-1, det_thresh=0.6, det_size=(640, 640))
        owners, boxes, vectors = [], [], []
        for path in paths:
            image = cv2.imread(path)
            if image is None:
                continue
            for face in app.get(image):
                owners.append(path)
                boxes.append(face.bbox.tolist())
                vectors.append(face.normed_embedding)
        unit = np.asarray(vectors, dtype=np.float32)
        labels = hdbscan.HDBSCAN(min_cluster_size=MIN_CLUSTER).fit_predict(unit)
    centres = {
        k: unit[labels == k].mean(axis=0) / np.linalg.norm(unit[labels == k].mean(axis=0))
        for k in set(labels.tolist()) - {-1}
    }
    if centres:
        keys = list(centres)
        matrix = np.stack([centres[k] for k in keys])
        for i in np.nonzero(labels == -1)[0]:
            dist = 1 - matrix @ unit[i]
            if dist.min() <= THRESHOLD:
                labels[i] = keys[int(dist.argmin())]
    per_photo: dict[str, list[tuple[Any, Any]]] = {}
    for owner, box, label in zip(owners, boxes, labels, strict=True):
        per_photo.setdefault(owner, []).append((box, None if label < 0 else int(label)))
    return {p: largest(f) for p, f in per_photo.items()}


def ours(out: Path, root: Path) -> dict[str, Any]:
    """Predicted person per photo path (largest face), through beaver."""
    from beaver.faces.cache import read_cache
    from beaver.faces.vault import cluster_vault, scan_library
    from beaver.plugins import make_plugin_manager
    from beaver.settings import load_settings

    settings = load_settings(
        None,
        {
            "output_dir": str(out),
            "models_dir": str(root / "models"),
            "face": {"model_pack": "testpack", "threshold": THRESHOLD, "min_cluster": MIN_CLUSTER},
        },
    ).settings
    scan_library(settings, make_plugin_manager(), [SHARED / "faces"])
    cluster_vault(settings)
    cache = read_cache(settings.facevault_dir / "face_cache.json")
    return {
        path: largest([(f.bbox, f.person) for f in image.faces])
        for path, image in cache.images.items()
    }


def score(predicted: dict[str, Any], rows: list[dict[str, str]]) -> dict[str, float]:
    from beaver.faces.metrics import bcubed, pairwise

    truth = [r["identity"] for r in rows]
    guess = [predicted.get(str((SHARED / "faces" / r["file"]).resolve())) for r in rows]
    b, p = bcubed(truth, guess), pairwise(truth, guess)
    found = sum(g is not None for g in guess)
    return {
        "bcubed_precision": round(b.precision, 4),
        "bcubed_recall": round(b.recall, 4),
        "bcubed_f": round(b.f, 4),
        "pairwise_f": round(p.f, 4),
        "assigned": found,
        "photos": len(rows),
        "people_found": len({g for g in guess if g is not None}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not (SHARED / "faces").is_dir() or not (SHARED / "models").is_dir():
        print(f"skipped: {SHARED} (real photos and models) is absent", file=sys.stderr)
        return 0
    rows = labeled_rows()
    with tempfile.TemporaryDirectory(prefix="beaver-quality-") as tmp:
        root = Path(tmp) / "insightface"
        pack = root / "models" / "testpack"
        pack.mkdir(parents=True)
        for name in PACK_FILES:
            shutil.copy(SHARED / "models" / name, pack / name)
        base = score(naive(root), rows)
        mine = score(ours(Path(tmp) / "out", root), rows)
    result = {"identities": len({r["identity"] for r in rows}), "naive": base, "beaver": mine}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"people quality on {len(rows)} labeled single-face photos of "
        f"{result['identities']} identities (test pack, threshold {THRESHOLD}, "
        f"min cluster {MIN_CLUSTER})"
    )
    print(
        f"  {'':8} {'BCubed P':>9} {'BCubed R':>9} {'BCubed F':>9} {'pair F':>7} "
        f"{'assigned':>9} {'people':>7}"
    )
    for name, s in (("naive", base), ("beaver", mine)):
        print(
            f"  {name:8} {s['bcubed_precision']:9.3f} {s['bcubed_recall']:9.3f} "
            f"{s['bcubed_f']:9.3f} {s['pairwise_f']:7.3f} {s['assigned']:9d} "
            f"{s['people_found']:7d}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
