"""Five-point alignment: the similarity fit, the warp, and agreement with insightface."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from beaver.faces.align import ARCFACE_TEMPLATE, align_face, similarity_transform, template_for

cv2 = pytest.importorskip("cv2")

DOT_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255))


def _similarity(scale: float, degrees: float, shift: tuple[float, float]):
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[scale * c, -scale * s, shift[0]], [scale * s, scale * c, shift[1]]])


def _apply(matrix: np.ndarray, points: np.ndarray):
    return points @ matrix[:, :2].T + matrix[:, 2]


@pytest.mark.parametrize(
    ("scale", "degrees", "shift"),
    [(1.0, 0.0, (0.0, 0.0)), (2.7, 31.0, (40.0, -12.5)), (0.35, -170.0, (300.0, 200.0))],
)
def test_recovers_a_known_similarity_exactly(scale, degrees, shift):
    rng = np.random.default_rng(7)
    src = rng.uniform(0, 200, size=(5, 2))
    known = _similarity(scale, degrees, shift)

    fitted = similarity_transform(src, _apply(known, src))

    np.testing.assert_allclose(fitted, known, atol=1e-9)


def test_least_squares_fit_never_reflects():
    mirrored = ARCFACE_TEMPLATE * np.array([-1.0, 1.0])

    fitted = similarity_transform(mirrored, ARCFACE_TEMPLATE)

    assert np.linalg.det(fitted[:, :2]) > 0


def test_collinear_points_still_give_a_rotation():
    line = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]])
    known = _similarity(1.5, 20.0, (3.0, 4.0))

    fitted = similarity_transform(line, _apply(known, line))

    np.testing.assert_allclose(fitted, known, atol=1e-9)


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (np.ones((5, 2)), ARCFACE_TEMPLATE),  # every point the same
        (np.ones((5, 3)), np.ones((5, 3))),  # not 2-D points
        (ARCFACE_TEMPLATE, ARCFACE_TEMPLATE[:4]),  # different counts
        (np.full((5, 2), np.nan), ARCFACE_TEMPLATE),
    ],
)
def test_rejects_points_that_fit_no_transform(src, dst):
    with pytest.raises(ValueError):
        similarity_transform(src, dst)


def _dotted_face(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A grey image with one coloured dot per landmark, landmarks = template moved by matrix."""
    landmarks = _apply(matrix, ARCFACE_TEMPLATE)
    image = np.full((480, 640, 3), 90, dtype=np.uint8)
    ys, xs = np.mgrid[:480, :640]
    for (x, y), colour in zip(landmarks, DOT_COLOURS, strict=True):
        image[(xs + 0.5 - x) ** 2 + (ys + 0.5 - y) ** 2 <= 36] = colour
    return image, landmarks


def _dot_centres(crop: np.ndarray) -> np.ndarray:
    centres = []
    for colour in DOT_COLOURS:
        mask = np.all(np.abs(crop.astype(int) - colour) < 60, axis=2)
        ys, xs = np.nonzero(mask)
        assert len(xs) > 5, f"dot {colour} missing from the crop"
        centres.append((xs.mean() + 0.5, ys.mean() + 0.5))
    return np.array(centres)


@pytest.mark.parametrize("size", [112, 224])
def test_aligned_crop_puts_the_landmarks_on_the_template(size):
    image, landmarks = _dotted_face(_similarity(3.0, 25.0, (250.0, 60.0)))

    crop = align_face(image, landmarks, size)

    assert crop.shape == (size, size, 3)
    assert crop.dtype == np.uint8
    # Dots are drawn at about 2 px radius in the crop: their centres land within a pixel.
    np.testing.assert_allclose(_dot_centres(crop), template_for(size), atol=1.0)


def test_outside_the_image_is_black():
    image = np.full((100, 100, 3), 200, dtype=np.uint8)
    # A face far bigger than the image: most of the crop comes from outside it.
    landmarks = _apply(_similarity(10.0, 0.0, (-300.0, -400.0)), ARCFACE_TEMPLATE)

    crop = align_face(image, landmarks)

    assert crop[0, 0].tolist() == [0, 0, 0]
    assert (crop == 200).all(axis=2).any()


@pytest.mark.parametrize(
    ("image", "landmarks"),
    [
        (np.zeros((50, 50, 3), np.uint8), np.zeros((4, 2))),
        (np.zeros((50, 50), np.uint8), ARCFACE_TEMPLATE),
        (np.zeros((50, 50, 3), np.float32), ARCFACE_TEMPLATE),
    ],
)
def test_align_face_rejects_bad_input(image, landmarks):
    with pytest.raises(ValueError):
        align_face(image, landmarks)


def test_template_scales_with_the_crop():
    np.testing.assert_allclose(template_for(224), ARCFACE_TEMPLATE * 2)
    with pytest.raises(ValueError):
        template_for(0)


# insightface >= 2 calls scikit-image's deprecated estimate() inside norm_crop.
SKIMAGE_ESTIMATE = "ignore:`estimate` is deprecated:FutureWarning"


@pytest.mark.filterwarnings(SKIMAGE_ESTIMATE)
def test_matches_insightface_norm_crop_on_a_synthetic_face():
    face_align = pytest.importorskip("insightface.utils.face_align")
    image, landmarks = _dotted_face(_similarity(1.7, -12.0, (180.0, 140.0)))
    rng = np.random.default_rng(3)
    image = np.clip(image + rng.integers(0, 40, image.shape), 0, 255).astype(np.uint8)
    landmarks = landmarks + rng.normal(0, 2.0, landmarks.shape)  # not an exact similarity

    theirs = face_align.norm_crop(image, landmarks.astype(np.float32))
    ours = align_face(image, landmarks.astype(np.float32))

    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


@pytest.mark.shared_data
@pytest.mark.filterwarnings(SKIMAGE_ESTIMATE)
def test_matches_insightface_norm_crop_on_a_real_photo(shared_faces: Path, shared_models: Path):
    face_align = pytest.importorskip("insightface.utils.face_align")
    model_zoo = pytest.importorskip("insightface.model_zoo")
    with (shared_faces / "MANIFEST.csv").open(encoding="utf-8") as fh:
        row = next(r for r in csv.DictReader(fh) if r["yunet_faces_640"] == "1")
    bgr = cv2.imread(str(shared_faces / row["file"]))
    detector = model_zoo.get_model(
        str(shared_models / "scrfd_2.5g_bnkps.onnx"), providers=["CPUExecutionProvider"]
    )
    detector.prepare(0, input_size=(640, 640), det_thresh=0.5)
    _dets, kpss = detector.detect(bgr, input_size=(640, 640), max_num=0)
    assert len(kpss) >= 1

    theirs = face_align.norm_crop(bgr, kpss[0])
    ours = align_face(np.ascontiguousarray(bgr[:, :, ::-1]), kpss[0])[:, :, ::-1]

    diff = np.abs(ours.astype(int) - theirs.astype(int))
    assert diff.max() <= 1
    assert diff.mean() < 0.01
