"""Shot types (close / mid / far) from the size of the subject's face; see docs/prep-shots.md.

The measure is the face's height over the image's height: on the hand-labelled calibration
set (benchmarks/data/shot_labels.csv) it separates the three types better than the face's
share of the image area that the seed describes (balanced accuracy 0.875 against 0.820).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from beaver.faces.store import parse_person_key

ShotType = Literal["close", "mid", "far", "unknown"]
"""``unknown``: the photo was searched for faces and none was found."""

SHOT_TYPES: tuple[ShotType, ...] = ("close", "mid", "far", "unknown")

RATIO_DECIMALS = 3
"""``face_ratio`` is rounded to this many decimals before it is compared with the thresholds,
so the type written always agrees with the ratio written next to it."""

CONFIDENCE_SCALE = 0.25
"""How fast confidence rises with the log-distance to the nearest threshold: 0.5 at a
threshold, ~0.92 in the middle of the mid band (default thresholds), ~0.97 at twice the close
threshold."""

MAX_CONFIDENCE = 0.99
"""A face measure never makes a type certain (the labels themselves disagree at the edges)."""


class ShotThresholds(BaseModel):
    """Face height / image height at which a shot becomes close (≥ close) or far (< far)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    close: float = Field(0.37, gt=0, description="Close when face_ratio ≥ this.")
    far: float = Field(0.148, gt=0, description="Far when face_ratio < this.")

    @model_validator(mode="after")
    def _ordered(self) -> ShotThresholds:
        if self.close <= self.far:
            msg = (
                f"the close threshold ({self.close}) must be greater than "
                f"the far threshold ({self.far})"
            )
            raise ValueError(msg)
        return self


@dataclass(frozen=True)
class Face:
    """A face of one photo, as shot classification needs it."""

    bbox: tuple[float, float, float, float]
    """``[x1, y1, x2, y2]`` in original-image pixels (EXIF orientation applied)."""
    score: float = 1.0
    person: str | None = None
    """Person id (``person_001``) from the face cache; None when unassigned or unknown."""
    name: str | None = None

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.bbox
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


@dataclass(frozen=True)
class PersonRef:
    """The person a dataset is for: a person id, a name, or both."""

    person: str | None = None
    name: str | None = None

    @classmethod
    def from_text(cls, text: str) -> PersonRef:
        """``person_003`` → that id; anything else → a name (matched case-insensitively)."""
        text = text.strip()
        if parse_person_key(text) is not None:
            return cls(person=text)
        return cls(name=text)

    def matches(self, face: Face) -> bool:
        """Whether ``face`` was assigned to this person in the face cache."""
        if self.person is not None and face.person == self.person:
            return True
        return (
            self.name is not None
            and face.name is not None
            and face.name.casefold() == self.name.casefold()
        )


class ShotResult(BaseModel):
    """One image's entry in shots.json."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shot_type: ShotType = Field(
        description="close, mid or far; unknown when the photo was searched and has no face."
    )
    face_ratio: float | None = Field(
        description="The chosen face's height / the image's height (not an area fraction), "
        f"{RATIO_DECIMALS} decimals; null without a face."
    )
    confidence: float = Field(
        ge=0,
        le=1,
        description="0.5 at a threshold, rising towards 0.99 as face_ratio moves away from the "
        "nearest threshold on a log scale; 0 when there is no face to measure.",
    )
    face_bbox: tuple[int, int, int, int] | None = Field(
        description="[x1, y1, x2, y2] of the chosen face in original pixels; null without one."
    )
    source: str | None = Field(
        None, description="The original photo's path (an exported copy's original)."
    )
    faces: int | None = Field(
        description="How many faces the photo has; null when no face information was available."
    )
    target_found: bool | None = Field(
        None,
        description="Whether one of the faces is the dataset's person; false when the photo "
        "shows only other people; null when no person was asked for, the photo has no face, "
        "or faces carry no identities (detected on the fly).",
    )


def shot_type_of(ratio: float, thresholds: ShotThresholds) -> ShotType:
    """The type of a face_ratio: close ≥ ``thresholds.close`` > mid ≥ ``thresholds.far`` > far."""
    if ratio >= thresholds.close:
        return "close"
    if ratio < thresholds.far:
        return "far"
    return "mid"


def confidence_of(ratio: float, thresholds: ShotThresholds) -> float:
    """0.5 at a threshold, rising towards 0.99 with the log-distance to the nearest one."""
    if ratio <= 0:
        return MAX_CONFIDENCE  # no height at all: as far as can be, not undefined
    distance = min(abs(math.log(ratio / t)) for t in (thresholds.close, thresholds.far))
    value = 0.5 + 0.5 * (1.0 - math.exp(-distance / CONFIDENCE_SCALE))
    return round(min(value, MAX_CONFIDENCE), 2)


def pick_face(faces: Sequence[Face], target: PersonRef | None) -> tuple[Face, bool | None]:
    """The subject's face: the largest of the target's faces, else the largest face.

    Returns the face and whether it is the target's (None when no target was given).
    """
    if not faces:
        raise ValueError("pick_face needs at least one face")
    largest = max(faces, key=lambda f: f.area)
    if target is None:
        return largest, None
    mine = [f for f in faces if target.matches(f)]
    if mine:
        return max(mine, key=lambda f: f.area), True
    return largest, False


def classify(
    width: int,
    height: int,
    faces: Sequence[Face],
    thresholds: ShotThresholds,
    target: PersonRef | None = None,
    *,
    source: str | None = None,
) -> ShotResult:
    """Classify a photo of ``width`` x ``height`` whose faces are known (possibly none).

    Pass ``target=None`` when the faces carry no identities (detected on the fly): the
    largest face is the subject and ``target_found`` stays null.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if not faces:
        return ShotResult(
            shot_type="unknown",
            face_ratio=None,
            confidence=0.0,
            face_bbox=None,
            source=source,
            faces=0,
            target_found=None,
        )
    face, found = pick_face(faces, target)
    x1, y1, x2, y2 = face.bbox
    ratio = round(max(0.0, y2 - y1) / height, RATIO_DECIMALS)
    return ShotResult(
        shot_type=shot_type_of(ratio, thresholds),
        face_ratio=ratio,
        confidence=confidence_of(ratio, thresholds),
        face_bbox=(round(x1), round(y1), round(x2), round(y2)),
        source=source,
        faces=len(faces),
        target_found=found,
    )


def classify_without_faces(*, source: str | None = None) -> ShotResult:
    """No face information at all (no cache entry, no detector): mid, with confidence 0.

    The seed's fallback: every such photo goes to mid/; the caller warns once.
    """
    return ShotResult(
        shot_type="mid",
        face_ratio=None,
        confidence=0.0,
        face_bbox=None,
        source=source,
        faces=None,
        target_found=None,
    )
