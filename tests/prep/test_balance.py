"""The seed's shot-distribution guidelines as warnings."""

from __future__ import annotations

import json

import pytest

from beaver.prep.balance import RECOMMENDED_MIX, RECOMMENDED_RANGE, recommend


def test_a_good_mix_has_no_warnings() -> None:
    report = recommend({"close": 15, "mid": 20, "far": 12})
    assert report.warnings == []
    assert report.recommended_mix == RECOMMENDED_MIX


def test_recommended_mix_sums_to_one_inside_the_seed_ranges() -> None:
    assert sum(RECOMMENDED_MIX.values()) == pytest.approx(1.0)
    for shot, share in RECOMMENDED_MIX.items():
        low, high = RECOMMENDED_RANGE[shot]
        assert low <= share <= high


def test_too_few_images() -> None:
    (warning,) = recommend({"close": 4, "mid": 5, "far": 4}).warnings
    assert "Only 13 images" in warning
    assert "15" in warning


def test_missing_shot_type_warns_once() -> None:
    (warning,) = recommend({"close": 8, "mid": 12}).warnings
    assert warning.startswith("No far shots")


def test_fewer_than_min_per_shot() -> None:
    warnings = recommend({"close": 8, "mid": 12, "far": 2}).warnings
    assert warnings == [
        "Only 2 far shots (fewer than --min-per-shot 3): add more, or lower --min-per-shot."
    ]
    assert recommend({"close": 8, "mid": 12, "far": 2}, min_per_shot=2).warnings == []


def test_too_many_close() -> None:
    (warning,) = recommend({"close": 19, "mid": 6, "far": 5}).warnings
    assert "Too many close shots (63%" in warning


def test_too_many_far() -> None:
    (warning,) = recommend({"close": 4, "mid": 5, "far": 11}).warnings
    assert "Too many far shots (55%" in warning


def test_exactly_at_the_limits_is_fine() -> None:
    assert recommend({"close": 12, "mid": 4, "far": 4}).warnings == []  # 60% close
    assert recommend({"close": 4, "mid": 6, "far": 10}).warnings == []  # 50% far


def test_unknown_counts_toward_the_total() -> None:
    assert recommend({"close": 5, "mid": 5, "far": 3, "unknown": 2}).warnings == []


def test_empty_dataset() -> None:
    assert recommend({}).warnings == ["The dataset has no images."]


def test_metadata_is_json() -> None:
    data = recommend({"close": 1, "mid": 1, "far": 1}).to_metadata()
    assert json.loads(json.dumps(data))["recommended_range"]["close"] == [0.3, 0.4]
    assert len(data["warnings"]) == 4  # type: ignore[arg-type]
