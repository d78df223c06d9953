"""The insightface detector plugin, end to end through the plugin manager, on tiny and real packs."""

from __future__ import annotations

import csv
import itertools
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from beaver.errors import BeaverError, ConfigError, ModelError
from beaver.interfaces import FaceDetector
from beaver.plugins import make_plugin_manager
from beaver.testing import tinymodels as tm

pytest.importorskip("onnx")
pytest.importorskip("cv2")
ort = pytest.importorskip("onnxruntime")
insightface_zoo = pytest.importorskip("insightface.model_zoo")

from beaver_insightface import _onnx_peek, check
from beaver_insightface._detector import CPU, CUDA, MAX_BATCH, choose_providers

RED, OLIVE, GREEN, BLUE, PURPLE = tm.IDENTITY_COLOURS
FACES = [(200, 150, 120, RED), (700, 500, 300, BLUE), (1000, 180, 90, RED)]


def create(**options: Any) -> Any:
    return make_plugin_manager().face_detectors().get("insightface").create(options)


@pytest.fixture(scope="module")
def packs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("packs")
    tm.make_tiny_pack(root, "tiny")
    tm.make_tiny_pack(root, "tiny_batch1", batch=1)
    tm.make_tiny_pack(root, "tiny_dim8", dim=8)
    return root


@pytest.fixture(scope="module")
def tiny(packs: Path) -> Any:
    return create(model_pack=str(packs / "tiny"))


def test_finds_faces_best_first_in_input_pixels(tiny):
    image = np.asarray(tm.draw_faces((1280, 720), FACES))

    faces = tiny.detect(image)

    assert isinstance(tiny, FaceDetector)
    assert len(faces) == len(FACES)
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)
    assert min(scores) > 0.5
    for cx, cy, side, _colour in FACES:
        drawn = tm.face_box(cx, cy, side)
        face = max(faces, key=lambda f, d=drawn: tm.box_iou(f.bbox, d))
        assert tm.box_iou(face.bbox, drawn) > 0.9
        assert len(face.landmarks) == 5
        for x, y in face.landmarks:
            assert drawn[0] < x < drawn[2]
            assert drawn[1] < y < drawn[3]


def test_workers_share_the_cores_and_may_call_at_once(packs, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)

    def threads(detector: Any) -> set[int]:
        sessions = [detector._session, detector._detector.session]
        return {s.get_session_options().intra_op_num_threads for s in sessions}

    shared = create(model_pack=str(packs / "tiny"), workers=4, providers=[CPU])
    assert shared.concurrency == 4
    assert threads(shared) == {2}  # 8 cores among 4 workers
    alone = create(model_pack=str(packs / "tiny"), providers=[CPU])
    assert alone.concurrency == 1
    assert threads(alone) == {8}


def test_one_detector_session_serves_every_photo_shape(tiny):
    scrfd = tiny._detector
    if not hasattr(scrfd, "resolution_sessions"):
        pytest.skip("insightface 0.7.x: one session by design")
    for size in [(1280, 720), (720, 1280), (1000, 1000), (1500, 1000)]:
        assert len(tiny.detect(np.asarray(tm.draw_faces(size, FACES[:1])))) == 1
    sessions = scrfd.resolution_sessions
    assert len(sessions) >= 4
    assert all(s is scrfd.session for s in sessions.values())


def test_embeddings_are_unit_vectors_that_tell_people_apart(tiny):
    image = np.asarray(tm.draw_faces((1280, 720), FACES))

    faces = sorted(tiny.detect(image), key=lambda f: f.bbox[0])

    embeddings = np.stack([f.embedding for f in faces])
    assert embeddings.dtype == np.float32
    assert embeddings.shape == (3, tiny.embedding_dim)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    cos = embeddings @ embeddings.T
    red_small, blue, red_far = 0, 1, 2
    assert cos[red_small, red_far] > 0.99
    assert cos[red_small, blue] < 0.5


def test_nothing_on_a_plain_image(tiny):
    assert tiny.detect(np.full((480, 640, 3), 128, dtype=np.uint8)) == []


def test_min_score_is_the_detector_threshold(packs):
    strict = create(model_pack=str(packs / "tiny"), min_score=0.999)

    assert strict.detect(np.asarray(tm.draw_faces((640, 480), FACES[:1]))) == []


