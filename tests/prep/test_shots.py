"""Shot classification: thresholds, the subject's face, the face cache, on-the-fly detection."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from beaver.errors import InputError
from beaver.faces.cache import CACHE_NAME, CacheFace, CacheImage, FaceCache
from beaver.faces.scan import ScanPlan
from beaver.interfaces import DetectedFace
from beaver.prep.faces import (
    DETECT_PLAN,
    FaceCacheIndex,
    detect_faces_on_the_fly,
)
from beaver.prep.shots import (
    Face,
    PersonRef,
    ShotResult,
    ShotThresholds,
    classify,
    classify_without_faces,
    confidence_of,
)
from beaver.testing.tinymodels import draw_faces

ROOT = Path(__file__).resolve().parents[2]
LABELS = ROOT / "benchmarks" / "data" / "shot_labels.csv"
T = ShotThresholds()
RED, BLUE, GREEN = (220, 30, 30), (30, 40, 220), (30, 200, 40)


def face(height: float, *, width: float | None = None, **kw: Any) -> Face:
    w = height if width is None else width
    return Face(bbox=(10.0, 20.0, 10.0 + w, 20.0 + height), **kw)


def shot(ratio: float, height: int = 1000) -> ShotResult:
    return classify(800, height, [face(ratio * height)], T)


# --- thresholds and classes ---------------------------------------------------------------


def test_default_thresholds_are_the_calibrated_ones() -> None:
    assert (T.close, T.far) == (0.37, 0.148)


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        (0.9, "close"),
        (0.371, "close"),
        (0.37, "close"),  # at the close threshold: close
        (0.369, "mid"),
        (0.25, "mid"),
        (0.148, "mid"),  # at the far threshold: still mid
        (0.147, "far"),
        (0.02, "far"),
    ],
)
def test_each_class_at_and_around_the_thresholds(ratio: float, expected: str) -> None:
    result = shot(ratio)
    assert result.shot_type == expected
    assert result.face_ratio == pytest.approx(ratio)


def test_ratio_is_face_height_over_image_height_not_area() -> None:
    # A wide, short face in a tall image: height decides, not width or area.
    result = classify(400, 1000, [face(200, width=390)], T)
    assert result.face_ratio == 0.2
    assert result.shot_type == "mid"


def test_ratio_rounded_before_classifying_so_type_and_ratio_agree() -> None:
    result = classify(800, 1000, [face(369.6)], T)
    assert result.face_ratio == 0.37
    assert result.shot_type == "close"


def test_custom_thresholds() -> None:
    loose = ShotThresholds(close=0.25, far=0.08)
    assert classify(800, 1000, [face(300)], loose).shot_type == "close"
    assert classify(800, 1000, [face(100)], loose).shot_type == "mid"
    assert classify(800, 1000, [face(70)], loose).shot_type == "far"


@pytest.mark.parametrize(("close", "far"), [(0.1, 0.2), (0.2, 0.2), (0.3, 0), (0.3, -0.1)])
def test_thresholds_validated(close: float, far: float) -> None:
    with pytest.raises(ValidationError):
        ShotThresholds(close=close, far=far)


def test_thresholds_frozen() -> None:
    with pytest.raises(ValidationError):
        T.close = 0.5  # type: ignore[misc]


# --- confidence ---------------------------------------------------------------------------


def test_confidence_half_at_each_threshold() -> None:
    assert confidence_of(T.close, T) == 0.5
    assert confidence_of(T.far, T) == 0.5


def test_confidence_monotonic_away_from_thresholds() -> None:
    above_close = [confidence_of(r, T) for r in np.linspace(T.close, 1.0, 30)]
    below_far = [confidence_of(r, T) for r in np.linspace(T.far, 0.005, 30)]
    mid_centre = (T.close * T.far) ** 0.5  # the log-middle of the mid band
    up = [confidence_of(r, T) for r in np.linspace(T.far, mid_centre, 20)]
    down = [confidence_of(r, T) for r in np.linspace(mid_centre, T.close, 20)]
    for rising in (above_close, below_far, up):
        assert all(b >= a for a, b in itertools.pairwise(rising))
        assert rising[-1] > rising[0]
    assert all(b <= a for a, b in itertools.pairwise(down))
    assert 0.85 < confidence_of(mid_centre, T) < 0.95


def test_confidence_bounded() -> None:
    for ratio in (0.0, 1e-6, 0.001, 0.5, 1.0, 5.0):
        assert 0.5 <= confidence_of(ratio, T) <= 0.99
    assert confidence_of(1.0, T) == 0.99  # a face chip: as sure as it gets


# --- the subject's face -------------------------------------------------------------------


def test_largest_face_by_area_without_target() -> None:
    small_tall = Face(bbox=(0, 0, 10, 500))  # area 5000, tall
    big = Face(bbox=(100, 100, 300, 300))  # area 40000, 200 high
    result = classify(1000, 1000, [small_tall, big], T)
    assert result.face_bbox == (100, 100, 300, 300)
    assert result.face_ratio == 0.2
    assert result.faces == 2
    assert result.target_found is None


def test_target_by_person_id() -> None:
    me = face(100, person="person_002", name="Emma")
    other = face(500, person="person_001", name="Bob")
    result = classify(800, 1000, [other, me], T, PersonRef(person="person_002"))
    assert result.face_ratio == 0.1
    assert result.shot_type == "far"
    assert result.target_found is True


def test_target_by_name_case_insensitive() -> None:
    me = face(200, person="person_002", name="Emma")
    other = face(500, person="person_001", name="Bob")
    result = classify(800, 1000, [other, me], T, PersonRef.from_text("emma"))
    assert result.face_ratio == 0.2
    assert result.target_found is True


def test_target_largest_of_own_faces() -> None:
    faces = [face(100, name="Emma"), face(300, name="Emma"), face(600, name="Bob")]
    assert classify(800, 1000, faces, T, PersonRef(name="EMMA")).face_ratio == 0.3


def test_only_other_people_falls_back_to_largest_and_flags_it() -> None:
    faces = [face(100, person="person_001", name="Bob"), face(400, person=None)]
    result = classify(800, 1000, faces, T, PersonRef(name="Emma"))
    assert result.face_ratio == 0.4
    assert result.target_found is False


def test_person_ref_from_text() -> None:
    assert PersonRef.from_text("person_007") == PersonRef(person="person_007")
    assert PersonRef.from_text(" Emma ") == PersonRef(name="Emma")
    assert not PersonRef(name="Emma").matches(Face(bbox=(0, 0, 1, 1)))


def test_bbox_ints_in_original_pixels() -> None:
    result = classify(800, 1000, [Face(bbox=(10.4, 20.6, 110.5, 330.49))], T)
    assert result.face_bbox == (10, 21, 110, 330)
    assert result.face_bbox is not None
    assert all(isinstance(v, int) for v in result.face_bbox)
    dumped = json.loads(result.model_dump_json())
    assert dumped["face_bbox"] == [10, 21, 110, 330]


# --- no faces, no information -------------------------------------------------------------


def test_no_faces_found_is_unknown() -> None:
    result = classify(800, 600, [], T, PersonRef(name="Emma"), source="/p/a.jpg")
    assert result.shot_type == "unknown"
    assert result.face_ratio is None
    assert result.face_bbox is None
    assert result.confidence == 0
    assert result.faces == 0
    assert result.target_found is None
    assert result.source == "/p/a.jpg"


def test_no_face_information_is_mid_with_zero_confidence() -> None:
    result = classify_without_faces(source="/p/a.jpg")
    assert result.shot_type == "mid"
    assert result.confidence == 0
    assert result.faces is None
    assert result.face_ratio is None


def test_shots_json_fields() -> None:
    dumped = json.loads(shot(0.42).model_dump_json())
    assert set(dumped) == {
        "shot_type",
        "face_ratio",
        "confidence",
        "face_bbox",
        "source",
        "faces",
        "target_found",
    }


def test_bad_size_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        classify(800, 0, [face(10)], T)


# --- face_cache.json ----------------------------------------------------------------------


def _photo(path: Path, faces: list[tuple[int, int, int, tuple[int, int, int]]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = draw_faces((400, 300), faces)
    image.putpixel((0, 0), (len(str(path)) % 256,) * 3)  # distinct content per path
    image.save(path)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def library(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Two photos, and a face cache that knows them by path."""
    a = _photo(tmp_path / "lib" / "a.png", [(200, 150, 120, RED)])
    b = _photo(tmp_path / "lib" / "b.png", [])
    emma = CacheFace(
        face_id=1,
        bbox=(140, 90, 260, 210),
        score=0.9,
        landmarks=[],
        person="person_001",
        name="Emma",
    )
    cache = FaceCache(
        generator="test",
        engine="test:colour",
        images={
            str(a.resolve()): CacheImage(width=400, height=300, sha256=_sha(a), faces=[emma]),
            str(b.resolve()): CacheImage(width=400, height=300, sha256=_sha(b), faces=[]),
        },
    )
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / CACHE_NAME).write_text(cache.model_dump_json(indent=1))
    return vault / CACHE_NAME, a, b


