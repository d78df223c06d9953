"""``beaver caption``: caption every image of a folder in batches, resumably.

Images are decoded (EXIF rotation applied, reduced to what the captioner looks at) in
worker threads while the model captions the previous batch. Results go into
captions.json, rewritten atomically every few batches, so Ctrl-C or a crash loses at most
what was captioned since the last write, and the next run continues: in ``skip`` mode
images with a caption are not redone; in the other modes the file remembers the
unfinished run, and the same command picks it up without captioning anything twice.
A GPU out-of-memory error halves the batch and retries the same images.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from beaver import __version__
from beaver.captions import runtime
from beaver.captions.compose import compose
from beaver.captions.schema import (
    CAPTIONS_NAME,
    CaptionFile,
    ImageCaption,
    Mode,
    RunInfo,
    read_captions,
    write_captions,
)
from beaver.errors import BackendError, BeaverError, InputError
from beaver.fsutil import write_atomic
from beaver.images import IMAGE_SUFFIXES, ImageLoadError, find_images, open_image
from beaver.interfaces import Caption, Captioner
from beaver.progress import NullProgress, Progress

SIDECAR_DIR = "captions"
DEFAULT_IMAGE_SIZE = 1024
"""Long side decoded for a captioner that does not say what it looks at."""


@dataclass(frozen=True)
class CaptionPlan:
    """Everything one caption run needs, resolved from settings and flags."""

    input_dir: Path
    output_dir: Path
    captioner: str
    options: dict[str, Any] = field(default_factory=dict)
    mode: Mode = "skip"
    trigger: str | None = None
    prefix: str = ""
    suffix: str = ""
    recursive: bool = True
    exclude: tuple[str, ...] = ()
    batch_size: int = 8
    sidecars: bool = False
    workers: int = 2
    save_every: int = 64
    save_seconds: float = 10.0

    @property
    def captions_path(self) -> Path:
        """Where captions.json goes."""
        return self.output_dir / CAPTIONS_NAME

    def run_key(self, model: str) -> str:
        """What must match for a re-run to continue an unfinished run rather than start one."""
        text = repr(
            (
                self.captioner,
                model,
                sorted(self.options.items()),
                self.mode,
                self.trigger,
                self.prefix,
                self.suffix,
            )
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class CaptionReport:
    """What a run did, for the summary and ``--json``."""

    images: int = 0
    captioned: int = 0
    kept: int = 0
    resumed: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)
    batch_size: int = 0
    smaller_batches: int = 0
    seconds: float = 0.0
    caption_seconds: float = 0.0
    interrupted: bool = False
    output: str = ""
    sidecars: int = 0

    @property
    def images_per_second(self) -> float:
        """Captioned images per second of captioning (decoding overlapped)."""
        return self.captioned / self.caption_seconds if self.caption_seconds else 0.0


class CaptionInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; everything captioned so far is saved."""

    def __init__(self, report: CaptionReport) -> None:
        super().__init__()
        self.report = report


@dataclass(frozen=True)
class _Todo:
    rel: str
    path: Path
    size: int
    mtime_ns: int
    existing: ImageCaption | None