def test_rejects_an_image_that_is_not_rgb_uint8(tiny):
    with pytest.raises(ValueError, match="uint8"):
        tiny.detect(np.zeros((10, 10), dtype=np.uint8))


def test_fixed_and_dynamic_batch_recognizers_agree(packs, tiny):
    one_by_one = create(model_pack=str(packs / "tiny_batch1"))
    image = np.asarray(tm.draw_faces((1280, 720), FACES))

    a, b = tiny.detect(image), one_by_one.detect(image)

    assert (tiny.batch_size, one_by_one.batch_size) == (MAX_BATCH, 1)
    np.testing.assert_allclose(
        np.stack([f.embedding for f in a]), np.stack([f.embedding for f in b]), atol=1e-6
    )


def test_many_crops_are_embedded_in_chunks(tiny):
    colours = list(itertools.islice(itertools.cycle(tm.IDENTITY_COLOURS), MAX_BATCH * 2 + 3))
    crops = [np.full((112, 112, 3), c, dtype=np.uint8) for c in colours]

    together = tiny.embed_crops(crops)

    singles = np.concatenate([tiny.embed_crops([c]) for c in crops[:5]])
    assert together.shape == (len(crops), tiny.embedding_dim)
    np.testing.assert_allclose(together[:5], singles, atol=1e-6)
    assert tiny.embed_crops([]).shape == (0, tiny.embedding_dim)


def test_model_id_names_the_embedding_space(packs, tiny, tmp_path):
    dim8 = create(model_pack=str(packs / "tiny_dim8"))
    copy = shutil.copytree(packs / "tiny", tmp_path / "tiny")

    assert tiny.model_id.startswith("insightface:tiny:")
    assert create(model_pack=str(copy)).model_id == tiny.model_id  # same recognizer bytes
    assert dim8.model_id != tiny.model_id
    assert (tiny.embedding_dim, dim8.embedding_dim) == (16, 8)


def test_pack_names_resolve_in_the_models_dir(packs, tiny, monkeypatch):
    assert create(model_pack="tiny", models_dir=packs).model_id == tiny.model_id
    # Without models_dir the configured one is used (BEAVER_MODELS_DIR here).
    monkeypatch.setenv("BEAVER_MODELS_DIR", str(packs))
    assert create(model_pack="tiny_dim8").embedding_dim == 8


def _onnx_model(path: Path, inputs: list[tuple[str, list[Any]]], outputs: int) -> Path:
    """A do-nothing model with these inputs and ``outputs`` outputs, to exercise routing."""
    from onnx import TensorProto, helper

    first = inputs[0][0]
    graph = helper.make_graph(
        [helper.make_node("Identity", [first], [f"out{i}"]) for i in range(outputs)],
        "stub",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(f"out{i}", TensorProto.FLOAT, None) for i in range(outputs)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def test_other_models_of_a_big_pack_are_never_loaded(packs, tmp_path, monkeypatch):
    pack = shutil.copytree(packs / "tiny", tmp_path / "big")
    _onnx_model(pack / "1k3d68.onnx", [("data", [1, 3, 192, 192])], 1)
    _onnx_model(pack / "genderage.onnx", [("data", [1, 3, 96, 96])], 1)
    _onnx_model(pack / "inswapper.onnx", [("target", [1, 3, 128, 128]), ("source", [1, 512])], 1)
    loaded: list[str] = []
    real = insightface_zoo.get_model

    def spy(name: str, **kwargs: Any) -> Any:
        loaded.append(Path(name).name)
        return real(name, **kwargs)

    monkeypatch.setattr(insightface_zoo, "get_model", spy)

    create(model_pack=str(pack))

    assert sorted(loaded) == sorted([tm.DETECTOR_FILE, tm.RECOGNIZER_FILE])


def test_loading_prints_nothing_on_stdout(packs, capsys):
    create(model_pack=str(packs / "tiny"))

    assert capsys.readouterr().out == ""


# --- providers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "available", "chosen"),
    [
        (None, [CPU], [CPU]),
        (None, ["AzureExecutionProvider", CUDA, CPU], [CUDA, CPU]),
        ([CPU], [CUDA, CPU], [CPU]),
        ([CUDA, CPU], [CUDA, CPU], [CUDA, CPU]),
    ],
)
def test_provider_choice(requested, available, chosen):
    assert choose_providers(requested, available) == chosen


