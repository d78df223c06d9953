"""The scan pipeline with a model-free detector: incremental, moves, duplicates, failures."""

from __future__ import annotations

import os
import shutil
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from beaver.errors import DiskFullError, InputError
from beaver.faces.scan import Engine, ScanInterrupted, ScanPlan, blur_score, scan
from beaver.faces.store import FaceStore
from beaver.interfaces import DetectedFace
from beaver.testing.tinymodels import draw_faces

RED, BLUE = (220, 30, 30), (30, 40, 220)


class ColourDetector:
    """Finds solid saturated squares; the embedding is their colour."""

    model_id = "test:colour"

    def __init__(self) -> None:
        self.calls = 0
        self.embeds = 0
        self.sizes: list[tuple[int, int]] = []
        self.embed_sizes: list[int] = []

    def detect(self, image: npt.NDArray[np.uint8]) -> list[DetectedFace]:
        self.calls += 1
        self.sizes.append((image.shape[1], image.shape[0]))
        out = []
        spread = image.max(axis=2).astype(int) - image.min(axis=2)
        ys, xs = np.nonzero(spread > 100)
        groups = (image[ys, xs] // 64).astype(int) @ np.array([16, 4, 1])
        for group in np.unique(groups):
            gx, gy = xs[groups == group], ys[groups == group]
            box = (float(gx.min()), float(gy.min()), float(gx.max() + 1), float(gy.max() + 1))
            if len(gx) < 25 or len(gx) < 0.5 * (box[2] - box[0]) * (box[3] - box[1]):
                continue  # JPEG fringes, not a square
            colour = tuple(int(c) for c in image[gy, gx].mean(axis=0))
            out.append(
                DetectedFace(bbox=box, score=0.95, landmarks=_marks(box), embedding=_emb(colour))
            )
        return sorted(out, key=lambda f: f.bbox)

    def locate(self, image: npt.NDArray[np.uint8]) -> list[DetectedFace]:
        return [DetectedFace(f.bbox, f.score, f.landmarks) for f in self.detect(image)]

    def embed(
        self, image: npt.NDArray[np.uint8], landmarks: Sequence[Sequence[tuple[float, float]]]
    ) -> list[npt.NDArray[np.float32]]:
        self.embeds += len(landmarks)
        self.embed_sizes.append(image.shape[1])
        out = []
        for marks in landmarks:
            x, y = (int(v) for v in marks[2])
            out.append(_emb(tuple(int(c) for c in image[y, x])))
        return out


def _marks(box: tuple[float, float, float, float]) -> tuple[tuple[float, float], ...]:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    return tuple(
        (x1 + fx * w, y1 + fy * h)
        for fx, fy in ((0.3, 0.35), (0.7, 0.35), (0.5, 0.55), (0.35, 0.75), (0.65, 0.75))
    )


def _emb(colour: tuple[int, ...]) -> npt.NDArray[np.float32]:
    v = np.array(colour, dtype=np.float32) - 128
    return v / np.linalg.norm(v)


@pytest.fixture
def detector() -> ColourDetector:
    return ColourDetector()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FaceStore]:
    s = FaceStore.open(tmp_path / "vault")
    yield s
    s.close()