def caption_folder(
    plan: CaptionPlan,
    make_captioner: Callable[[], Captioner],
    *,
    progress: Progress | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> CaptionReport:
    """Caption ``plan.input_dir`` into ``plan.output_dir``; see the module docstring."""
    progress = progress or NullProgress()
    report = CaptionReport(output=str(plan.captions_path), batch_size=plan.batch_size)
    started = time.perf_counter()
    images = _find(plan, report, on_skip)
    report.images = len(images)
    state = _State.load(plan)
    todo = _plan_work(plan, images, state, report)
    captioner: Captioner | None = None
    try:
        if todo:
            captioner = make_captioner()
            state.begin(plan, _model_of(captioner, plan))
            _run(plan, captioner, todo, state, report, progress, on_skip)
        state.finish()
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        state.save(report)
        if plan.sidecars:
            report.sidecars = _write_sidecars(plan, state.file, {t for t, _ in images})
        report.seconds = time.perf_counter() - started
    if report.interrupted:
        raise CaptionInterrupted(report)
    return report


def _find(
    plan: CaptionPlan, report: CaptionReport, on_skip: Callable[[str, str], None] | None
) -> list[tuple[str, Path]]:
    root = plan.input_dir
    if not root.exists():
        raise InputError(root, "no such folder", hint="Pass the folder of images with --input.")
    if not root.is_dir():
        raise InputError(root, "not a folder", hint="--input takes a folder of images.")
    if not os.access(root, os.R_OK | os.X_OK):
        raise InputError(root, "cannot read this folder (permission denied)")

    def skip(path: Path, reason: str) -> None:
        _skip(report, _rel(root, path), reason, on_skip)

    found = [
        (_rel(root, p), p)
        for p in find_images([root], recursive=plan.recursive, exclude=plan.exclude, on_error=skip)
    ]
    if not found:
        raise InputError(
            root,
            "no images found",
            hint=f"beaver captions {', '.join(sorted(IMAGE_SUFFIXES))} files"
            + ("." if plan.recursive else "; drop --no-recursive to look in sub-folders."),
        )
    return found


def _rel(root: Path, path: Path) -> str:
    try:
        return PurePosixPath(path.relative_to(root)).as_posix()
    except ValueError:
        return path.name


def _plan_work(
    plan: CaptionPlan, images: Sequence[tuple[str, Path]], state: _State, report: CaptionReport
) -> list[_Todo]:
    todo = []
    for rel, path in images:
        try:
            st = path.stat()
        except OSError as exc:
            _skip(report, rel, f"cannot read ({exc.strerror})", None)
            continue
        entry = state.file.images.get(rel)
        if entry is not None and _unchanged(entry, path, st.st_size, st.st_mtime_ns):
            if entry.mtime_ns != st.st_mtime_ns:  # touched, same content: no rehash next time
                entry = state.restat(rel, st.st_mtime_ns)
            if plan.mode == "skip":
                report.kept += 1
                continue
            if state.resumable(plan) and entry.run == state.unfinished_id:
                report.resumed += 1
                continue
        todo.append(_Todo(rel, path, st.st_size, st.st_mtime_ns, entry))
    return todo


def _unchanged(entry: ImageCaption, path: Path, size: int, mtime_ns: int) -> bool:
    """The captioned file is still the same (stat, or the content hash when only touched)."""
    if (entry.size, entry.mtime_ns) == (size, mtime_ns):
        return True
    if entry.size != size or not entry.sha256:
        return False
    try:
        return _sha256(path) == entry.sha256
    except OSError:
        return False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _model_of(captioner: Captioner, plan: CaptionPlan) -> str:
    model = getattr(captioner, "model_id", None) or plan.options.get("model") or ""
    return str(model)


class _State:
    """captions.json being updated: what is there, what this run changed, when it was saved."""

    def __init__(self, plan: CaptionPlan, file: CaptionFile) -> None:
        self.plan = plan
        self.file = file
        self.unfinished_id = file.unfinished.id if file.unfinished else ""
        self.run_id = ""
        self.dirty = False
        self.since_save = 0
        self.saved_at = time.monotonic()

    @classmethod
    def load(cls, plan: CaptionPlan) -> _State:
        path = plan.captions_path
        file = read_captions(path) if path.exists() else CaptionFile()
        return cls(plan, file)

    def resumable(self, plan: CaptionPlan) -> bool:
        unfinished = self.file.unfinished
        return (
            bool(unfinished)
            and unfinished is not None
            and unfinished.key == plan.run_key(unfinished.model)
        )

    def begin(self, plan: CaptionPlan, model: str) -> None:
        """Record this run as unfinished until :meth:`finish`; continue the last one if same."""
        key = plan.run_key(model)
        unfinished = self.file.unfinished
        self.run_id = (
            unfinished.id
            if unfinished is not None and unfinished.key == key
            else hashlib.sha256(f"{time.time_ns()}{os.getpid()}".encode()).hexdigest()[:12]
        )
        self.file = self.file.model_copy(
            update={
                "generator": f"eager-beaver {__version__}",
                "input": str(plan.input_dir.resolve()),
                "captioner": plan.captioner,
                "model": model,
                "options": _jsonable(plan.options),
                "trigger": plan.trigger,
                "prefix": plan.prefix,
                "suffix": plan.suffix,
                "mode": plan.mode,
                "unfinished": RunInfo(id=self.run_id, key=key, model=model),
            }
        )
        self.dirty = True

    def record(self, item: _Todo, caption: Caption, model: str, sha: str) -> None:
        existing = item.existing.caption if item.existing is not None else None
        text = compose(
            caption.text,
            mode=self.plan.mode,
            existing=existing,
            trigger=self.plan.trigger,
            prefix=self.plan.prefix,
            suffix=self.plan.suffix,
        )
        images = dict(self.file.images)
        images[item.rel] = ImageCaption(
            caption=text,
            raw=caption.text,
            tags=list(caption.tags),
            captioner=self.plan.captioner,
            model=model,
            size=item.size,
            mtime_ns=item.mtime_ns,
            sha256=sha,
            run=self.run_id,
        )
        skipped = {k: v for k, v in self.file.skipped.items() if k != item.rel}
        self.file = self.file.model_copy(update={"images": images, "skipped": skipped})
        self.dirty = True
        self.since_save += 1

    def restat(self, rel: str, mtime_ns: int) -> ImageCaption:
        """Remember a touched file's new mtime (its content hash matched)."""
        entry = self.file.images[rel].model_copy(update={"mtime_ns": mtime_ns})
        self.file = self.file.model_copy(update={"images": {**self.file.images, rel: entry}})
        self.dirty = True
        return entry

    def skipped(self, rel: str, reason: str) -> None:
        self.file = self.file.model_copy(update={"skipped": {**self.file.skipped, rel: reason}})
        self.dirty = True

    def maybe_save(self, report: CaptionReport) -> None:
        if self.since_save >= self.plan.save_every or (
            self.dirty and time.monotonic() - self.saved_at >= self.plan.save_seconds
        ):
            self.save(report)

    def finish(self) -> None:
        if self.file.unfinished is not None:
            self.file = self.file.model_copy(update={"unfinished": None})
            self.dirty = True

    def save(self, report: CaptionReport) -> None:
        del report
        if not self.dirty:
            return
        write_captions(self.plan.captions_path, self.file)
        self.dirty = False
        self.since_save = 0
        self.saved_at = time.monotonic()


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()}


