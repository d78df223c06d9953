"""Clustering quality against known identities: BCubed and pairwise precision, recall and F.

Definitions follow learn-to-cluster's ``evaluation/metrics.py`` (see
docs FACES-CAPTIONS-REFERENCE §2.6). A face the clusterer left unassigned (``None`` or ``-1``)
is its own singleton cluster, not a member of one big "unassigned" cluster: leaving a face out
is precise and costs only the recall a right join would have given.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Label = Hashable | None
Labels = Sequence[Label] | npt.NDArray[Any]


@dataclass(frozen=True)
class Scores:
    """Precision, recall and their harmonic mean, each in [0, 1]."""

    precision: float
    recall: float
    f: float


def bcubed(truth: Labels, predicted: Labels) -> Scores:
    """BCubed scores: per-face precision and recall of its cluster, averaged over faces."""
    rows, cols = _codes(truth, predicted)
    if rows.size == 0:
        return Scores(1.0, 1.0, 1.0)
    pair, pair_size = _cells(rows, cols)
    row_size = np.bincount(rows)[rows]
    col_size = np.bincount(cols)[cols]
    cell = pair_size[pair]
    precision = float(np.mean(cell / col_size))
    recall = float(np.mean(cell / row_size))
    return Scores(precision, recall, _harmonic(precision, recall))


def pairwise(truth: Labels, predicted: Labels) -> Scores:
    """Pairwise scores over unordered pairs of faces; no pairs at all counts as perfect."""
    rows, cols = _codes(truth, predicted)
    _, cell_sizes = _cells(rows, cols)
    together_both = _pairs(cell_sizes)
    together_predicted = _pairs(np.bincount(cols))
    together_truth = _pairs(np.bincount(rows))
    precision = together_both / together_predicted if together_predicted else 1.0
    recall = together_both / together_truth if together_truth else 1.0
    return Scores(precision, recall, _harmonic(precision, recall))


def _codes(truth: Labels, predicted: Labels) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Dense integer codes for both labelings; each unassigned prediction gets its own code."""
    if len(truth) != len(predicted):
        raise ValueError(f"truth has {len(truth)} labels but predicted has {len(predicted)}")
    return _encode(truth, singleton_unassigned=False), _encode(predicted, singleton_unassigned=True)


def _encode(labels: Labels, *, singleton_unassigned: bool) -> npt.NDArray[np.int64]:
    """Map labels to 0..k-1 in order of first appearance."""
    codes: dict[Label, int] = {}
    out = np.empty(len(labels), dtype=np.int64)
    for i, label in enumerate(labels):
        key = _plain(label)
        if singleton_unassigned and (key is None or key == -1):
            # A fresh object never equals another key, so the face is alone in its cluster.
            key = object()
        out[i] = codes.setdefault(key, len(codes))
    return out


def _plain(label: Label) -> Label:
    """numpy scalars become Python scalars so that ``np.int64(-1)`` and ``-1`` are one key."""
    if isinstance(label, np.generic):
        plain: Label = label.item()
        return plain
    return label


def _cells(
    rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Contingency cell index per face, and the size of every non-empty cell."""
    width = int(cols.max(initial=-1)) + 1
    _, cell, sizes = np.unique(rows * width + cols, return_inverse=True, return_counts=True)
    return cell.astype(np.int64), sizes.astype(np.int64)


def _pairs(sizes: npt.NDArray[np.int64]) -> int:
    """Unordered pairs inside groups of the given sizes."""
    return int(np.sum(sizes * (sizes - 1)) // 2)


def _harmonic(precision: float, recall: float) -> float:
    """F1 of precision and recall; 0 when both are 0."""
    total = precision + recall
    return 2 * precision * recall / total if total else 0.0
