"""The tiny YuNet: OpenCV's FaceDetectorYN reads it as YuNet and finds coloured squares with it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from beaver.testing.tinymodels import GREY, IDENTITY_COLOURS, box_iou, draw_faces, face_box
from beaver.testing.tinyyunet import (
    DETECTOR_FILE,
    MAX_SIDE,
    OUTPUT_CHANNELS,
    OUTPUT_NAMES,
    RECOGNIZER_FILE,
    STRIDES,
    make_tiny_yunet_pack,
    write_tiny_yunet,
)

cv2 = pytest.importorskip("cv2")
onnx = pytest.importorskip("onnx")

Face = tuple[float, float, int, tuple[int, int, int]]


@pytest.fixture(scope="module")
def tiny_yunet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_yunet(tmp_path_factory.mktemp("tinyyunet") / "yunet.onnx")


def _detect(model: Path, faces: Sequence[Face], size: tuple[int, int], score: float = 0.5):
    """FaceDetectorYN's rows for the drawn faces, as OpenCV's own YuNet demo runs it."""
    bgr = cv2.cvtColor(np.asarray(draw_faces(size, faces)), cv2.COLOR_RGB2BGR)
    yunet = cv2.FaceDetectorYN.create(str(model), "", size, score, 0.3, 5000)
    _, rows = yunet.detect(bgr)
    return np.zeros((0, 15), np.float32) if rows is None else rows


def _boxes(rows) -> list[tuple[float, float, float, float]]:
    return [(r[0], r[1], r[0] + r[2], r[1] + r[3]) for r in rows]


def test_file_is_small_and_has_yunets_interface(tiny_yunet: Path):
    assert tiny_yunet.stat().st_size < 20_000
    model = onnx.load(str(tiny_yunet))
    onnx.checker.check_model(model)
    (image,) = model.graph.input
    assert image.name == "input"
    dims = [d.dim_value or d.dim_param for d in image.type.tensor_type.shape.dim]
    assert dims[:2] == [1, 3]
    outputs = {o.name: o.type.tensor_type.shape.dim[2].dim_value for o in model.graph.output}
    assert set(outputs) == set(OUTPUT_NAMES)
    assert all(outputs[f"{kind}_{s}"] == n for kind, n in OUTPUT_CHANNELS.items() for s in STRIDES)


@pytest.mark.shared_data
def test_interface_matches_the_real_yunet(tiny_yunet: Path, shared_models: Path):
    real = onnx.load(
        str(shared_models / "face_detection_yunet_2023mar.onnx"), load_external_data=False
    )
    tiny = onnx.load(str(tiny_yunet))

    def interface(model) -> tuple[list[str], dict[str, int]]:
        widths = {o.name: o.type.tensor_type.shape.dim[-1].dim_value for o in model.graph.output}
        return [i.name for i in model.graph.input], widths

    assert interface(tiny) == interface(real)


@pytest.mark.parametrize(
    ("size", "faces"),
    [
        ((320, 240), [(60, 60, 40, IDENTITY_COLOURS[0])]),
        ((320, 240), [(160, 120, 16, IDENTITY_COLOURS[1])]),
        ((640, 480), [(320, 240, MAX_SIDE, IDENTITY_COLOURS[2])]),
        ((300, 200), [(20, 180, 40, IDENTITY_COLOURS[3])]),  # against two edges
        (
            (640, 480),
            [
                (90, 90, 60, IDENTITY_COLOURS[0]),
                (400, 120, 110, IDENTITY_COLOURS[1]),
                (150, 380, 30, IDENTITY_COLOURS[2]),
                (480, 380, 80, IDENTITY_COLOURS[4]),
            ],
        ),
    ],
)
def test_finds_each_square_with_a_tight_box(tiny_yunet: Path, size, faces):
    rows = _detect(tiny_yunet, faces, size)
    assert len(rows) == len(faces)
    for cx, cy, side, _colour in faces:
        assert max(box_iou(b, face_box(cx, cy, side)) for b in _boxes(rows)) >= 0.8


def test_finds_nothing_on_neutral_images(tiny_yunet: Path):
    for background in (GREY, (0, 0, 0), (255, 255, 255)):
        size = (256, 192)
        pixels = np.asarray(draw_faces(size, [], background=background))
        yunet = cv2.FaceDetectorYN.create(str(tiny_yunet), "", size, 0.05, 0.3, 5000)
        assert yunet.detect(pixels)[1] is None


def test_landmarks_sit_like_a_face_inside_the_box(tiny_yunet: Path):
    (row,) = _detect(tiny_yunet, [(160, 120, 80, IDENTITY_COLOURS[0])], (320, 240))
    x1, y1, x2, y2 = _boxes([row])[0]
    points = row[4:14].reshape(5, 2)
    assert ((points[:, 0] > x1) & (points[:, 0] < x2)).all()
    assert ((points[:, 1] > y1) & (points[:, 1] < y2)).all()
    left_eye, right_eye, nose, left_mouth, right_mouth = points
    assert left_eye[0] < nose[0] < right_eye[0]
    assert left_mouth[0] < right_mouth[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])


def test_bigger_squares_score_higher_and_small_ones_pass_the_default_threshold(tiny_yunet: Path):
    faces = [(60, 60, 20, IDENTITY_COLOURS[0]), (300, 200, 150, IDENTITY_COLOURS[1])]
    rows = _detect(tiny_yunet, faces, (480, 320))
    by_side = sorted(rows, key=lambda r: r[2])
    assert 0.7 < by_side[0][14] < by_side[1][14] <= 1.0


def test_onnxruntime_gives_one_row_per_cell(tiny_yunet: Path):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(tiny_yunet), providers=["CPUExecutionProvider"])
    height, width = 96, 160
    image = np.full((1, 3, height, width), 128, np.float32)
    outputs = dict(
        zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), {"input": image}), strict=True)
    )
    for kind, channels in OUTPUT_CHANNELS.items():
        for stride in STRIDES:
            assert outputs[f"{kind}_{stride}"].shape == (
                1,
                (height // stride) * (width // stride),
                channels,
            )
    assert float(outputs["cls_8"].max()) < 0.01


def test_pack_holds_a_yunet_and_a_recognizer(tmp_path: Path):
    pack = make_tiny_yunet_pack(tmp_path)
    assert pack == tmp_path / "tinyyunet"
    assert sorted(p.name for p in pack.iterdir()) == sorted([DETECTOR_FILE, RECOGNIZER_FILE])
    recognizer = onnx.load(str(pack / RECOGNIZER_FILE))
    dims = [d.dim_value for d in recognizer.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1:] == [3, 112, 112]