@dataclass
class _Decoded:
    item: _Todo
    image: Image.Image | None
    sha256: str
    reason: str = ""


def _run(
    plan: CaptionPlan,
    captioner: Captioner,
    todo: Sequence[_Todo],
    state: _State,
    report: CaptionReport,
    progress: Progress,
    on_skip: Callable[[str, str], None] | None,
) -> None:
    model = _model_of(captioner, plan)
    side = int(getattr(captioner, "image_size", 0) or DEFAULT_IMAGE_SIZE)
    cap = getattr(captioner, "max_batch", None)
    batch_size = max(
        1, min(plan.batch_size, cap) if isinstance(cap, int) and cap > 0 else plan.batch_size
    )
    report.batch_size = batch_size
    done = 0
    progress.start("Captioning", total=len(todo))
    try:
        batch: list[_Decoded] = []
        for decoded in _decode_all(todo, side, plan.workers, batch_size):
            if decoded.image is None:
                state.skipped(decoded.item.rel, decoded.reason)
                _skip(report, decoded.item.rel, decoded.reason, on_skip)
                done += 1
                progress.update(done)
                continue
            batch.append(decoded)
            if len(batch) >= batch_size:
                batch_size = _caption_batch(captioner, batch, batch_size, state, model, report)
                done += len(batch)
                batch = []
                progress.update(done)
                state.maybe_save(report)
        if batch:
            _caption_batch(captioner, batch, batch_size, state, model, report)
            done += len(batch)
            progress.update(done)
    finally:
        progress.finish()


