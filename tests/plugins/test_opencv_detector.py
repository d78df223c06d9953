"""The ``opencv`` face detector: YuNet + a 112x112 recognizer, through the real plugin record."""

from __future__ import annotations

import csv
import importlib.metadata
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps

from beaver.errors import BeaverError, ConfigError, ModelError
from beaver.plugins import FaceDetectorSpec, make_plugin_manager
from beaver.testing.tinymodels import (
    IDENTITY_COLOURS,
    box_iou,
    draw_faces,
    face_box,
    write_tiny_recognizer,
)
from beaver.testing.tinyyunet import (
    DETECTOR_FILE,
    RECOGNIZER_FILE,
    make_tiny_yunet_pack,
    write_tiny_yunet,
)

cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

# After the skips: the detector module imports cv2.
import beaver_opencv
from beaver_opencv._detector import OpenCVFaceDetector

RED, OLIVE, GREEN, BLUE, PURPLE = IDENTITY_COLOURS


@pytest.fixture(scope="module")
def spec() -> FaceDetectorSpec:
    return make_plugin_manager().face_detectors().get("opencv")


@pytest.fixture(scope="module")
def tiny_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_yunet_pack(tmp_path_factory.mktemp("packs"))


def _create(spec: FaceDetectorSpec, values: Mapping[str, Any]) -> OpenCVFaceDetector:
    detector = spec.create(values)
    assert isinstance(detector, OpenCVFaceDetector)
    return detector


@pytest.fixture(scope="module")
def detector(spec: FaceDetectorSpec, tiny_pack: Path) -> OpenCVFaceDetector:
    return _create(spec, {"model_pack": str(tiny_pack)})


def _pixels(
    size: tuple[int, int], faces: Sequence[tuple[float, float, int, tuple[int, int, int]]]
) -> np.ndarray:
    return np.asarray(draw_faces(size, faces))


def _pack(folder: Path, files: dict[str, Path | bytes]) -> Path:
    folder.mkdir(parents=True)
    for name, source in files.items():
        if isinstance(source, bytes):
            (folder / name).write_bytes(source)
        else:
            shutil.copyfile(source, folder / name)
    return folder


def _write_probe_recognizer(path: Path, size: int = 112) -> Path:
    """A recognizer whose output is the crop's 16x16-block means: sensitive to every pixel detail."""
    from onnx import TensorProto, helper

    pool = helper.make_node("AveragePool", ["x"], ["p"], kernel_shape=[16, 16], strides=[16, 16])
    flat = helper.make_node("Flatten", ["p"], ["y"])
    cells = 3 * (size // 16) ** 2
    graph = helper.make_graph(
        [pool, flat],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cells])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 6
    path.write_bytes(model.SerializeToString())
    return path


# --- the record -------------------------------------------------------------------------


def test_record_says_the_weights_are_permissive(spec: FaceDetectorSpec):
    assert "MIT" in spec.licence
    assert "Apache-2.0" in spec.licence
    assert "commercial" in spec.description
    assert spec.readiness() is None


def test_options_are_validated(spec: FaceDetectorSpec):
    options = spec.parse_options({})
    assert options.model_dump() == {
        "model_pack": "yunet_sface",
        "models_dir": None,
        "min_score": 0.7,
        "input_size": 640,
        "nms": 0.3,
    }
    with pytest.raises(ConfigError, match="score_threshold"):
        spec.parse_options({"score_threshold": 0.5})
    with pytest.raises(ConfigError, match="min_score"):
        spec.parse_options({"min_score": 1.5})