def _photo(
    path: Path,
    faces: Sequence[tuple[int, int, int, tuple[int, int, int]]],
    size: tuple[int, int] = (640, 480),
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = draw_faces(size, faces)
    # A unique corner pixel: photos of a test differ in content unless a test copies one.
    mark = zlib.crc32(str(path).encode())
    # Grey (no colour, so never part of a "face"), different for every path.
    image.putpixel((0, 0), (mark & 255,) * 3)
    image.putpixel((1, 0), ((mark >> 8) & 255,) * 3)
    image.save(path, quality=95)
    return path


def _run(plan: ScanPlan, store: FaceStore, detector: ColourDetector, **kw: object):
    loads: list[int] = []

    def build() -> Engine:
        loads.append(1)
        return Engine(detector=detector, model_id=detector.model_id)

    report = scan(plan, store, build, kw.get("model_id"))  # type: ignore[arg-type]
    return report, len(loads)


def test_scan_finds_faces_in_original_pixels_and_rescan_reads_nothing(
    tmp_path: Path, store: FaceStore, detector: ColourDetector
) -> None:
    lib = tmp_path / "lib"
    _photo(lib / "a.jpg", [(200, 200, 120, RED)], size=(4000, 3000))
    _photo(lib / "sub" / "b.png", [(100, 100, 60, BLUE), (400, 200, 80, RED)])
    plan = ScanPlan(roots=(lib,), decode_size=1000, min_size=10, workers=2)
    report, loads = _run(plan, store, detector)
    assert (report.images, report.scanned, report.faces, report.skipped_count) == (2, 2, 3, 0)
    assert loads == 1
    # The 4000x3000 JPEG was decoded reduced (draft), never at full size.
    assert max(w for w, _ in detector.sizes) < 4000
    record = store.image(str(lib / "a.jpg"))
    assert record is not None
    assert record.width == 4000
    a = store.faces(image_id=record.id)
    assert len(a) == 1
    x1, y1, x2, _y2 = a[0].bbox
    assert abs(x1 - 140) < 12
    assert abs(x2 - 260) < 12
    assert abs(y1 - 140) < 12

    calls = detector.calls
    again, loads = _run(plan, store, detector, model_id=detector.model_id)
    assert (again.scanned, again.unchanged, loads) == (0, 2, 0)
    assert detector.calls == calls


def test_changed_file_is_rescanned_and_model_change_rescans(
    tmp_path: Path, store: FaceStore, detector: ColourDetector
) -> None:
    lib = tmp_path / "lib"
    photo = _photo(lib / "a.jpg", [(200, 200, 120, RED)])
    plan = ScanPlan(roots=(lib,), min_size=10)
    _run(plan, store, detector)
    _photo(photo, [(200, 200, 120, RED), (450, 200, 100, BLUE)])
    os.utime(photo, ns=(1, 1))
    report, _ = _run(plan, store, detector, model_id=detector.model_id)
    assert report.scanned == 1
    assert report.faces == 2
    detector.model_id = "test:other"
    report, _ = _run(plan, store, detector, model_id=None)
    assert report.scanned == 1


def test_moved_and_duplicate_photos_are_recognised_by_content(
    tmp_path: Path, store: FaceStore, detector: ColourDetector
) -> None:
    lib = tmp_path / "lib"
    _photo(lib / "a.jpg", [(200, 200, 120, RED)])
    plan = ScanPlan(roots=(lib,), min_size=10)
    _run(plan, store, detector)
    face_id = store.faces()[0].id
    (lib / "trip").mkdir()
    shutil.move(lib / "a.jpg", lib / "trip" / "a.jpg")
    shutil.copy(lib / "trip" / "a.jpg", lib / "copy.jpg")
    calls = detector.calls
    report, _ = _run(plan, store, detector, model_id=detector.model_id)
    assert (report.moved, report.duplicates, report.scanned) == (1, 1, 0)
    assert detector.calls == calls
    # Content cannot tell which copy is "the" moved one; either way the face (and any
    # person or decision on it) survives, and the other copy is a duplicate.
    assert face_id in {f.id for f in store.faces()}
    assert len(store.faces()) == 2
    assert store.image(str(lib / "a.jpg")) is None


def test_bad_files_are_recorded_with_reasons_and_the_scan_goes_on(
    tmp_path: Path, store: FaceStore, detector: ColourDetector
) -> None:
    lib = tmp_path / "lib"
    _photo(lib / "good.jpg", [(200, 200, 120, RED)])
    (lib / "notes.jpg").write_text("not a photo")
    good = (lib / "good.jpg").read_bytes()
    (lib / "cut.jpg").write_bytes(good[: len(good) // 3])
    before = {p.name: p.read_bytes() for p in lib.iterdir()}
    report, _ = _run(ScanPlan(roots=(lib,), min_size=10), store, detector)
    assert report.scanned == 1
    assert report.skipped_count == 2
    assert sorted(p for paths in report.skipped.values() for p in paths) == [
        str(lib / "cut.jpg"),
        str(lib / "notes.jpg"),
    ]
    assert {p for p, _ in store.errors()} == {str(lib / "cut.jpg"), str(lib / "notes.jpg")}
    assert {p.name: p.read_bytes() for p in lib.iterdir()} == before  # originals untouched
    again, _ = _run(
        ScanPlan(roots=(lib,), min_size=10), store, detector, model_id=detector.model_id
    )
    assert again.unchanged == 3
    assert again.scanned == 0


def test_filters_apply_in_original_pixels(
    tmp_path: Path, store: FaceStore, detector: ColourDetector
) -> None:
    lib = tmp_path / "lib"
    _photo(lib / "a.png", [(100, 100, 30, RED), (400, 200, 120, BLUE)])
    report, _ = _run(ScanPlan(roots=(lib,), min_size=60), store, detector)
    assert report.faces == 1
    report, _ = _run(ScanPlan(roots=(lib,), min_score=0.99, rescan=True), store, detector)
    assert report.faces == 0


def test_small_faces_are_embedded_again_from_a_bigger_decode(
    tmp_path: Path, store: FaceStore, detector: ColourDetector
) -> None:
    lib = tmp_path / "lib"
    _photo(lib / "group.jpg", [(600, 600, 180, RED), (2000, 1500, 900, BLUE)], size=(4000, 3000))
    _run(ScanPlan(roots=(lib,), decode_size=500, min_size=10), store, detector)
    # Both faces embedded once: the big one from the reduced decode, the small one from a
    # bigger decode where it has at least the recognizer's 112 px.
    assert detector.embeds == 2
    reduced, bigger = detector.embed_sizes
    assert reduced < bigger <= 4000
    assert 180 * bigger / 4000 >= 112


def test_missing_files_are_marked_and_excluded(
    tmp_path: Path, store: FaceStore, detector: ColourDetector
) -> None:
    lib = tmp_path / "lib"
    _photo(lib / "a.jpg", [(200, 200, 120, RED)])
    _photo(lib / "b.jpg", [(200, 200, 120, BLUE)])
    plan = ScanPlan(roots=(lib,), min_size=10)
    _run(plan, store, detector)
    (lib / "b.jpg").unlink()
    report, _ = _run(plan, store, detector, model_id=detector.model_id)
    assert report.missing == 1
    assert store.counts()["missing"] == 1
    assert len(store.faces()) == 1


def test_missing_root_is_a_clear_error(
    tmp_path: Path, store: FaceStore, detector: ColourDetector
) -> None:
    with pytest.raises(InputError, match="no such folder"):
        _run(ScanPlan(roots=(tmp_path / "nope",)), store, detector)


@pytest.mark.parametrize("workers", [1, 3])
def test_interrupt_keeps_committed_batches_and_resumes(
    tmp_path: Path,
    store: FaceStore,
    detector: ColourDetector,
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
) -> None:
    lib = tmp_path / "lib"
    for k in range(6):
        _photo(lib / f"{k}.png", [(200, 200, 100, RED)])
    original = detector.detect

    def flaky(image: npt.NDArray[np.uint8]) -> list[DetectedFace]:
        if detector.calls == 4:
            raise KeyboardInterrupt
        return original(image)

    monkeypatch.setattr(detector, "detect", flaky)
    plan = ScanPlan(roots=(lib,), batch=2, min_size=10, workers=workers)
    with pytest.raises(ScanInterrupted) as info:
        _run(plan, store, detector)
    done = info.value.report.scanned
    # One worker meets the photos in order. Several detect in any order: the photos before
    # the one that was interrupted are kept, any later ones already done are dropped with
    # the interrupt (the next run does them).
    assert done == 4 if workers == 1 else 0 <= done < 6
    assert store.counts()["ok"] == done
    monkeypatch.setattr(detector, "detect", original)
    report, _ = _run(plan, store, detector, model_id=detector.model_id)
    assert (report.unchanged, report.scanned) == (done, 6 - done)


def test_full_disk_mid_scan_keeps_the_database_consistent(
    tmp_path: Path, store: FaceStore, detector: ColourDetector
) -> None:
    lib = tmp_path / "lib"
    for k in range(40):
        _photo(lib / f"{k:02d}.png", [(200, 200, 100, RED)])
    plan = ScanPlan(roots=(lib,), batch=5, min_size=10)
    _run(ScanPlan(roots=(lib / "00.png",), min_size=10), store, detector)
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(DiskFullError):
        _run(plan, store, detector, model_id=detector.model_id)
    store.db.execute("PRAGMA max_page_count = 1073741823")
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ok = store.counts()["ok"]
    assert 1 <= ok < 40
    report, _ = _run(plan, store, detector, model_id=detector.model_id)
    assert report.scanned == 40 - ok
    assert store.counts()["ok"] == 40


class _Crowd:
    """Wraps a detector and records how many threads are inside it at once."""

    def __init__(self, inner: ColourDetector, concurrency: int | None) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        if concurrency is not None:
            self.concurrency = concurrency
        self.inside = 0
        self.most = 0
        self.lock = threading.Lock()

    def detect(self, image: npt.NDArray[np.uint8]) -> list[DetectedFace]:
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        time.sleep(0.02)  # long enough for other workers to arrive
        try:
            return self.inner.detect(image)
        finally:
            with self.lock:
                self.inside -= 1


@pytest.mark.parametrize(("concurrency", "most"), [(None, 1), (1, 1), (3, 3)])
def test_detector_is_entered_by_as_many_threads_as_it_declares(
    tmp_path: Path, store: FaceStore, detector: ColourDetector, concurrency: int | None, most: int
) -> None:
    lib = tmp_path / "lib"
    for k in range(12):
        _photo(lib / f"{k:02d}.png", [(200, 200, 100, RED)])
    crowd = _Crowd(detector, concurrency)
    plan = ScanPlan(roots=(lib,), min_size=10, workers=4)
    report = scan(plan, store, lambda: Engine(detector=crowd, model_id=crowd.model_id), None)
    assert (report.scanned, report.faces) == (12, 12)
    assert crowd.most == most
    # Results are written in the photos' order whatever order the workers finished in.
    assert [Path(f.path).name for f in store.faces()] == [f"{k:02d}.png" for k in range(12)]


def test_blur_score_separates_sharp_from_blurred() -> None:
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 255, size=(100, 100, 3), dtype=np.uint8)
    flat = np.full((100, 100, 3), 120, dtype=np.uint8)
    assert blur_score(sharp, (0, 0, 100, 100)) > 100 * max(blur_score(flat, (0, 0, 100, 100)), 1e-3)
    assert blur_score(sharp, (10, 10, 11, 11)) == 0.0


class DetectOnly:
    """A detector with only the required ``detect`` (embeddings included)."""

    model_id = "test:detect-only"

    def __init__(self) -> None:
        self.inner = ColourDetector()

    def detect(self, image: npt.NDArray[np.uint8]) -> list[DetectedFace]:
        return self.inner.detect(image)


def test_a_detector_without_locate_and_embed_works(tmp_path: Path, store: FaceStore) -> None:
    lib = tmp_path / "lib"
    _photo(lib / "a.png", [(150, 150, 100, RED), (450, 200, 120, BLUE)])
    plain = DetectOnly()
    report = scan(
        ScanPlan(roots=(lib,), min_size=10),
        store,
        lambda: Engine(detector=plain, model_id=plain.model_id),
        None,
    )
    assert report.faces == 2
    assert plain.inner.embeds == 0
    embeddings = store.cluster_inputs(plain.model_id).embeddings
    assert embeddings.shape == (2, 3)
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0)


def test_a_photo_that_comes_back_keeps_its_faces(
    tmp_path: Path, store: FaceStore, detector: ColourDetector
) -> None:
    lib = tmp_path / "lib"
    photo = _photo(lib / "a.jpg", [(200, 200, 120, RED)])
    _photo(lib / "b.jpg", [(200, 200, 120, BLUE)])
    plan = ScanPlan(roots=(lib,), min_size=10)
    _run(plan, store, detector)
    face_id = store.faces(image_id=store.image(str(photo)).id)[0].id  # type: ignore[union-attr]
    aside = tmp_path / "aside.jpg"
    shutil.move(photo, aside)
    _run(plan, store, detector, model_id=detector.model_id)
    assert store.counts()["missing"] == 1
    shutil.move(aside, photo)  # back (an unmounted drive, a restore)
    calls = detector.calls
    report, _ = _run(plan, store, detector, model_id=detector.model_id)
    assert report.scanned == 0
    assert detector.calls == calls
    assert store.counts()["missing"] == 0
    assert face_id in {f.id for f in store.faces()}