def _caption_batch(
    captioner: Captioner,
    batch: list[_Decoded],
    batch_size: int,
    state: _State,
    model: str,
    report: CaptionReport,
) -> int:
    """Caption ``batch``, halving the batch on out-of-memory; returns the batch size that fit."""
    start = 0
    while start < len(batch):
        chunk = batch[start : start + batch_size]
        tick = time.perf_counter()
        try:
            captions = captioner.caption([d.image for d in chunk if d.image is not None])
        except BeaverError:
            raise
        except Exception as exc:
            if runtime.is_out_of_memory(exc):
                runtime.free_accelerator_memory()
                if batch_size == 1:
                    raise BackendError(
                        f"{chunk[0].item.path}: out of GPU memory even one image at a time.",
                        hint="Use --device cpu, a smaller --model, or --dtype float16.",
                    ) from None
                batch_size = max(1, batch_size // 2)
                report.smaller_batches += 1
                report.batch_size = batch_size
                continue
            raise BackendError(
                f"The captioner failed on {chunk[0].item.path} "
                f"({type(exc).__name__}: {_first_line(exc)}).",
                hint="Run with --debug for the traceback; try another --captioner or --model.",
            ) from exc
        report.caption_seconds += time.perf_counter() - tick
        if len(captions) != len(chunk):
            raise BackendError(
                f"The captioner returned {len(captions)} captions for {len(chunk)} images.",
                hint="This is a bug in the captioner plugin; report it to its authors.",
            )
        for decoded, caption in zip(chunk, captions, strict=True):
            state.record(decoded.item, caption, model, decoded.sha256)
            report.captioned += 1
            if decoded.image is not None:
                decoded.image.close()
        start += len(chunk)
    return batch_size


def _decode_all(
    todo: Sequence[_Todo], side: int, workers: int, batch_size: int
) -> Iterator[_Decoded]:
    """Decode in worker threads, in order, a bounded window ahead of the captioner."""
    window = max(2, workers * 2, batch_size * 2)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        pending: deque[Future[_Decoded]] = deque()
        try:
            for item in todo:
                pending.append(pool.submit(_decode, item, side))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _decode(item: _Todo, side: int) -> _Decoded:
    try:
        data = item.path.read_bytes()
    except OSError as exc:
        return _Decoded(item, None, "", f"cannot read ({exc.strerror})")
    sha = hashlib.sha256(data).hexdigest()
    try:
        image = open_image(item.path, data=data, max_side=side)
    except ImageLoadError as exc:
        return _Decoded(item, None, sha, exc.reason)
    return _Decoded(item, image, sha)


def _skip(
    report: CaptionReport, rel: str, reason: str, on_skip: Callable[[str, str], None] | None
) -> None:
    report.skipped.setdefault(reason, []).append(rel)
    if on_skip is not None:
        on_skip(rel, reason)


def sidecar_names(rels: Sequence[str]) -> dict[str, str]:
    """Sidecar path (relative) per image: ``stem.txt``, or ``name.ext.txt`` where stems clash."""
    by_stem: dict[str, list[str]] = {}
    for rel in rels:
        p = PurePosixPath(rel)
        by_stem.setdefault(str(p.with_suffix("")).lower(), []).append(rel)
    names = {}
    for group in by_stem.values():
        for rel in group:
            p = PurePosixPath(rel)
            names[rel] = str(p.with_suffix(".txt")) if len(group) == 1 else f"{rel}.txt"
    return names


def _write_sidecars(plan: CaptionPlan, file: CaptionFile, present: set[str]) -> int:
    """One .txt per captioned image under output_dir/captions/, rewritten only when changed."""
    folder = plan.output_dir / SIDECAR_DIR
    rels = sorted(r for r in file.images if r in present)
    written = 0
    for rel, name in sidecar_names(rels).items():
        target = folder / name
        text = file.images[rel].caption + "\n"
        try:
            if target.read_text(encoding="utf-8") == text:
                continue
        except (OSError, UnicodeDecodeError):
            pass
        write_atomic(target, text)
        written += 1
    return written


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
