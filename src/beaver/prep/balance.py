"""The shot-distribution guidelines of the seed, turned into warnings and a recommended mix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "MAX_CLOSE_SHARE",
    "MAX_FAR_SHARE",
    "MIN_PER_SHOT",
    "MIN_TOTAL",
    "RECOMMENDED_MIX",
    "RECOMMENDED_RANGE",
    "SHOT_TYPES",
    "BalanceReport",
    "recommend",
]

SHOT_TYPES = ("close", "mid", "far")
MIN_PER_SHOT = 3
"""Default ``--min-per-shot``."""
MIN_TOTAL = 15
"""The recommended minimum dataset size (30+ is better, 50+ excellent)."""
MAX_CLOSE_SHARE = 0.60
"""Above this share of close shots the LoRA may struggle with full-body images."""
MAX_FAR_SHARE = 0.50
"""Above this share of far shots face consistency may suffer."""

RECOMMENDED_RANGE: dict[str, tuple[float, float]] = {
    "close": (0.30, 0.40),
    "mid": (0.40, 0.50),
    "far": (0.20, 0.30),
}
"""The seed's recommended share of each shot type."""
RECOMMENDED_MIX: dict[str, float] = {"close": 0.30, "mid": 0.45, "far": 0.25}
"""One mix inside every range that adds up to 1 (the ranges' midpoints add up to 1.05)."""


@dataclass(frozen=True)
class BalanceReport:
    """Warnings for the screen, and the recommended mix for metadata.json."""

    warnings: list[str]
    recommended_mix: dict[str, float] = field(default_factory=lambda: dict(RECOMMENDED_MIX))
    recommended_range: dict[str, tuple[float, float]] = field(
        default_factory=lambda: dict(RECOMMENDED_RANGE)
    )

    def to_metadata(self) -> dict[str, object]:
        """The ``"balance"`` entry of metadata.json."""
        return {
            "warnings": list(self.warnings),
            "recommended_mix": dict(self.recommended_mix),
            "recommended_range": {k: list(v) for k, v in self.recommended_range.items()},
        }


def recommend(distribution: Mapping[str, int], min_per_shot: int = MIN_PER_SHOT) -> BalanceReport:
    """Check a shot distribution (``{"close": 15, "mid": 20, "far": 12}``) against the guidelines.

    Shares are of all images, other keys (such as ``unknown``) included. A missing shot type
    gets one warning, not also a "too few" one.
    """
    total = sum(distribution.values())
    warnings: list[str] = []
    if total == 0:
        return BalanceReport(warnings=["The dataset has no images."])
    if total < MIN_TOTAL:
        warnings.append(
            f"Only {total} image{'s' if total != 1 else ''}: {MIN_TOTAL} is the recommended "
            "minimum (30+ for better results, 50+ for excellent quality)."
        )
    for shot in SHOT_TYPES:
        count = distribution.get(shot, 0)
        if count == 0:
            warnings.append(
                f"No {shot} shots: the LoRA will be less versatile; add some {shot} photos."
            )
        elif count < min_per_shot:
            warnings.append(
                f"Only {count} {shot} shot{'s' if count != 1 else ''} (fewer than "
                f"--min-per-shot {min_per_shot}): add more, or lower --min-per-shot."
            )
    close = distribution.get("close", 0) / total
    if close > MAX_CLOSE_SHARE:
        warnings.append(
            f"Too many close shots ({close:.0%}, over {MAX_CLOSE_SHARE:.0%}): the LoRA may "
            "struggle with full-body images; add mid and far shots."
        )
    far = distribution.get("far", 0) / total
    if far > MAX_FAR_SHARE:
        warnings.append(
            f"Too many far shots ({far:.0%}, over {MAX_FAR_SHARE:.0%}): face consistency may "
            "suffer; add close and mid shots."
        )
    return BalanceReport(warnings=warnings)
