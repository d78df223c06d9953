"""--crop: the person's face kept whole, at the shot's aspect ratio, other people cut away."""

from __future__ import annotations

import pytest

from beaver.prep.crop import crop_box, shift_box


def test_a_wide_group_photo_is_cut_to_the_person() -> None:
    # 1600x900, the person's face on the right; mid → 3:4 portrait, full height.
    box = crop_box(1600, 900, (1200, 200, 1320, 340), "mid")
    assert box is not None
    x1, y1, x2, y2 = box
    assert (x2 - x1, y2 - y1) == (675, 900)
    assert x1 <= 1200
    assert x2 >= 1320
    assert abs((x1 + x2) / 2 - 1260) <= 1  # centred on it


def test_close_shots_are_square_with_the_face_a_third_down() -> None:
    box = crop_box(1000, 1500, (400, 500, 600, 760), "close")
    assert box == (0, 297, 1000, 1297)
    assert box[1] + (box[3] - box[1]) / 3 == pytest.approx(630, abs=1)  # face centre at 1/3


def test_crops_stay_inside_the_photo_and_keep_the_face() -> None:
    for face in [(0, 0, 100, 120), (1500, 0, 1600, 120), (700, 780, 800, 900)]:
        box = crop_box(1600, 900, face, "far")
        assert box is not None
        assert box[0] >= 0
        assert box[2] <= 1600
        assert box[1] >= 0
        assert box[3] <= 900
        assert box[0] <= face[0]
        assert box[2] >= face[2]
        assert box[1] <= face[1]
        assert box[3] >= face[3]


@pytest.mark.parametrize(
    ("size", "face", "shot"),
    [
        ((600, 800), (100, 100, 300, 300), "mid"),  # already 3:4: nothing to cut
        ((1000, 1000), (100, 100, 300, 300), "close"),  # already square
        ((1600, 900), (100, 100, 300, 300), "unknown"),  # no shot
        ((1600, 900), None, "mid"),  # no face
        ((1600, 400), (100, 0, 500, 400), "mid"),  # face wider than any 3:4 box
    ],
)
def test_no_crop(size: tuple[int, int], face: tuple[int, int, int, int] | None, shot: str) -> None:
    assert crop_box(*size, face, shot) is None


def test_shift_box() -> None:
    assert shift_box((120.4, 80, 450, 520), None) == [120, 80, 450, 520]
    assert shift_box((120, 80, 450, 520), (100, 50, 600, 700)) == [20, 30, 350, 470]
