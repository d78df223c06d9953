"""The tiny generated models behave like an insightface pack on drawn coloured squares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from beaver.testing import tinymodels as tm

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
model_zoo = pytest.importorskip("insightface.model_zoo")

CPU = ["CPUExecutionProvider"]
RED, OLIVE, GREEN, BLUE, PURPLE = tm.IDENTITY_COLOURS


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory):
    path = tm.write_tiny_scrfd(tmp_path_factory.mktemp("tiny") / "det.onnx")
    model = model_zoo.get_model(str(path), providers=CPU)
    model.prepare(0, input_size=(640, 640), det_thresh=0.5)
    return model


def _detect(detector, image):
    rgb = np.asarray(image)
    return detector.detect(np.ascontiguousarray(rgb[:, :, ::-1]), input_size=(640, 640), max_num=0)


LAYOUTS = {
    "four sizes": (
        (640, 480),
        [(60, 60, 40, RED), (330, 200, 250, OLIVE), (90, 380, 120, GREEN), (580, 420, 70, BLUE)],
    ),
    "scaled down 2x": ((1280, 960), [(200, 200, 160, PURPLE), (900, 600, 480, RED)]),
    "portrait, scaled up": ((300, 400), [(150, 120, 100, GREEN), (150, 320, 50, BLUE)]),
    "cut by the frame": ((640, 480), [(0, 240, 100, OLIVE)]),
}


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
def test_detector_finds_every_square(detector, layout):
    size, faces = LAYOUTS[layout]

    dets, kpss = _detect(detector, tm.draw_faces(size, faces))

    assert len(dets) == len(faces)
    assert kpss.shape == (len(faces), 5, 2)
    for cx, cy, side, _colour in faces:
        drawn = tm.face_box(cx, cy, side)
        clipped = (max(drawn[0], 0), max(drawn[1], 0), drawn[2], drawn[3])
        best = max(tm.box_iou(d[:4], clipped) for d in dets)
        assert best >= 0.9, (drawn, dets)
    assert (dets[:, 4] > 0.9).all()


def test_landmarks_sit_where_a_face_has_them(detector):
    dets, kpss = _detect(detector, tm.draw_faces((640, 480), [(320, 240, 200, RED)]))

    (x1, y1, x2, y2, _score), kps = dets[0], kpss[0]
    rel = (kps - [x1, y1]) / [x2 - x1, y2 - y1]
    left_eye, right_eye, nose, mouth_left, mouth_right = rel
    assert ((rel > 0.2) & (rel < 0.9)).all()
    assert left_eye[0] < nose[0] < right_eye[0]
    assert left_eye[1] < nose[1] < mouth_left[1]
    assert mouth_left[0] < mouth_right[0]


@pytest.mark.parametrize("background", [tm.GREY, (0, 0, 0), (255, 255, 255), (40, 40, 40)])
def test_detector_finds_nothing_on_a_neutral_image(detector, background):
    dets, _kpss = _detect(detector, tm.draw_faces((640, 480), [], background=background))

    assert len(dets) == 0


def test_models_are_tiny_and_routed_like_insightface_models(tmp_path: Path):
    pack = tm.make_tiny_pack(tmp_path, "p")

    det = model_zoo.get_model(str(pack / tm.DETECTOR_FILE), providers=CPU)
    rec = model_zoo.get_model(str(pack / tm.RECOGNIZER_FILE), providers=CPU)

    assert sorted(p.name for p in pack.iterdir()) == sorted([tm.DETECTOR_FILE, tm.RECOGNIZER_FILE])
    assert all(p.stat().st_size < 64_000 for p in pack.iterdir())
    assert det.taskname == "detection"
    assert rec.taskname == "recognition"
    # Normalised inputs like modern ArcFace exports, not raw-pixel MXNet graphs.
    assert (rec.input_mean, rec.input_std, tuple(rec.input_size)) == (127.5, 127.5, (112, 112))


def _crop(colour, *, fill: int = 112, offset: int = 0) -> np.ndarray:
    """An aligned-looking crop: the colour over ``fill`` px, grey around it."""
    crop = np.full((112, 112, 3), tm.GREY, dtype=np.uint8)
    crop[offset : offset + fill, offset : offset + fill] = colour
    return crop


def _embed(path: Path, crops: list[np.ndarray]):
    session = ort.InferenceSession(str(path), providers=CPU)
    blob = ((np.stack(crops).astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2)
    out = session.run(None, {session.get_inputs()[0].name: blob})[0]
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_recognizer_gives_one_direction_per_colour(tmp_path: Path):
    path = tm.write_tiny_recognizer(tmp_path / "rec.onnx", dim=16)
    crops = [_crop(RED), _crop(RED, fill=80, offset=10), _crop(RED, fill=60, offset=40)]
    crops += [_crop(c) for c in tm.IDENTITY_COLOURS[1:]]

    emb = _embed(path, crops)

    assert emb.shape == (len(crops), 16)
    cos = emb @ emb.T
    np.testing.assert_allclose(cos[:3, :3], 1.0, atol=1e-5)
    others = cos[2:, 2:][~np.eye(len(tm.IDENTITY_COLOURS), dtype=bool)]
    assert others.max() < 0.5


def test_recognizer_batch_axis(tmp_path: Path):
    fixed = tm.write_tiny_recognizer(tmp_path / "one.onnx", dim=8, batch=1)
    dynamic = tm.write_tiny_recognizer(tmp_path / "many.onnx", dim=8)

    fixed_input = ort.InferenceSession(str(fixed), providers=CPU).get_inputs()[0]
    dynamic_input = ort.InferenceSession(str(dynamic), providers=CPU).get_inputs()[0]

    assert fixed_input.shape == [1, 3, 112, 112]
    assert isinstance(dynamic_input.shape[0], str)
    np.testing.assert_allclose(_embed(fixed, [_crop(BLUE)]), _embed(dynamic, [_crop(BLUE)]))


@pytest.mark.parametrize(("dim", "batch"), [(2, None), (16, 0)])
def test_recognizer_rejects_impossible_shapes(tmp_path: Path, dim, batch):
    with pytest.raises(ValueError):
        tm.write_tiny_recognizer(tmp_path / "r.onnx", dim=dim, batch=batch)


def test_draw_faces_fills_exactly_the_face_box():
    image = np.asarray(tm.draw_faces((200, 100), [(50.5, 40, 31, RED)], background=(1, 2, 3)))

    x1, y1, x2, y2 = (int(v) for v in tm.face_box(50.5, 40, 31))
    assert image.shape == (100, 200, 3)
    assert (x2 - x1, y2 - y1) == (31, 31)
    assert (image[y1:y2, x1:x2] == RED).all()
    assert (image == RED).all(axis=2).sum() == 31 * 31
    assert image[0, 0].tolist() == [1, 2, 3]


def test_box_iou():
    assert tm.box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert tm.box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert tm.box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
