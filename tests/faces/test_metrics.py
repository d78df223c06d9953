"""BCubed and pairwise scores against hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from beaver.faces.metrics import Scores, bcubed, pairwise


def _close(scores: Scores, precision: float, recall: float, f: float) -> None:
    assert scores.precision == pytest.approx(precision)
    assert scores.recall == pytest.approx(recall)
    assert scores.f == pytest.approx(f)


def test_bcubed_hand_computed():
    # Predicted {0,1} is pure; predicted {2,3,4} holds one a and two b's.
    # Precision per face: 1, 1, 1/3, 2/3, 2/3 -> 11/15. Recall: 2/3, 2/3, 1/3, 1, 1 -> 11/15.
    _close(bcubed("aaabb", [1, 1, 2, 2, 2]), 11 / 15, 11 / 15, 11 / 15)


def test_pairwise_hand_computed():
    # Truth pairs: 3 (a) + 1 (b); predicted pairs: 1 + 3; together in both: (0,1) and (3,4).
    _close(pairwise("aaabb", [1, 1, 2, 2, 2]), 0.5, 0.5, 0.5)


def test_one_big_cluster():
    # BCubed: every face shares its cluster with 2 of 4 -> precision 1/2, recall 1.
    _close(bcubed("aabb", [0, 0, 0, 0]), 0.5, 1.0, 2 / 3)
    # Pairwise: 6 predicted pairs, 2 true ones, both found.
    _close(pairwise("aabb", [0, 0, 0, 0]), 1 / 3, 1.0, 0.5)


@pytest.mark.parametrize("unassigned", [-1, None, np.int64(-1)])
def test_unassigned_faces_are_singletons(unassigned: object):
    predicted = [unassigned, unassigned, 5]
    # Were -1 one cluster, faces 0 and 1 would be together and recall would be 1.
    _close(bcubed("aab", predicted), 1.0, 2 / 3, 0.8)
    _close(pairwise("aab", predicted), 1.0, 0.0, 0.0)


def test_labels_are_matched_by_grouping_not_by_name():
    truth = np.array([3, 3, 7, 7, 9])
    predicted = np.array([10, 10, 4, 4, 0])
    _close(bcubed(truth, predicted), 1.0, 1.0, 1.0)
    _close(pairwise(truth, predicted), 1.0, 1.0, 1.0)


def test_numpy_and_python_labels_mix():
    truth = ["x", "x", "y"]
    predicted = [np.int64(2), 2, np.int64(3)]
    _close(bcubed(truth, predicted), 1.0, 1.0, 1.0)


def test_empty_input_scores_perfect():
    _close(bcubed([], []), 1.0, 1.0, 1.0)
    _close(pairwise([], []), 1.0, 1.0, 1.0)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="truth has 2 labels but predicted has 3"):
        bcubed([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="truth has 1 labels"):
        pairwise([1], [])