def test_providers_missing_from_onnxruntime_are_an_error(packs):
    with pytest.raises(ConfigError, match="no CUDAExecutionProvider"):
        create(model_pack=str(packs / "tiny"), providers=[CUDA])


def test_cuda_goes_first_when_onnxruntime_has_it(packs, monkeypatch):
    asked: list[list[str]] = []
    real = insightface_zoo.get_model

    def spy(name: str, *, providers: list[str], sess_options: Any) -> Any:
        asked.append(providers)
        assert sess_options.intra_op_num_threads >= 1
        # this onnxruntime cannot really run CUDA
        return real(name, providers=[CPU], sess_options=sess_options)

    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(insightface_zoo, "get_model", spy)

    create(model_pack=str(packs / "tiny"))

    assert asked == [[CUDA, CPU], [CUDA, CPU]]


# --- errors ----------------------------------------------------------------------------


def test_missing_known_pack_says_how_to_pull_it(tmp_path):
    with pytest.raises(ModelError) as caught:
        create(model_pack="buffalo_l", models_dir=tmp_path)

    assert "beaver models pull buffalo_l" in str(caught.value)


def test_missing_folder(tmp_path):
    with pytest.raises(BeaverError, match="not found"):
        create(model_pack=str(tmp_path / "nowhere"))


@pytest.mark.parametrize(
    ("keep", "problem"),
    [
        ((tm.DETECTOR_FILE,), "no face recognizer"),
        ((tm.RECOGNIZER_FILE,), "no face detector"),
        ((), "no .onnx files"),
    ],
)
def test_pack_missing_a_model(packs, tmp_path, keep, problem):
    pack = tmp_path / "partial"
    pack.mkdir()
    for name in keep:
        shutil.copy(packs / "tiny" / name, pack / name)

    with pytest.raises(ModelError) as caught:
        create(model_pack=str(pack))

    assert str(pack) in caught.value.message
    assert problem in caught.value.message


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"this is not an onnx model at all",
        lambda data: data[: len(data) // 2],
        lambda data: b"",
    ],
    ids=["garbage", "truncated", "empty"],
)
def test_corrupt_onnx_file_is_named(packs, tmp_path, damage):
    pack = shutil.copytree(packs / "tiny", tmp_path / "broken")
    target = pack / tm.RECOGNIZER_FILE
    target.write_bytes(damage(target.read_bytes()))

    with pytest.raises(ModelError) as caught:
        create(model_pack=str(pack))

    assert caught.value.message.startswith(f"{target}: not a readable ONNX model")
    assert caught.value.hint
    assert "beaver models pull" not in caught.value.hint  # not a pack beaver can download


def test_corrupt_file_in_a_known_pack_says_how_to_download_it(packs, tmp_path):
    pack = shutil.copytree(packs / "tiny", tmp_path / "buffalo_l")
    (pack / tm.DETECTOR_FILE).write_bytes(b"\x00garbage")

    with pytest.raises(ModelError) as caught:
        create(model_pack="buffalo_l", models_dir=tmp_path)

    assert "beaver models pull buffalo_l" in str(caught.value)


def test_detector_without_landmarks_is_refused(packs, tmp_path):
    pack = tmp_path / "nokps"
    pack.mkdir()
    shutil.copy(packs / "tiny" / tm.RECOGNIZER_FILE, pack)
    _onnx_model(pack / "det.onnx", [("input.1", [1, 3, "h", "w"])], 6)

    with pytest.raises(ModelError, match="no face landmarks"):
        create(model_pack=str(pack))


@pytest.mark.parametrize(
    "options",
    [{"det_size": 650}, {"det_size": 96}, {"providers": []}, {"nms": 0}, {"colour": "red"}],
)
def test_invalid_options(options):
    with pytest.raises(ConfigError):
        create(**options)


def test_check_is_cheap_and_names_opencv(monkeypatch):
    import importlib.util

    assert check() is None
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "cv2" else real(name, *a)
    )
    assert "opencv-python-headless" in (check() or "")


# --- reading ONNX headers --------------------------------------------------------------


def test_peek_reads_what_onnxruntime_reports(packs):
    for path in sorted((packs / "tiny").glob("*.onnx")):
        signature = _onnx_peek.peek(path)
        session = ort.InferenceSession(str(path), providers=[CPU])
        assert [(i.name, list(i.shape)) for i in signature.inputs] == [
            (i.name, list(i.shape)) for i in session.get_inputs()
        ]
        assert signature.output_count == len(session.get_outputs())