def test_cache_match_by_path(library: tuple[Path, Path, Path]) -> None:
    cache_file, a, b = library
    index = FaceCacheIndex.load(cache_file.parent)  # the folder works too
    assert len(index) == 2
    found = index.lookup(a)
    assert found is not None
    assert found.matched_by == "path"
    assert found.source == str(a.resolve())
    result = found.classify(T, PersonRef(name="emma"))
    assert result.shot_type == "close"  # 120 / 300 = 0.4
    assert result.face_ratio == 0.4
    assert result.face_bbox == (140, 90, 260, 210)
    assert result.target_found is True
    empty = index.lookup(b)
    assert empty is not None
    assert empty.classify(T, None).shot_type == "unknown"


def test_cache_match_by_content_for_a_copy(
    library: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    cache_file, a, _ = library
    copy = tmp_path / "outputs" / "facevault" / "organized" / "Emma" / "a.png"
    copy.parent.mkdir(parents=True)
    shutil.copy(a, copy)
    found = FaceCacheIndex.load(cache_file).lookup(copy)
    assert found is not None
    assert found.matched_by == "sha256"
    assert found.source == str(a.resolve())  # the original's path
    assert found.classify(T, None).face_ratio == 0.4


def test_cache_match_reports_counts(library: tuple[Path, Path, Path], tmp_path: Path) -> None:
    cache_file, a, b = library
    stranger = _photo(tmp_path / "new" / "c.png", [(100, 100, 40, BLUE)])
    gone = tmp_path / "new" / "gone.png"
    lookup = FaceCacheIndex.load(cache_file).match([a, b, stranger, gone])
    assert set(lookup.found) == {a, b}
    assert lookup.missing == [stranger]
    assert set(lookup.failed) == {gone}
    assert lookup.summary() == "2 of 4 images found in the face cache"


def test_exported_copy_entry_keeps_its_source(tmp_path: Path) -> None:
    copy = _photo(tmp_path / "org" / "Emma" / "x.png", [])
    cache = FaceCache(
        generator="test",
        engine=None,
        images={
            str(copy.resolve()): CacheImage(
                width=400, height=300, sha256=_sha(copy), source="/lib/x.png", faces=[]
            )
        },
    )
    found = FaceCacheIndex(cache).lookup(copy)
    assert found is not None
    assert found.source == "/lib/x.png"


def test_malformed_cache_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / CACHE_NAME
    bad.write_text('{\n "version": 1,\n "images": {,}\n}\n')
    with pytest.raises(InputError, match=r"face_cache\.json: not valid JSON: .*line 3") as info:
        FaceCacheIndex.load(bad)
    assert info.value.path == bad
    assert info.value.hint is not None


def test_cache_with_wrong_schema(tmp_path: Path) -> None:
    bad = tmp_path / CACHE_NAME
    bad.write_text(json.dumps({"version": 1, "generator": "x", "engine": None, "images": []}))
    with pytest.raises(InputError, match="not a face cache: images"):
        FaceCacheIndex.load(bad)


def test_missing_cache(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such face cache"):
        FaceCacheIndex.load(tmp_path / CACHE_NAME)


# --- on-the-fly detection -----------------------------------------------------------------


class SquareDetector:
    """Finds solid saturated squares; no embeddings (detection only)."""

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    def detect(self, image: npt.NDArray[np.uint8]) -> list[DetectedFace]:
        self.sizes.append((image.shape[1], image.shape[0]))
        spread = image.max(axis=2).astype(int) - image.min(axis=2)
        mask = spread > 100
        out = []
        groups = (image // 64).astype(int) @ np.array([16, 4, 1])
        for group in np.unique(groups[mask]):
            ys, xs = np.nonzero(mask & (groups == group))
            box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
            out.append(DetectedFace(bbox=box, score=0.95))
        return out


class LocatingDetector(SquareDetector):
    """The same, through FaceLocator's locate (embed must never be called)."""

    def locate(self, image: npt.NDArray[np.uint8]) -> list[DetectedFace]:
        return self.detect(image)

    def embed(self, image: npt.NDArray[np.uint8], landmarks: Any) -> list[Any]:
        raise AssertionError("shot classification needs no embeddings")


@pytest.mark.parametrize("detector_class", [SquareDetector, LocatingDetector])
def test_on_the_fly_detection(tmp_path: Path, detector_class: type[SquareDetector]) -> None:
    big = tmp_path / "big.png"
    draw_faces((2000, 1500), [(1000, 700, 600, RED), (300, 300, 100, BLUE)]).save(big)
    small = tmp_path / "small.png"
    draw_faces((2000, 1500), [(1000, 700, 150, GREEN)]).save(small)
    nothing = tmp_path / "none.png"
    draw_faces((400, 300), []).save(nothing)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    detector = detector_class()
    plan = ScanPlan(roots=(), decode_size=500, workers=2)
    lookup = detect_faces_on_the_fly([big, small, nothing, broken], detector, plan)
    assert set(lookup.failed) == {broken}
    assert max(max(s) for s in detector.sizes) < 2000  # decoded at reduced size
    r_big = lookup.found[big].classify(T, PersonRef(name="Emma"))
    assert r_big.shot_type == "close"  # 600 / 1500 = 0.4
    assert r_big.face_ratio == pytest.approx(0.4, abs=0.005)
    assert r_big.faces == 2
    assert r_big.target_found is None  # no identities: the largest face, no verdict
    assert r_big.source == str(big)
    box = r_big.face_bbox or (0, 0, 0, 0)
    for got, want in zip(box, (700, 400, 1300, 1000), strict=True):
        assert abs(got - want) <= 4  # original pixels, not the reduced decode's
    assert lookup.found[small].classify(T, None).shot_type == "far"  # 0.1
    assert lookup.found[nothing].classify(T, None).shot_type == "unknown"


def test_on_the_fly_filters_like_the_scan(tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    draw_faces((1000, 800), [(500, 400, 30, RED)]).save(photo)
    strict = detect_faces_on_the_fly([photo], SquareDetector(), ScanPlan(roots=(), min_size=40))
    assert strict.found[photo].faces == ()
    loose = detect_faces_on_the_fly([photo], SquareDetector(), DETECT_PLAN)
    assert len(loose.found[photo].faces) == 1
    picky = ScanPlan(roots=(), min_size=10, min_score=0.99)
    assert detect_faces_on_the_fly([photo], SquareDetector(), picky).found[photo].faces == ()


# --- the calibration set ------------------------------------------------------------------


def _labels() -> list[dict[str, str]]:
    with LABELS.open(newline="") as f:
        lines = [line for line in f if not line.startswith("#")]
    return [r for r in csv.DictReader(lines) if r["shot"] in {"close", "mid", "far"}]


@pytest.mark.slow
@pytest.mark.shared_data
def test_calibration_photos_classified(
    shared_faces: Path, shared_models: Path, tmp_path: Path
) -> None:
    pytest.importorskip("cv2")
    pytest.importorskip("onnxruntime")
    from beaver.plugins import make_plugin_manager

    pack = tmp_path / "yunet_pack"
    pack.mkdir()
    for name in ("face_detection_yunet_2023mar.onnx", "mobilefacenet_paddle.onnx"):
        (pack / name).symlink_to(shared_models / name)
    spec = make_plugin_manager().face_detectors().get("opencv")
    detector = spec.create({"model_pack": str(pack)})
    rows = _labels()
    paths = [shared_faces / r["file"] for r in rows]
    lookup = detect_faces_on_the_fly(paths, detector, DETECT_PLAN)
    assert not lookup.failed
    predicted = [lookup.found[p].classify(T, None).shot_type for p in paths]
    truth = [r["shot"] for r in rows]
    accuracy = sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(rows)
    assert len(rows) == 280
    assert accuracy >= 0.85, accuracy
    assert predicted.count("unknown") <= 2