def test_check_reports_an_opencv_too_old(monkeypatch: pytest.MonkeyPatch):
    versions = {"opencv-python": "4.8.1.78"}

    def version(dist: str) -> str:
        if dist not in versions:
            raise importlib.metadata.PackageNotFoundError(dist)
        return versions[dist]

    monkeypatch.setattr(importlib.metadata, "version", version)
    assert beaver_opencv.opencv_version() == (4, 8, 1)
    problem = beaver_opencv.check()
    assert problem is not None
    assert "OpenCV 4.9" in problem
    assert "4.8.1" in problem
    versions["opencv-python"] = "5.0.0.86"
    assert beaver_opencv.check() is None
    versions.clear()  # cv2 from a system package: nothing to judge by
    assert beaver_opencv.check() is None


def test_check_does_not_import_opencv():
    code = "import sys, beaver_opencv; beaver_opencv.check(); print('cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- detection and embeddings on the tiny pack ------------------------------------------


def test_detects_squares_best_first_with_normalised_embeddings(detector: OpenCVFaceDetector):
    faces = [(60, 60, 40, RED), (200, 120, 90, GREEN), (280, 40, 30, RED)]
    found = detector.detect(_pixels((320, 240), faces))
    assert len(found) == 3
    scores = [f.score for f in found]
    assert scores == sorted(scores, reverse=True)
    assert box_iou(found[0].bbox, face_box(200, 120, 90)) >= 0.9  # the biggest scores best
    for face in found:
        assert max(box_iou(face.bbox, face_box(cx, cy, s)) for cx, cy, s, _ in faces) >= 0.8
        assert face.embedding is not None
        assert face.embedding.dtype == np.float32
        assert face.embedding.shape == (detector.embedding_dim,)
        assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-5)


def test_same_colour_is_the_same_person(detector: OpenCVFaceDetector):
    faces = [(70, 70, 60, RED), (250, 70, 60, BLUE), (70, 200, 50, BLUE), (250, 200, 40, RED)]
    found = detector.detect(_pixels((320, 260), faces))
    assert len(found) == 4

    def embedding_at(cx: float, cy: float, side: int) -> Any:
        face = max(found, key=lambda f: box_iou(f.bbox, face_box(cx, cy, side)))
        assert face.embedding is not None
        return face.embedding

    red_a, blue_a, blue_b, red_b = (embedding_at(cx, cy, s) for cx, cy, s, _ in faces)
    assert float(red_a @ red_b) > 0.99
    assert float(blue_a @ blue_b) > 0.99
    assert float(red_a @ blue_a) < 0.5


def test_landmarks_follow_insightface_order(detector: OpenCVFaceDetector):
    (face,) = detector.detect(_pixels((320, 240), [(160, 120, 100, PURPLE)]))
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks
    x1, y1, x2, y2 = face.bbox
    assert x1 < lx < nx < rx < x2
    assert mlx < mrx
    assert y1 < max(ly, ry) < ny < min(mly, mry) < y2


def test_nothing_on_a_plain_grey_photo(detector: OpenCVFaceDetector):
    assert detector.detect(_pixels((400, 300), [])) == []
    assert detector.detect(np.zeros((0, 10, 3), np.uint8)) == []


def test_takes_numpy_views(detector: OpenCVFaceDetector):
    pixels = _pixels((320, 240), [(80, 120, 60, OLIVE)])
    (face,) = detector.detect(pixels[:, ::-1])  # mirrored: a view with a negative stride
    assert box_iou(face.bbox, face_box(320 - 80, 120, 60)) >= 0.8


def test_recognizer_prefers_cuda_when_onnxruntime_has_it(monkeypatch: pytest.MonkeyPatch):
    import onnxruntime

    from beaver_opencv._recognizer import default_providers

    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["AzureExecutionProvider", "CPUExecutionProvider", "CUDAExecutionProvider"],
    )
    assert default_providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert default_providers() == ["CPUExecutionProvider"]


def test_rejects_what_is_not_an_rgb_array(detector: OpenCVFaceDetector):
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((20, 20), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((20, 20, 3), np.float32))


