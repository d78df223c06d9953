"""``--crop``: a face-aware crop around the dataset's person at a training aspect ratio.

Group photos and wide shots otherwise teach the LoRA the other people and the empty
space. The crop is the largest box of the shot's aspect ratio (1:1 for close, 3:4 for mid
and far, portrait: sd-scripts' buckets hold both) that fits in the photo, centred on the
person's face across and with the face's centre a third of the way down, moved inside
the photo where it would leave it. A photo whose face does not fit in such a box, or
whose crop would be the whole photo anyway, is left as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

Box = tuple[int, int, int, int]
ASPECT = {"close": 1.0, "mid": 3 / 4, "far": 3 / 4}
"""Width / height of the crop per shot type."""
FACE_LEVEL = 1 / 3
"""Where the face's centre sits, as a fraction of the crop's height from the top."""


def crop_box(width: int, height: int, face: Sequence[float] | None, shot: str) -> Box | None:
    """The crop for a photo of ``width`` x ``height`` whose person's face is ``face``; None: none."""
    aspect = ASPECT.get(shot)
    if face is None or aspect is None or width <= 0 or height <= 0:
        return None
    x1, y1, x2, y2 = (float(v) for v in face)
    crop_w, crop_h = (
        (width, round(width / aspect))
        if width / height < aspect
        else (
            round(height * aspect),
            height,
        )
    )
    crop_w, crop_h = min(crop_w, width), min(crop_h, height)
    if (crop_w, crop_h) == (width, height):
        return None
    if x2 - x1 > crop_w or y2 - y1 > crop_h:
        return None
    left = _clamp((x1 + x2) / 2 - crop_w / 2, 0, width - crop_w)
    top = _clamp((y1 + y2) / 2 - crop_h * FACE_LEVEL, 0, height - crop_h)
    # Never cut the face: move the box to take it in whole (it fits, checked above).
    left = _clamp(left, x2 - crop_w, x1)
    top = _clamp(top, y2 - crop_h, y1)
    left, top = round(_clamp(left, 0, width - crop_w)), round(_clamp(top, 0, height - crop_h))
    return (left, top, left + crop_w, top + crop_h)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def shift_box(box: Sequence[float], crop: Box | None) -> list[int]:
    """``box`` in the cropped image's pixels."""
    if crop is None:
        return [round(v) for v in box]
    dx, dy = crop[0], crop[1]
    return [round(box[0] - dx), round(box[1] - dy), round(box[2] - dx), round(box[3] - dy)]
