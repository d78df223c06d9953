# ruff: noqa: PTH110, PTH116, PTH123 - paths stay str in the hot loop over 100k files
"""``beaver face scan``: find faces in every photo, incrementally, without redoing work.

Unchanged files (same path, size and mtime, scanned with the same model) are not opened.
Each changed file is read once: the bytes are hashed (moved and duplicate photos are
recognised by content and not decoded again), decoded at reduced size and run through the
detector in worker threads, several photos at once; the detector is entered by as many
threads as it declares safe (:func:`detector_slots`), so decoding always overlaps
inference. Results are committed in batches from one thread, so a crash or Ctrl-C loses
at most one batch, and the next run resumes where this one stopped.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from threading import BoundedSemaphore
from typing import Literal

import numpy as np
import numpy.typing as npt

from beaver.errors import InputError
from beaver.faces.store import FaceStore, NewFace, Points
from beaver.images import IMAGE_SUFFIXES, ImageLoadError, LoadedImage, find_images, load_image
from beaver.interfaces import DetectedFace, FaceDetector, FaceLocator
from beaver.progress import NullProgress, Progress

RECOGNIZER_SIDE = 112
"""Input side of ArcFace-style recognizers: faces smaller than this lose identity detail."""


@dataclass(frozen=True)
class ScanPlan:
    """Everything one scan needs, resolved from settings and flags."""

    roots: tuple[Path, ...]
    recursive: bool = True
    exclude: tuple[str, ...] = ()
    min_score: float = 0.6
    min_size: int = 40
    workers: int = 2
    decode_size: int = 1000
    rescan: bool = False
    batch: int = 64
    batch_seconds: float = 5.0


@dataclass
class ScanReport:
    """What a scan did, for the summary and ``--json``."""

    images: int = 0
    scanned: int = 0
    unchanged: int = 0
    moved: int = 0
    duplicates: int = 0
    faces: int = 0
    missing: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def skipped_count(self) -> int:
        """Photos that could not be read."""
        return sum(len(v) for v in self.skipped.values())


@dataclass(frozen=True)
class _Prepared:
    path: str
    size: int
    mtime_ns: int
    kind: Literal["decoded", "known", "error"]
    sha256: str = ""
    image: LoadedImage | None = None
    faces: tuple[NewFace, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class Engine:
    """The detector of a scan and the identity of its embedding space."""

    detector: FaceDetector
    model_id: str


def scan(
    plan: ScanPlan,
    store: FaceStore,
    engine: Callable[[], Engine],
    model_id: str | None,
    progress: Progress | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> ScanReport:
    """Scan ``plan.roots`` into ``store``.

    ``engine`` builds the detector lazily (a scan of an unchanged library never loads a
    model); ``model_id`` is the embedding space when known without loading it.
    """
    progress = progress or NullProgress()
    report = ScanReport()
    started = time.perf_counter()
    check_roots(plan.roots)
    progress.start("Finding photos")
    paths = [
        str(p)
        for p in find_images(
            plan.roots,
            recursive=plan.recursive,
            exclude=plan.exclude,
            on_error=lambda p, r: _skip(report, str(p), r, on_skip),
        )
    ]
    progress.finish()
    report.images = len(paths)
    if not paths and not report.skipped:
        where = ", ".join(str(r) for r in plan.roots)
        raise InputError(
            where,
            "no photos found",
            hint=f"Beaver reads {', '.join(sorted(IMAGE_SUFFIXES))}; check --exclude/--no-recursive.",
        )

    loaded: Engine | None = None

    def current() -> Engine:
        nonlocal loaded, model_id
        if loaded is None:
            loaded = engine()
            model_id = loaded.model_id
        return loaded

    todo = _changed(paths, store, plan, model_id, current, report, on_skip)
    if todo:
        model_id = current().model_id
    known = store.known_hashes(model_id) if model_id and not plan.rescan else set()
    with store.transaction() as db:
        if model_id:
            store.set_meta(db, "engine", model_id)
    writer = _BatchWriter(store, plan)
    progress.start("Scanning photos", total=len(todo))
    work = _Work(current(), plan) if todo else None
    try:
        for done, item in enumerate(_prepare_all(todo, known, work), start=1):
            assert model_id is not None
            assert work is not None
            _handle(item, store, writer, work, model_id, report, on_skip)
            writer.maybe_flush()
            progress.update(done)
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        writer.flush()
        progress.finish()
    if not report.interrupted:
        report.missing = _mark_missing(store, plan, set(paths))
    report.seconds = time.perf_counter() - started
    if report.interrupted:
        raise ScanInterrupted(report)
    return report


def check_roots(roots: Sequence[Path]) -> None:
    """Fail early, naming the path, when a folder to scan does not exist."""
    if not roots:
        raise InputError(".", "no folder to scan", hint="Pass one or more photo folders.")
    for root in roots:
        if not root.exists():
            raise InputError(root, "no such folder", hint="Check the path you passed to scan.")
        if not root.is_dir() and root.suffix.lower() not in IMAGE_SUFFIXES:
            raise InputError(root, "not a folder or a photo", hint="Pass a folder of photos.")


class ScanInterrupted(KeyboardInterrupt):
    """Ctrl-C during a scan; everything committed so far is kept."""

    def __init__(self, report: ScanReport) -> None:
        super().__init__()
        self.report = report


def _changed(
    paths: Sequence[str],
    store: FaceStore,
    plan: ScanPlan,
    model_id: str | None,
    current: Callable[[], Engine],
    report: ScanReport,
    on_skip: Callable[[str, str], None] | None,
) -> list[tuple[str, int, int]]:
    index = store.image_index()
    todo: list[tuple[str, int, int]] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError as exc:
            _skip(report, path, f"cannot read ({exc.strerror})", on_skip)
            continue
        old = index.get(path)
        if (
            old is not None
            and not plan.rescan
            and old[0] == st.st_size
            and old[1] == st.st_mtime_ns
        ):
            status, engine = old[2], old[3]
            if status == "error":
                report.unchanged += 1
                continue
            if status == "ok":
                if model_id is None:
                    model_id = current().model_id
                if engine == model_id:
                    report.unchanged += 1
                    continue
        todo.append((path, st.st_size, st.st_mtime_ns))
    return todo


def detector_slots(detector: FaceDetector) -> int:
    """How many threads may call ``detector`` at once: its ``concurrency``, else 1.

    A detector that runs its models through a thread-safe runtime (onnxruntime sessions
    are) says so with an int attribute ``concurrency``; any other is entered by one
    thread at a time while the others read and decode the next photos.
    """
    slots = getattr(detector, "concurrency", 1)
    return slots if isinstance(slots, int) and slots > 1 else 1


class _Work:
    """The per-photo work of a scan, run in worker threads."""

    def __init__(self, engine: Engine, plan: ScanPlan) -> None:
        self.engine = engine
        self.plan = plan
        self.gate: AbstractContextManager[object] = BoundedSemaphore(
            detector_slots(engine.detector)
        )

    def prepare(self, path: str, size: int, mtime_ns: int, known: set[str]) -> _Prepared:
        """Read, hash, decode and detect one photo (unless its content is known)."""
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            return _Prepared(path, size, mtime_ns, "error", reason=f"cannot read ({exc.strerror})")
        sha = hashlib.sha256(data).hexdigest()
        if sha in known:
            return _Prepared(path, size, mtime_ns, "known", sha256=sha)
        try:
            image = load_image(Path(path), data=data, max_side=self.plan.decode_size)
        except ImageLoadError as exc:
            return _Prepared(path, size, mtime_ns, "error", sha256=sha, reason=exc.reason)
        faces = detect_faces(self.engine.detector, image, self.plan, data, gate=self.gate)
        return _Prepared(path, size, mtime_ns, "decoded", sha, image, tuple(faces))


def _prepare_all(
    todo: Sequence[tuple[str, int, int]], known: set[str], work: _Work | None
) -> Iterator[_Prepared]:
    """Prepare photos in worker threads, yielding in order with a bounded window."""
    if work is None:
        return
    workers = max(1, work.plan.workers)
    window = max(2, workers * 2)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scan") as pool:
        pending: deque[Future[_Prepared]] = deque()
        try:
            for item in todo:
                pending.append(pool.submit(work.prepare, *item, known))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _handle(
    item: _Prepared,
    store: FaceStore,
    writer: _BatchWriter,
    work: _Work,
    model_id: str,
    report: ScanReport,
    on_skip: Callable[[str, str], None] | None,
) -> None:
    if item.kind == "error":
        writer.error(item.path, item.size, item.mtime_ns, item.reason)
        _skip(report, item.path, item.reason, on_skip)
        return
    if item.kind == "known":
        writer.flush()  # the twin may sit in the unflushed batch
        twins = [t for t in store.images_with_hash(item.sha256, model_id) if t.path != item.path]
        if not twins and store.image(item.path) is not None:
            # Same content at the same path (touched, or copied back): only the stat changed.
            with store.transaction() as db:
                store.touch_image(db, item.path, item.size, item.mtime_ns)
            report.unchanged += 1
            return
        gone = next((t for t in twins if not os.path.exists(t.path)), None)
        if gone is not None:
            with store.transaction() as db:
                store.move_image(db, gone.id, item.path, item.size, item.mtime_ns)
            report.moved += 1
            return
        if twins:
            source = twins[0]
            faces = store.copy_faces(source.id)
            writer.image(item, source.width or 0, source.height or 0, model_id, faces)
            report.duplicates += 1
            report.faces += len(faces)
            return
        # The twin vanished since the snapshot of hashes: decode after all.
        item = work.prepare(item.path, item.size, item.mtime_ns, set())
        if item.kind != "decoded":
            _handle(item, store, writer, work, model_id, report, on_skip)
            return
    assert item.image is not None
    writer.image(item, item.image.width, item.image.height, model_id, list(item.faces))
    report.scanned += 1
    report.faces += len(item.faces)


def detect_faces(
    detector: FaceDetector,
    image: LoadedImage,
    plan: ScanPlan,
    data: bytes = b"",
    *,
    gate: AbstractContextManager[object] | None = None,
) -> list[NewFace]:
    """Detect on the (reduced) image; return faces in original pixels that pass the filters.

    A detector that can locate and embed separately embeds only the faces kept, each from
    a decode big enough for the recognizer (see :class:`beaver.interfaces.FaceLocator`).
    Every call into the detector holds ``gate`` (see :func:`detector_slots`).
    """
    gate = gate or nullcontext()
    scale = image.scale
    split = isinstance(detector, FaceLocator)
    kept = find_faces(detector, image, plan, gate=gate)
    if split:
        assert isinstance(detector, FaceLocator)
        embeddings = _split_embeddings(detector, image, data, kept, gate)
    else:
        embeddings = [face.embedding for face, _, _ in kept]
    out = []
    for (face, box, marks), emb in zip(kept, embeddings, strict=True):
        if emb is None or not np.any(emb):
            continue  # the plugin could not embed this face (degenerate landmarks)
        out.append(
            NewFace(
                bbox=box,
                score=float(face.score),
                landmarks=marks,
                embedding=_unit(emb),
                size=min(box[2] - box[0], box[3] - box[1]),
                blur=blur_score(image.pixels, tuple(v * scale for v in box)),
            )
        )
    return out


Kept = tuple[DetectedFace, tuple[float, float, float, float], Points]
"""A face that passed the filters: as detected, its box and landmarks in original pixels."""


def find_faces(
    detector: FaceDetector,
    image: LoadedImage,
    plan: ScanPlan,
    *,
    gate: AbstractContextManager[object] | None = None,
) -> list[Kept]:
    """Faces of a (reduced) decode that pass ``plan``'s score and size filters.

    A :class:`beaver.interfaces.FaceLocator` is asked to locate only (no embeddings).
    Boxes and landmarks are mapped back to original pixels and clipped to the photo.
    """
    with gate or nullcontext():
        if isinstance(detector, FaceLocator):
            found = detector.locate(image.pixels)
        else:
            found = detector.detect(image.pixels)
    scale = image.scale
    kept: list[Kept] = []
    for face in found:
        if face.score < plan.min_score:
            continue
        x1, y1, x2, y2 = (v / scale for v in face.bbox)
        box = (
            max(0.0, x1),
            max(0.0, y1),
            min(float(image.width), x2),
            min(float(image.height), y2),
        )
        if min(box[2] - box[0], box[3] - box[1]) < plan.min_size:
            continue
        marks = tuple((x / scale, y / scale) for x, y in face.landmarks)
        kept.append((face, box, marks))
    return kept


def _split_embeddings(
    detector: FaceLocator,
    image: LoadedImage,
    data: bytes,
    kept: Sequence[Kept],
    gate: AbstractContextManager[object],
) -> list[npt.NDArray[np.float32] | None]:
    embeddings: list[npt.NDArray[np.float32] | None] = [None] * len(kept)
    # A face that the reduced decode shrank below the recognizer's input size would lose
    # identity detail: embed it from a decode at the scale it needs (once per photo).
    small = [
        k
        for k, (_, box, _) in enumerate(kept)
        if image.scale < 1.0
        and min(box[2] - box[0], box[3] - box[1]) * image.scale < RECOGNIZER_SIDE
    ]
    big = [k for k in range(len(kept)) if k not in set(small)]
    bigger: LoadedImage | None = None
    if small and data:
        need = max(
            RECOGNIZER_SIDE / min(kept[k][1][2] - kept[k][1][0], kept[k][1][3] - kept[k][1][1])
            for k in small
        )
        side = int(min(1.0, need) * max(image.width, image.height)) + 1
        try:
            bigger = load_image(Path("<memory>"), data=data, max_side=side)
        except ImageLoadError:
            bigger = None
    if bigger is None or bigger.scale <= image.scale:
        big, small = list(range(len(kept))), []
    for group, source in ((big, image), (small, bigger)):
        if not group or source is None:
            continue
        marks = [tuple((x * source.scale, y * source.scale) for x, y in kept[k][2]) for k in group]
        with gate:
            found = detector.embed(source.pixels, marks)
        for k, emb in zip(group, found, strict=True):
            embeddings[k] = emb
    return embeddings


def _unit(vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    v = np.asarray(vector, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def blur_score(pixels: npt.NDArray[np.uint8], box: Sequence[float]) -> float:
    """Variance of the Laplacian of the face, resampled to 64x64 so sizes compare."""
    from PIL import Image

    h, w = pixels.shape[:2]
    x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
    x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x2 - x1 < 3 or y2 - y1 < 3:
        return 0.0
    face = Image.fromarray(pixels[y1:y2, x1:x2])
    # Box-reduce a big face first (exact and cheap), so the filtered resize and the grey
    # conversion see at most about 128x128 pixels whatever the face's size.
    factor = min(x2 - x1, y2 - y1) // 128
    if factor >= 2:
        face = face.reduce(factor)
    crop = face.resize((64, 64), Image.Resampling.BILINEAR).convert("L")
    g = np.asarray(crop, dtype=np.float32)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(lap.var())


class _BatchWriter:
    """Collects results and commits them in batches (by count or age)."""

    def __init__(self, store: FaceStore, plan: ScanPlan) -> None:
        self.store = store
        self.plan = plan
        self.images: list[tuple[_Prepared, int, int, str, list[NewFace]]] = []
        self.errors: list[tuple[str, int, int, str]] = []
        self.since = time.monotonic()

    def image(
        self, item: _Prepared, width: int, height: int, engine: str, faces: list[NewFace]
    ) -> None:
        self.images.append((item, width, height, engine, faces))

    def error(self, path: str, size: int, mtime_ns: int, reason: str) -> None:
        self.errors.append((path, size, mtime_ns, reason))

    def maybe_flush(self) -> None:
        pending = len(self.images) + len(self.errors)
        if pending >= self.plan.batch or (
            pending and time.monotonic() - self.since > self.plan.batch_seconds
        ):
            self.flush()

    def flush(self) -> None:
        if self.images or self.errors:
            with self.store.transaction() as db:
                for item, width, height, engine, faces in self.images:
                    self.store.save_image(
                        db,
                        path=item.path,
                        size=item.size,
                        mtime_ns=item.mtime_ns,
                        sha256=item.sha256,
                        width=width,
                        height=height,
                        engine=engine,
                        faces=faces,
                    )
                for path, size, mtime_ns, reason in self.errors:
                    self.store.save_error(db, path, size, mtime_ns, reason)
        self.images.clear()
        self.errors.clear()
        self.since = time.monotonic()


def _mark_missing(store: FaceStore, plan: ScanPlan, seen: set[str]) -> int:
    prefixes = tuple(str(root).rstrip(os.sep) + os.sep for root in plan.roots)
    gone = [
        path
        for path, (_, _, status, _) in store.image_index().items()
        if status != "missing"
        and path.startswith(prefixes)
        and path not in seen
        and not os.path.exists(path)
    ]
    if gone:
        with store.transaction() as db:
            store.mark_missing(db, gone)
    return len(gone)


def _skip(
    report: ScanReport, path: str, reason: str, on_skip: Callable[[str, str], None] | None
) -> None:
    report.skipped.setdefault(reason, []).append(path)
    if on_skip is not None:
        on_skip(path, reason)