def test_boxes_come_back_in_the_input_images_pixels(spec: FaceDetectorSpec, tiny_pack: Path):
    small = _create(spec, {"model_pack": str(tiny_pack), "input_size": 320})
    faces = [(150, 150, 120, OLIVE), (480, 300, 80, GREEN)]
    found = small.detect(_pixels((640, 480), faces))  # YuNet sees it at half size
    assert len(found) == 2
    for cx, cy, side, _ in faces:
        best = max(found, key=lambda f: box_iou(f.bbox, face_box(cx, cy, side)))
        assert box_iou(best.bbox, face_box(cx, cy, side)) >= 0.85
        x1, y1, x2, y2 = best.bbox
        assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in best.landmarks)


def test_a_face_filling_the_frame_is_found_on_a_padded_second_look(detector: OpenCVFaceDetector):
    pixels = _pixels((200, 200), [(100, 100, 190, GREEN)])
    # At 640 px the square is ~600 px wide: wider than any YuNet window.
    assert len(detector.detect_at(pixels, 640, border=0)) == 0
    (face,) = detector.detect(pixels)
    assert box_iou(face.bbox, face_box(100, 100, 190)) >= 0.8


def test_min_score_and_nms_reach_opencv(spec: FaceDetectorSpec, tiny_pack: Path):
    strict = _create(spec, {"model_pack": str(tiny_pack), "min_score": 0.95, "nms": 0.45})
    assert strict._yunet.getScoreThreshold() == pytest.approx(0.95)
    assert strict._yunet.getNMSThreshold() == pytest.approx(0.45)
    found = strict.detect(_pixels((640, 480), [(100, 100, 30, RED), (400, 250, 180, BLUE)]))
    assert [box_iou(f.bbox, face_box(400, 250, 180)) > 0.8 for f in found] == [True]


def test_fixed_batch_and_dynamic_batch_recognizers_agree(spec: FaceDetectorSpec, tmp_path: Path):
    faces = [(70, 70, 60, RED), (230, 150, 80, BLUE)]
    pixels = _pixels((320, 240), faces)
    embeddings = []
    for batch in (None, 1):
        pack = make_tiny_yunet_pack(tmp_path, f"batch{batch}", batch=batch)
        found = _create(spec, {"model_pack": str(pack)}).detect(pixels)
        assert len(found) == 2
        embeddings.append(np.stack([np.asarray(f.embedding) for f in found]))
    np.testing.assert_allclose(embeddings[0], embeddings[1], atol=1e-5)


def test_sface_recognizers_see_what_opencvs_face_recognizer_sees(
    spec: FaceDetectorSpec, tmp_path: Path
):
    # SFace is not available offline; a probe that reports its input's 16x16 block means
    # checks alignment, channel order and pixel scale against cv2.FaceRecognizerSF.
    pack = tmp_path / "probe_pack"
    write_tiny_yunet(pack / DETECTOR_FILE)
    probe = _write_probe_recognizer(pack / "face_recognition_sface_probe.onnx")
    detector = _create(spec, {"model_pack": str(pack)})
    rng = np.random.default_rng(3)
    pixels = _pixels((320, 240), [(90, 90, 70, RED), (230, 150, 90, OLIVE)]).copy()
    pixels[pixels[..., 0] == RED[0]] = rng.integers(0, 40, (1, 3)) + np.array(RED)  # not uniform
    found = detector.detect(pixels)
    rows = detector.find(pixels)
    assert len(found) == len(rows) == 2
    reference = cv2.FaceRecognizerSF.create(str(probe), "")
    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    for face, row in zip(found, rows[np.argsort(-rows[:, 14], kind="stable")], strict=True):
        expected = reference.feature(reference.alignCrop(bgr, row)).ravel()
        expected /= np.linalg.norm(expected)
        assert float(face.embedding @ expected) > 0.9999


# --- model ids and errors ---------------------------------------------------------------


