"""Measure candidate shot-type (close / mid / far) measures on the hand-labeled calibration set.

Reads benchmarks/data/shot_labels.csv (labels for ../shared/faces), detects faces with YuNet
(../shared/models/face_detection_yunet_2023mar.onnx via cv2.FaceDetectorYN: 640 px long side,
score 0.7; if nothing is found, again at 213 px inside a black border, as the opencv plugin
does), takes the largest face and prints, per class, the distribution of each candidate measure
and the best two thresholds (close/mid, mid/far) for each single measure with their accuracy.

Thresholds are chosen to maximise balanced accuracy (mean per-class recall), because the set is
dominated by close-ups (dlib face chips); plain accuracy is printed too, and accuracy on the
photos not marked "borderline" and not tight face chips.

Run from the project root:  .venv/bin/python benchmarks/shot_measures.py
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
FACES = ROOT.parent / "shared" / "faces"
MODEL = ROOT.parent / "shared" / "models" / "face_detection_yunet_2023mar.onnx"
LABELS = ROOT / "benchmarks" / "data" / "shot_labels.csv"
CLASSES = ("close", "mid", "far")


def load_labels() -> list[dict[str, str]]:
    with LABELS.open(newline="") as f:
        lines = [line for line in f if not line.startswith("#")]
    return [r for r in csv.DictReader(lines) if r["shot"] in CLASSES]


def detect(yunet: cv2.FaceDetectorYN, rgb: np.ndarray, long_side: int, border: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = long_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(rgb, size, interpolation=interp)
    bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    if border:
        bgr = cv2.copyMakeBorder(bgr, border, border, border, border, cv2.BORDER_CONSTANT, value=0)
    yunet.setInputSize((bgr.shape[1], bgr.shape[0]))
    found = yunet.detect(bgr)[1]
    if found is None:
        return np.zeros((0, 4), dtype=np.float64)
    rows = np.asarray(found, dtype=np.float64).reshape(-1, 15)[:, :4].copy()
    sx, sy = small.shape[1] / w, small.shape[0] / h
    rows[:, 0] = (rows[:, 0] - border) / sx
    rows[:, 1] = (rows[:, 1] - border) / sy
    rows[:, 2] /= sx
    rows[:, 3] /= sy
    return rows


def measures(box: np.ndarray, width: int, height: int) -> dict[str, float]:
    x, y, w, h = box
    # Clip the box to the frame (faces cut by the frame edge).
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(width), x + w), min(float(height), y + h)
    area = max(0.0, x1 - x0) * max(0.0, y1 - y0) / (width * height)
    return {
        "face_h/img_h": h / height,
        "face_h/img_long": h / max(width, height),
        "area_frac": area,
        "sqrt_area_frac": area**0.5,
        "below/face_h": (height - (y + h)) / h,
    }


def best_thresholds(
    values: np.ndarray, labels: np.ndarray, bigger_is_closer: bool
) -> tuple[float, float, float, float]:
    """Best (t_close, t_far) by balanced accuracy; returns t_cm, t_mf, balanced acc, acc."""
    v = values if bigger_is_closer else -values
    u = np.unique(v)
    cuts = np.concatenate([[u[0] - 1], (u[:-1] + u[1:]) / 2, [u[-1] + 1]])
    # close if v >= a; far if v < b; mid otherwise (b <= a).
    is_close = v[None, :] >= cuts[:, None]  # [cut, sample]
    is_far_cut = v[None, :] < cuts[:, None]
    best = (-1.0, -1.0, 0.0, 0.0)
    n = {c: max(1, int((labels == c).sum())) for c in CLASSES}
    lc, lm, lf = labels == "close", labels == "mid", labels == "far"
    close_hits = (is_close & lc).sum(1)  # per a
    for j in range(len(cuts)):  # b index
        far = is_far_cut[j]
        far_hits = (far & lf).sum()
        # mid: not close (v < a) and not far (v >= b)
        mid_hits = ((~is_close) & ~far[None, :] & lm).sum(1)
        valid = np.arange(len(cuts)) >= j
        bal = (close_hits / n["close"] + mid_hits / n["mid"] + far_hits / n["far"]) / 3
        acc = (close_hits + mid_hits + far_hits) / len(labels)
        bal = np.where(valid, bal, -1)
        i = int(np.argmax(bal + 1e-6 * acc))
        if bal[i] > best[0] or (bal[i] == best[0] and acc[i] > best[1]):
            best = (float(bal[i]), float(acc[i]), float(cuts[i]), float(cuts[j]))
    bal, acc, a, b = best
    sign = 1 if bigger_is_closer else -1
    return sign * a, sign * b, bal, acc


def predict(values: np.ndarray, t_cm: float, t_mf: float, bigger_is_closer: bool) -> np.ndarray:
    if bigger_is_closer:
        return np.where(values >= t_cm, "close", np.where(values < t_mf, "far", "mid"))
    return np.where(values <= t_cm, "close", np.where(values > t_mf, "far", "mid"))


def main() -> int:
    if not MODEL.exists() or not FACES.exists():
        print(f"missing {MODEL} or {FACES}", file=sys.stderr)
        return 1
    yunet = cv2.FaceDetectorYN.create(str(MODEL), "", (640, 640), 0.7, 0.3, 5000)
    rows = load_labels()
    data: list[tuple[dict[str, str], dict[str, float]]] = []
    missed = []
    for r in rows:
        img = ImageOps.exif_transpose(Image.open(FACES / r["file"])).convert("RGB")
        rgb = np.asarray(img)
        boxes = detect(yunet, rgb, 640, 0)
        if not len(boxes):
            boxes = detect(yunet, rgb, 213, 106)
        if not len(boxes):
            missed.append(r["file"])
            continue
        big = boxes[np.argmax(boxes[:, 2] * boxes[:, 3])]
        data.append((r, measures(big, img.width, img.height)))
    labels = np.array([r["shot"] for r, _ in data])
    clean = np.array(["borderline" not in r["notes"] and "chip" not in r["notes"] for r, _ in data])
    counts = {c: int((labels == c).sum()) for c in CLASSES}
    print(f"labeled photos with a face found: {len(data)} {counts}; no face found: {missed}")
    print(f"clean subset (no 'borderline', no face chips): {int(clean.sum())}\n")

    names = list(data[0][1])
    print("Per-class distribution (min / q1 / median / q3 / max):")
    for name in names:
        vals = np.array([m[name] for _, m in data])
        print(f"  {name}")
        for c in CLASSES:
            q = np.quantile(vals[labels == c], [0, 0.25, 0.5, 0.75, 1])
            print(f"    {c:5s} " + " / ".join(f"{x:7.3f}" for x in q))
    print()
    header = f"{'measure':16s} {'close/mid':>9s} {'mid/far':>9s} {'bal.acc':>7s} {'acc':>6s} {'clean acc':>9s}"
    print("Best single-measure thresholds (chosen for balanced accuracy):")
    print(header)
    for name in names:
        vals = np.array([m[name] for _, m in data])
        bigger = name != "below/face_h"
        t_cm, t_mf, bal, acc = best_thresholds(vals, labels, bigger)
        pred = predict(vals, t_cm, t_mf, bigger)
        clean_acc = float((pred[clean] == labels[clean]).mean())
        print(f"{name:16s} {t_cm:9.3f} {t_mf:9.3f} {bal:7.3f} {acc:6.3f} {clean_acc:9.3f}")
        confusion = {
            c: {d: int(((labels == c) & (pred == d)).sum()) for d in CLASSES} for c in CLASSES
        }
        print(
            "    confusion (true -> predicted): "
            + "; ".join(
                f"{c}: " + ",".join(f"{d[0]}{confusion[c][d]}" for d in CLASSES) for c in CLASSES
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
