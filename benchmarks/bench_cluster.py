"""`beaver face cluster` against plain HDBSCAN on synthetic 512-d face embeddings.

The library is made to look like a real one: people of very different sizes (log-normal, a
few with thousands of faces), one to three looks per person (pose, age), one person in five a
look-alike of another (sibling: centres at cosine 0.45-0.6), per-face quality noise, 15% lone
strangers, and group photos of up to five faces that never show one person twice. Same-person
cosine distances come out around 0.3-0.5 (printed). Ours: ``cluster_faces`` at its defaults.
Naive: ``hdbscan.HDBSCAN(min_cluster_size=5)`` on the full normalised vectors, then each noise
face joins the nearest cluster centroid within the same threshold; run up to ``--naive-up-to``
faces because it grows quadratically (about 150 s at 10k here). No timing is asserted.

    python benchmarks/bench_cluster.py [--sizes 1000 10000 100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from beaver.faces.cluster import ClusterProblem, cluster_faces
from beaver.faces.metrics import bcubed

THRESHOLD = 0.35
MIN_CLUSTER = 5


def make_library(
    n: int, *, dim: int = 512, seed: int = 0
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Embeddings, true identity per face (strangers are their own) and a photo id per face."""
    rng = np.random.default_rng(seed)
    strangers = int(n * 0.15)
    sizes: list[int] = []
    while sum(sizes) < n - strangers:
        sizes.append(int(np.clip(rng.lognormal(2.5, 1.3), 2, max(2, (n - strangers) // 5))))
    sizes[-1] -= sum(sizes) - (n - strangers)
    people = len(sizes) + strangers
    centres = _unit(rng.standard_normal((people, dim)))
    for i in range(1, len(sizes)):
        if rng.random() < 0.2:
            alike = rng.uniform(0.45, 0.6)
            centres[i] = _unit(
                alike * centres[rng.integers(0, i)] + np.sqrt(1 - alike**2) * centres[i]
            )
    looks = rng.integers(1, 4, people)
    rho = rng.uniform(0.9, 0.95, (people, 3, 1))
    turn = _unit(rng.standard_normal((people, 3, dim)))
    look_centres = rho * centres[:, None, :] + np.sqrt(1 - rho**2) * turn
    truth = np.concatenate(
        [np.repeat(np.arange(len(sizes)), sizes), len(sizes) + np.arange(strangers)]
    )
    look = (rng.random(n) * looks[truth]).astype(np.int64)
    # Noise of norm s around a unit centre gives cosine ~1/sqrt(1+s^2) to it.
    similarity = rng.uniform(0.55, 0.72, people)[truth]
    spread = np.sqrt(1 / similarity - 1) * rng.lognormal(0, 0.15, n)
    noise = rng.standard_normal((n, dim)) * (spread / np.sqrt(dim))[:, None]
    faces = (look_centres[truth, look] + noise).astype(np.float32)
    order = rng.permutation(n)
    faces, truth = faces[order], truth[order]
    return faces, truth.astype(np.int64), _photos(truth, rng)


def _unit(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = v / np.linalg.norm(v, axis=-1, keepdims=True)
    return out


def _photos(truth: npt.NDArray[np.int64], rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Consecutive faces share a photo (1-5 faces) unless that would show someone twice."""
    photos = np.empty(len(truth), dtype=np.int64)
    photo = start = 0
    while start < len(truth):
        want = int(rng.choice([1, 1, 1, 2, 3, 5]))
        seen: set[int] = set()
        end = start
        while end < min(len(truth), start + want) and int(truth[end]) not in seen:
            seen.add(int(truth[end]))
            photos[end] = photo
            end += 1
        photo, start = photo + 1, end
    return photos


def same_person_distances(
    faces: npt.NDArray[np.float32], truth: npt.NDArray[np.int64]
) -> list[float]:
    """5th, 50th and 95th percentile cosine distance between two faces of one person."""
    take = slice(0, min(len(faces), 3000))
    unit = _unit(faces[take].astype(np.float64))
    same = truth[take, None] == truth[None, take]
    np.fill_diagonal(same, False)
    dist = 1 - unit @ unit.T
    return [round(float(q), 3) for q in np.percentile(dist[same], [5, 50, 95])]


def ours(faces: npt.NDArray[np.float32], photos: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``beaver face cluster`` on a fresh library."""
    n = len(faces)
    problem = ClusterProblem(
        embeddings=faces,
        image_ids=photos,
        person=np.full(n, -1, dtype=np.int64),
        stable=frozenset(),
        locked=np.zeros(n, dtype=np.bool_),
        excluded=np.zeros(n, dtype=np.bool_),
        forbidden={},
        next_id=0,
    )
    return cluster_faces(problem, threshold=THRESHOLD, min_cluster=MIN_CLUSTER).person


def naive(faces: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
    """Plain HDBSCAN on the normalised 512-d vectors, then noise joins the nearest centroid."""
    import hdbscan

    unit = _unit(faces.astype(np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hdbscan's own deprecation chatter
        found = hdbscan.HDBSCAN(min_cluster_size=MIN_CLUSTER, core_dist_n_jobs=2).fit(unit).labels_
    labels: npt.NDArray[np.int64] = np.asarray(found, dtype=np.int64)
    if labels.max() >= 0:
        centres = _unit(np.stack([unit[labels == c].mean(axis=0) for c in range(labels.max() + 1)]))
        noise = np.flatnonzero(labels < 0)
        dist = 1 - unit[noise] @ centres.T
        best = dist.argmin(axis=1)
        near = dist[np.arange(noise.size), best] <= THRESHOLD
        labels[noise[near]] = best[near]
    return labels


def measure(n: int, naive_up_to: int, seed: int) -> dict[str, Any]:
    """Time and score both ways on one synthetic library."""
    faces, truth, photos = make_library(n, seed=seed)
    row: dict[str, Any] = {
        "faces": n,
        "same_person_distance_p5_p50_p95": same_person_distances(faces, truth),
    }
    for name in ("beaver", "naive"):
        if name == "naive" and n > naive_up_to:
            continue
        start = time.perf_counter()
        person = ours(faces, photos) if name == "beaver" else naive(faces)
        seconds = time.perf_counter() - start
        scores = bcubed(truth, person)
        row[name] = {
            "seconds": round(seconds, 2),
            "people": len(set(person[person >= 0].tolist())),
            "bcubed_precision": round(scores.precision, 4),
            "bcubed_recall": round(scores.recall, 4),
            "bcubed_f": round(scores.f, 4),
        }
    if "naive" in row:
        row["naive_seconds_per_beaver_second"] = round(
            row["naive"]["seconds"] / max(row["beaver"]["seconds"], 1e-9), 1
        )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--naive-up-to", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    ours(*make_library(200, seed=1)[::2])  # pays scikit-learn's import before any timing
    rows = [measure(n, args.naive_up_to, args.seed) for n in args.sizes]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    print(f"threshold {THRESHOLD}, min_cluster {MIN_CLUSTER}; BCubed against the synthetic truth")
    print(
        f"{'faces':>7} {'way':6} {'seconds':>8} {'people':>7} {'P':>6} {'R':>6} {'F':>6}  same-person dist"
    )
    for row in rows:
        for name in ("beaver", "naive"):
            if name in row:
                s = row[name]
                print(
                    f"{row['faces']:7d} {name:6} {s['seconds']:8.2f} {s['people']:7d} "
                    f"{s['bcubed_precision']:6.3f} {s['bcubed_recall']:6.3f} {s['bcubed_f']:6.3f}"
                    f"  {row['same_person_distance_p5_p50_p95']}"
                )
        if "naive" in row:
            print(f"{'':7} naive takes {row['naive_seconds_per_beaver_second']}x as long")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