def test_model_id_names_plugin_pack_and_recognizer(
    spec: FaceDetectorSpec, tmp_path: Path, detector: OpenCVFaceDetector
):
    assert detector.model_id.startswith("opencv:tinyyunet:")
    assert len(detector.model_id.rsplit(":", 1)[1]) == 16  # as the insightface plugin
    assert detector.embedding_dim == 16
    other = _create(spec, {"model_pack": str(make_tiny_yunet_pack(tmp_path, "tinyyunet", dim=8))})
    assert other.embedding_dim == 8
    assert other.model_id.startswith("opencv:tinyyunet:")
    assert other.model_id != detector.model_id


def test_pack_names_resolve_in_the_models_dir(spec: FaceDetectorSpec, tmp_path: Path, monkeypatch):
    make_tiny_yunet_pack(tmp_path / "models", "mine")
    by_option = _create(spec, {"model_pack": "mine", "models_dir": str(tmp_path / "models")})
    monkeypatch.setenv("BEAVER_MODELS_DIR", str(tmp_path / "models"))
    by_setting = _create(spec, {"model_pack": "mine"})
    assert by_option.model_id == by_setting.model_id
    assert by_option.model_id.startswith("opencv:mine:")


def test_missing_pack_names_the_fix(spec: FaceDetectorSpec, tmp_path: Path):
    with pytest.raises(ModelError, match="beaver models pull yunet_sface"):
        _create(spec, {"models_dir": str(tmp_path)})
    with pytest.raises(ModelError, match="nosuchpack"):
        _create(spec, {"model_pack": "nosuchpack", "models_dir": str(tmp_path)})
    with pytest.raises(BeaverError, match="not found"):
        _create(spec, {"model_pack": str(tmp_path / "absent")})


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no .onnx files"),
        ({DETECTOR_FILE: "yunet"}, "no face recognizer"),
        ({RECOGNIZER_FILE: "recognizer"}, "no YuNet face detector"),
        ({DETECTOR_FILE: b"not a model", RECOGNIZER_FILE: "recognizer"}, "not a readable ONNX"),
        ({DETECTOR_FILE: "yunet", RECOGNIZER_FILE: b"\x08\x01garbage"}, "not a readable ONNX"),
        ({"yunet.onnx": "recognizer", RECOGNIZER_FILE: "recognizer"}, "not a YuNet face detector"),
        ({DETECTOR_FILE: "yunet", RECOGNIZER_FILE: "probe64"}, "not a face recognizer"),
        (
            {DETECTOR_FILE: "yunet", "a.onnx": "recognizer", "b.onnx": "recognizer"},
            "cannot tell which model is the face recognizer",
        ),
    ],
)
def test_broken_packs_say_which_file_and_what_to_do(
    spec: FaceDetectorSpec, tiny_pack: Path, tmp_path: Path, files: dict[str, Any], message: str
):
    sources: dict[str, Path | bytes] = {}
    for name, what in files.items():
        if isinstance(what, bytes):
            sources[name] = what
        elif what == "yunet":
            sources[name] = tiny_pack / DETECTOR_FILE
        elif what == "recognizer":
            sources[name] = tiny_pack / RECOGNIZER_FILE
        else:
            sources[name] = _write_probe_recognizer(tmp_path / "probe64.onnx", size=64)
    pack = _pack(tmp_path / "pack", sources)
    with pytest.raises(ModelError, match=message) as caught:
        _create(spec, {"model_pack": str(pack)})
    assert str(pack) in str(caught.value)
    assert caught.value.hint


def test_an_sface_name_picks_the_recognizer_among_several(
    spec: FaceDetectorSpec, tiny_pack: Path, tmp_path: Path
):
    sface = tmp_path / "face_recognition_sface_tiny.onnx"
    write_tiny_recognizer(sface, dim=12)
    pack = _pack(
        tmp_path / "pack",
        {
            DETECTOR_FILE: tiny_pack / DETECTOR_FILE,
            "other.onnx": tiny_pack / RECOGNIZER_FILE,
            sface.name: sface,
        },
    )
    detector = _create(spec, {"model_pack": str(pack)})
    assert detector.files.recognizer.name == sface.name
    assert detector.embedding_dim == 12