def test_peek_skips_weights_listed_as_inputs(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((3,), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "old_exporter",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [3]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        initializer=[weight],
    )
    path = tmp_path / "old.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())

    signature = _onnx_peek.peek(path)

    assert [i.name for i in signature.inputs] == ["x"]
    assert signature.output_count == 1


@pytest.mark.parametrize(
    ("inputs", "outputs", "task"),
    [
        ([("i", (1, 3, "h", "w"))], 9, "detection"),
        ([("i", ("n", 3, 112, 112))], 1, "recognition"),
        ([("i", (1, 3, 128, 128))], 1, "recognition"),
        ([("i", (1, 3, 192, 192))], 1, None),
        ([("i", (1, 3, 96, 96))], 1, None),
        ([("t", (1, 3, 128, 128)), ("s", (1, 512))], 1, None),
        ([("i", (1, 3, 100, 100))], 1, None),
        ([("i", (1, 3, "h", "h"))], 1, None),
        ([("i", (1, 512))], 1, None),
    ],
)
def test_route_mirrors_insightface(inputs, outputs, task):
    signature = _onnx_peek.OnnxSignature(
        tuple(_onnx_peek.TensorSignature(n, s) for n, s in inputs), outputs
    )
    assert _onnx_peek.route(signature) == task


# --- real models (../shared) ---------------------------------------------------------------

IDENTITIES = ("angelina_jolie", "deepface_p10", "obama", "deepface_p03")
# insightface >= 2 calls scikit-image's deprecated estimate() inside FaceAnalysis.get.
SKIMAGE_ESTIMATE = "ignore:`estimate` is deprecated:FutureWarning"


def _single_face_photos(shared_faces: Path, per_identity: int) -> list[tuple[str, Path]]:
    with (shared_faces / "MANIFEST.csv").open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["yunet_faces_640"] == "1"]
    picked: list[tuple[str, Path]] = []
    for identity in IDENTITIES:
        files = [r["file"] for r in rows if r["identity"] == identity][:per_identity]
        picked.extend((identity, shared_faces / f) for f in files)
    return picked


def _make_real_pack(shared_models: Path, root: Path) -> Path:
    pack = root / "models" / "realpack"
    pack.mkdir(parents=True)
    for name in ("scrfd_2.5g_bnkps.onnx", "mobilefacenet_yywbxgl.onnx"):
        (pack / name).symlink_to(shared_models / name)
    return pack


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.filterwarnings(SKIMAGE_ESTIMATE)
def test_real_pack_matches_insightface(shared_models: Path, shared_faces: Path, tmp_path: Path):
    import cv2
    from insightface.app import FaceAnalysis

    pack = _make_real_pack(shared_models, tmp_path)
    ours = create(model_pack=str(pack))
    theirs = FaceAnalysis(name="realpack", root=str(tmp_path), providers=[CPU])
    theirs.prepare(ctx_id=0, det_size=(640, 640), det_thresh=0.5)

    assert ours.embedding_dim == 128
    assert ours.batch_size == 1  # this export fixes its batch axis
    for _identity, path in _single_face_photos(shared_faces, 1):
        bgr = cv2.imread(str(path))
        assert bgr is not None, path
        mine = ours.detect(np.ascontiguousarray(bgr[:, :, ::-1]))
        reference = theirs.get(bgr)
        assert len(mine) == len(reference) == 1, path
        assert tm.box_iou(mine[0].bbox, reference[0].bbox) >= 0.95
        assert mine[0].embedding is not None
        assert float(mine[0].embedding @ reference[0].normed_embedding) >= 0.99


@pytest.mark.shared_data
@pytest.mark.slow
def test_real_embeddings_group_people(shared_models: Path, shared_faces: Path, tmp_path: Path):
    from PIL import Image

    ours = create(model_pack=str(_make_real_pack(shared_models, tmp_path)))
    found = []
    for identity, path in _single_face_photos(shared_faces, 3):
        with Image.open(path) as image:
            faces = ours.detect(np.asarray(image.convert("RGB")))
        assert len(faces) == 1, path
        found.append((identity, faces[0].embedding))

    same: list[float] = []
    different: list[float] = []
    for (a, ea), (b, eb) in itertools.combinations(found, 2):
        (same if a == b else different).append(float(ea @ eb))
    assert np.mean(same) > np.mean(different) + 0.2