# --- the real YuNet (../shared) ---------------------------------------------------------


def _manifest(shared_faces: Path) -> list[dict[str, str]]:
    with (shared_faces / "MANIFEST.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _photo(shared_faces: Path, name: str) -> np.ndarray:
    with Image.open(shared_faces / name) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


@pytest.fixture
def real_detector(
    spec: FaceDetectorSpec, shared_models: Path, tmp_path: Path
) -> OpenCVFaceDetector:
    """The real YuNet with a tiny recognizer (SFace cannot be downloaded here)."""
    pack = tmp_path / "yunet_tiny_recognizer"
    pack.mkdir()
    yunet = "face_detection_yunet_2023mar.onnx"
    (pack / yunet).symlink_to(shared_models / yunet)
    write_tiny_recognizer(pack / RECOGNIZER_FILE)
    return _create(spec, {"model_pack": str(pack)})


@pytest.mark.shared_data
@pytest.mark.slow
def test_real_yunet_counts_agree_with_the_manifest(
    real_detector: OpenCVFaceDetector, shared_faces: Path
):
    rows = _manifest(shared_faces)[::12]  # 25 photos across every source
    counts = {r["file"]: len(real_detector.detect(_photo(shared_faces, r["file"]))) for r in rows}
    expected = {r["file"]: int(r["yunet_faces_640"]) for r in rows}
    agreeing = sum(counts[f] == expected[f] for f in counts)
    # The manifest was measured with another resize; a borderline face may flip.
    assert agreeing >= 0.9 * len(rows), {f: (counts[f], expected[f]) for f in counts}
    assert all(abs(counts[f] - expected[f]) <= 2 for f in counts)


@pytest.mark.shared_data
def test_real_yunet_finds_no_face_in_most_no_face_photos(
    real_detector: OpenCVFaceDetector, shared_faces: Path
):
    rows = [r for r in _manifest(shared_faces) if r["identity"] == "noface"]
    empty = sum(not real_detector.detect(_photo(shared_faces, r["file"])) for r in rows)
    assert len(rows) >= 10
    assert empty >= len(rows) - 2


@pytest.mark.shared_data
def test_real_yunet_landmarks_are_in_insightface_order(
    real_detector: OpenCVFaceDetector, shared_faces: Path
):
    (face,) = real_detector.detect(_photo(shared_faces, "deepface/angelina_jolie/img1.jpg"))
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks
    assert lx < nx < rx  # the eye on the image's left comes first
    assert mlx < mrx
    assert max(ly, ry) < ny < min(mly, mry)
    assert face.embedding is not None
    assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.shared_data
def test_real_close_up_needs_the_padded_second_look(
    spec: FaceDetectorSpec, real_detector: OpenCVFaceDetector, shared_faces: Path
):
    pixels = _photo(shared_faces, "facenet_pytorch/paul_rudd/paul_rudd_1.jpg")
    large = _create(spec, {"model_pack": str(real_detector.files.folder), "input_size": 1280})
    assert len(large.detect_at(pixels, 1280, border=0)) == 0  # DATA.md: missed at 1280 px
    (face,) = large.detect(pixels)
    x1, _, x2, _ = face.bbox
    assert (x2 - x1) > 0.3 * pixels.shape[1]  # a close-up: the face is a big part of the frame
    assert box_iou(face.bbox, real_detector.detect(pixels)[0].bbox) >= 0.7


@pytest.mark.shared_data
def test_a_folder_of_many_models_is_routed_by_graph(spec: FaceDetectorSpec, shared_models: Path):
    # Two YuNets, two 112x112 recognizers and two other detectors: the recognizer is ambiguous.
    with pytest.raises(
        ModelError, match=r"mobilefacenet_paddle\.onnx, mobilefacenet_yywbxgl\.onnx"
    ):
        _create(spec, {"model_pack": str(shared_models)})
