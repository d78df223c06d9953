"""``beaver face export``: per-person folders of photos (organized) or face crops, with manifests.

Store-independent: the caller reads the face store and passes plain records. Originals are
never opened for writing, moved or deleted: every export file is written to a same-folder
temp file and swapped in with ``os.replace`` (which replaces a symlink itself, never the photo
it points to), and only files listed in our own previous manifest are ever removed.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import secrets
import shutil
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from beaver.errors import DiskFullError, InputError
from beaver.fsutil import write_atomic
from beaver.images import ImageLoadError, open_image

Box = tuple[float, float, float, float]
ExportFormat = Literal["organized", "crops"]
FileMode = Literal["copy", "symlink", "crop"]
MANIFEST = "manifest.json"
SkipHook = Callable[[Path, str], None]

_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"{p}{n}" for p in ("COM", "LPT") for n in range(1, 10)}
)
_MAX_NAME_BYTES = 150


@dataclass(frozen=True)
class ExportFace:
    """One face to export; ``bbox`` is (x1, y1, x2, y2) in original, EXIF-oriented pixels."""

    face_id: int
    bbox: Box
    score: float


@dataclass(frozen=True)
class ExportPhoto:
    """A source photo and this person's face(s) in it."""

    source: Path
    sha256: str
    faces: tuple[ExportFace, ...]


@dataclass(frozen=True)
class ExportPerson:
    """A person to export: ``key`` like ``person_001``, the user's name if any, their photos."""

    key: str
    name: str | None
    photos: tuple[ExportPhoto, ...]


class ManifestFace(BaseModel):
    """A face in an exported file: its box in the source, and for crops its box in the crop."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    face_id: int
    bbox: Box
    crop_bbox: Box | None = None


class ManifestFile(BaseModel):
    """One file beaver wrote into a person folder, and where it came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    source: Path
    sha256: str
    mode: FileMode
    faces: tuple[ManifestFace, ...]


class ExportManifest(BaseModel):
    """``<person folder>/manifest.json``: what beaver exported there, so re-exports are exact."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    person: str
    name: str | None
    format: ExportFormat
    margin: float | None = None
    """Crop margin (crops only): a change rewrites every crop."""
    complete: bool = True
    """False while an export is running: the files are ours, but none counts as up to date."""
    files: tuple[ManifestFile, ...] = ()


def manifest_schema() -> dict[str, Any]:
    """JSON Schema of ``manifest.json``."""
    return ExportManifest.model_json_schema()


@dataclass(frozen=True)
class PersonExport:
    """What happened in one person's folder."""

    key: str
    folder: Path
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class ExportReport:
    """Files written, left unchanged, removed (no longer wanted), skipped; and per person."""

    written: int
    unchanged: int
    removed: int
    skipped: int
    people: tuple[PersonExport, ...]


def safe_name(text: str) -> str:
    """``text`` as a portable file or folder name; empty when nothing usable is left."""
    name = unicodedata.normalize("NFC", _UNSAFE_CHARS.sub("_", text))
    # Leading dots hide the folder; trailing dots and spaces are dropped by Windows.
    name = name.strip().lstrip(".").strip()
    name = name.encode("utf-8")[:_MAX_NAME_BYTES].decode("utf-8", "ignore").rstrip(". ")
    if name.split(".", 1)[0].upper() in _WINDOWS_RESERVED:
        name = f"_{name}"
    return name


def person_folders(people: Sequence[ExportPerson]) -> dict[str, str]:
    """Person key → folder name: the safe name (or key); colliding names get the key appended."""
    wanted = {p.key: safe_name(p.name or "") or safe_name(p.key) or "person" for p in people}
    counts = Counter(name.casefold() for name in wanted.values())
    folders: dict[str, str] = {}
    taken: set[str] = set()
    for key in sorted(wanted):
        name = wanted[key]
        if counts[name.casefold()] > 1:
            name = f"{name}_{safe_name(key)}"
        unique, n = name, 2
        while unique.casefold() in taken:  # only for contrived names like "Al_person_002"
            unique, n = f"{name}_{n}", n + 1
        taken.add(unique.casefold())
        folders[key] = unique
    return folders


def crop_square(bbox: Box, width: int, height: int, margin: float) -> tuple[int, int, int]:
    """(left, top, side) of a square around ``bbox``, kept inside the image where it fits."""
    x1, y1, x2, y2 = bbox
    side = max(1, round(max(x2 - x1, y2 - y1) * (1 + 2 * margin)))

    def start(centre: float, extent: int) -> int:
        # Shift into the image; when the image is smaller than the square, centre the image.
        low, high = sorted((0, extent - side))
        return round(min(max(centre - side / 2, low), high))

    return start((x1 + x2) / 2, width), start((y1 + y2) / 2, height), side


@dataclass(eq=False)
class _Item:
    """One file a person's folder should hold."""

    base: str
    source: Path
    photo: ExportPhoto
    faces: tuple[ExportFace, ...]
    mode: FileMode
    name: str = ""
    entry: ManifestFile | None = field(default=None)


def export_people(
    people: Sequence[ExportPerson],
    root: Path,
    *,
    fmt: ExportFormat,
    symlink: bool = False,
    margin: float = 0.4,
    on_progress: Callable[[int], None] | None = None,
    on_skip: SkipHook | None = None,
) -> ExportReport:
    """Export each person into ``root/<name or key>/``; safe to re-run (only changes are written).

    ``on_progress`` gets the number of photos handled so far (of ``sum(len(p.photos))``);
    ``on_skip`` gets each source or file left out and why. ``symlink`` applies to organized only.
    """
    skip = on_skip or _ignore
    mode: FileMode = "crop" if fmt == "crops" else "symlink" if symlink else "copy"
    folders = person_folders(people)
    protected = {_resolved(photo.source) for person in people for photo in person.photos}
    moved = _clean_moved_folders(root, folders, protected, skip)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(done)

    results: list[PersonExport] = []
    for person in people:
        start = done
        job = _PersonJob(person, root / folders[person.key], fmt, mode, margin, protected, skip)
        result = job.run(tick)
        results.append(replace(result, removed=result.removed + moved.get(person.key, 0)))
        done = start + len(person.photos)
        if on_progress is not None:
            on_progress(done)
    return ExportReport(
        written=sum(r.written for r in results),
        unchanged=sum(r.unchanged for r in results),
        removed=sum(r.removed for r in results),
        skipped=sum(r.skipped for r in results),
        people=tuple(results),
    )


@dataclass
class _PersonJob:
    """Bring one person folder up to date."""

    person: ExportPerson
    folder: Path
    fmt: ExportFormat
    mode: FileMode
    margin: float
    protected: set[Path]
    skip: SkipHook

    def run(self, tick: Callable[[], None]) -> PersonExport:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(self.folder, f"cannot create the folder ({exc.strerror}).") from None
        previous = read_manifest(self.folder / MANIFEST)
        crop_margin = self.margin if self.fmt == "crops" else None
        old = {e.file.casefold(): e for e in previous.files} if previous else {}
        items = _plan(self.person, self.mode, self.folder, previous)
        reusable = previous is not None and previous.complete and previous.margin == crop_margin
        todo: list[_Item] = []
        refused: list[_Item] = []
        for item in items:
            if _is_original(self.folder / item.name, item.source, self.protected):
                self.skip(self.folder / item.name, "is an original photo; not overwritten")
                refused.append(item)
            elif reusable and _up_to_date(item, old, self.folder):
                item.entry = old[item.name.casefold()]
            else:
                todo.append(item)
        if todo:
            # Claim every name first: after a crash the next run still knows these files are ours.
            pending = dict(old) | {i.name.casefold(): _entry(i) for i in todo}
            self._save(pending.values(), complete=False)
        written, skipped = self._write(todo, tick)
        wanted = {i.name.casefold() for i in items if i not in refused}
        stale = [e for key, e in old.items() if key not in wanted]
        removed, kept = _remove_stale(stale, self.folder, self.protected, self.skip)
        # A wanted file that could not be written keeps its earlier version, if there is one;
        # after an interrupted run that version is unknown, so the next run checks it again.
        carried = [old[k] for i in todo if i.entry is None and (k := i.name.casefold()) in old]
        files = [i.entry for i in items if i.entry is not None] + kept + carried
        self._save(files, complete=previous is None or previous.complete or not carried)
        unchanged = len(items) - len(todo) - len(refused)
        return PersonExport(
            self.person.key, self.folder, written, unchanged, removed, skipped + len(refused)
        )

    def _save(self, files: Iterable[ManifestFile], *, complete: bool) -> None:
        manifest = ExportManifest(
            person=self.person.key,
            name=self.person.name,
            format=self.fmt,
            margin=self.margin if self.fmt == "crops" else None,
            complete=complete,
            files=tuple(sorted(files, key=lambda e: e.file)),
        )
        _write_manifest(self.folder, manifest)

    def _write(self, todo: list[_Item], tick: Callable[[], None]) -> tuple[int, int]:
        """Write the files of ``todo``, one source photo at a time; returns (written, skipped)."""
        written = skipped = 0
        by_photo: dict[Path, list[_Item]] = {}
        for item in todo:
            by_photo.setdefault(item.source, []).append(item)
        for source, items in by_photo.items():
            try:
                if self.mode == "crop":
                    _write_crops(items, self.folder, self.margin)
                else:
                    for item in items:
                        _write_link_or_copy(item, self.folder / item.name)
                        item.entry = _entry(item)
            except ImageLoadError as exc:  # unreadable source: the export goes on without it
                self.skip(source, exc.reason)
            done = sum(1 for i in items if i.entry is not None)
            written += done
            skipped += len(items) - done
            tick()
        return written, skipped


def read_manifest(path: Path) -> ExportManifest | None:
    """The manifest at ``path``; None when there is none; InputError when it is not ours."""
    try:
        return ExportManifest.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as exc:
        problem = exc.strerror if isinstance(exc, OSError) else "not a beaver export manifest"
        raise InputError(
            path,
            f"{problem}.",
            hint="Move it away (files beaver exported there are then left alone) and export again.",
        ) from None


def _write_manifest(folder: Path, manifest: ExportManifest) -> None:
    text = manifest.model_dump_json(indent=2) + "\n"
    path = folder / MANIFEST
    try:
        if path.read_text(encoding="utf-8") == text:
            return  # an unchanged export leaves even the manifest's mtime alone
    except (OSError, UnicodeDecodeError):
        pass
    write_atomic(path, text)


def _plan(
    person: ExportPerson, mode: FileMode, folder: Path, previous: ExportManifest | None
) -> list[_Item]:
    """The files the folder should hold, each with a name that is stable across re-runs."""
    items: list[_Item] = []
    seen: set[str] = set()
    for photo in sorted(person.photos, key=lambda p: str(p.source)):
        if photo.sha256 and photo.sha256 in seen:
            continue  # byte-identical copies of one photo are exported once
        seen.add(photo.sha256)
        source = photo.source.absolute()
        if mode == "crop":
            items += [
                _Item(f"{source.stem}_face{f.face_id}.jpg", source, photo, (f,), mode)
                for f in sorted(photo.faces, key=lambda f: f.face_id)
            ]
        else:
            items.append(_Item(source.name, source, photo, photo.faces, mode))
    # A crop and a whole photo never inherit each other's name.
    files = previous.files if previous else ()
    before = {(e.source, _face_ids(e), e.mode == "crop"): e.file for e in files}
    ours = {e.file for e in files}
    try:
        present = {p.name.casefold() for p in folder.iterdir() if p.name not in ours}
    except OSError:
        present = set()
    taken = {MANIFEST.casefold()} | present  # never write over a file the user put there
    for item in items:
        name = before.get((item.source, _face_ids(item), item.mode == "crop"))
        if name is not None and name.casefold() not in taken:
            item.name = name
            taken.add(name.casefold())
    for item in items:
        if item.name:
            continue
        base = Path(item.base)
        name, n = item.base, 2
        # Exporting into the photo's own folder: take its name, so the write is refused below.
        own = name.casefold() in present and _is_original(folder / name, item.source, set())
        while name.casefold() in taken and not own:
            name, n = f"{base.stem}_{n}{base.suffix}", n + 1
        item.name = name
        taken.add(name.casefold())
    return items


def _face_ids(entry: ManifestFile | _Item) -> tuple[int, ...]:
    return tuple(f.face_id for f in entry.faces)


def _entry(item: _Item, crops: dict[int, Box] | None = None) -> ManifestFile:
    faces = tuple(
        ManifestFace(face_id=f.face_id, bbox=f.bbox, crop_bbox=(crops or {}).get(f.face_id))
        for f in item.faces
    )
    return ManifestFile(
        file=item.name, source=item.source, sha256=item.photo.sha256, mode=item.mode, faces=faces
    )


def _up_to_date(item: _Item, old: dict[str, ManifestFile], folder: Path) -> bool:
    entry = old.get(item.name.casefold())
    if entry is None or entry.file != item.name:
        return False
    was = (entry.source, entry.sha256, entry.mode, [(f.face_id, f.bbox) for f in entry.faces])
    now = (item.source, item.photo.sha256, item.mode, [(f.face_id, f.bbox) for f in item.faces])
    if was != now:
        return False
    target = folder / item.name
    if item.mode == "symlink":
        return target.is_symlink() and target.readlink() == item.source
    return target.is_file() and not target.is_symlink()


def _write_crops(items: list[_Item], folder: Path, margin: float) -> None:
    with open_image(items[0].source) as image:
        for item in items:
            face = item.faces[0]
            left, top, side = crop_square(face.bbox, image.width, image.height, margin)
            crop = image.crop((left, top, left + side, top + side))
            buffer = io.BytesIO()
            crop.save(buffer, format="JPEG", quality=95)
            write_atomic(folder / item.name, buffer.getvalue())
            x1, y1, x2, y2 = face.bbox
            item.entry = _entry(item, {face.face_id: (x1 - left, y1 - top, x2 - left, y2 - top)})


def _write_link_or_copy(item: _Item, target: Path) -> None:
    if not item.source.is_file():
        raise ImageLoadError(item.source, "no such file")
    if item.mode == "symlink":
        tmp = target.with_name(f".{secrets.token_hex(8)}.beaver-link.tmp")
        try:
            tmp.symlink_to(item.source)
            tmp.replace(target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise InputError(target, f"cannot create a symlink ({exc.strerror}).") from None
        return
    fd, name = tempfile.mkstemp(prefix=".beaver-", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        shutil.copy2(item.source, tmp)
        tmp.replace(target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(target) from None
        if exc.filename is not None and Path(exc.filename) == item.source:
            raise ImageLoadError(item.source, (exc.strerror or str(exc)).lower()) from None
        raise InputError(target, f"cannot write ({exc.strerror}).") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _same(a: Path, b: Path) -> bool:
    try:
        return a == b or a.samefile(b)
    except OSError:
        return False


def _ignore(path: Path, reason: str) -> None:
    del path, reason


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def _is_original(path: Path, source: Path | None, protected: set[Path]) -> bool:
    """True when ``path`` is (not a link to, but) a user's photo: never replace or delete it."""
    if path.is_symlink() or not path.exists():
        return False  # replacing or removing a link never touches the file it points to
    if _resolved(path) in protected:
        return True
    try:
        return source is not None and path.samefile(source)
    except OSError:
        return False


def _remove_stale(
    stale: list[ManifestFile], folder: Path, protected: set[Path], skip: SkipHook
) -> tuple[int, list[ManifestFile]]:
    """Delete files of our previous manifest that are no longer wanted; returns (count, kept)."""
    removed = 0
    kept: list[ManifestFile] = []
    for entry in stale:
        path = folder / entry.file
        if not _plain_name(entry.file):
            continue  # a hand-edited manifest never makes us delete outside the folder
        if _is_original(path, entry.source, protected):
            skip(path, "is an original photo; not removed")
            continue
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            skip(path, f"could not remove ({exc.strerror})")
            kept.append(entry)
    return removed, kept


def _plain_name(name: str) -> bool:
    """Whether ``name`` is a file name inside its folder (not a path, not the manifest)."""
    return bool(name) and name not in {".", "..", MANIFEST} and not set(name) & {"/", "\\", "\0"}


def _clean_moved_folders(
    root: Path, folders: dict[str, str], protected: set[Path], skip: SkipHook
) -> dict[str, int]:
    """Empty the old folder of a person whose folder name changed (they were named since)."""
    removed: dict[str, int] = {}
    chosen = [root / name for name in folders.values()]
    try:
        siblings = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return removed
    for folder in sorted(siblings):
        if not (folder / MANIFEST).is_file() or any(_same(folder, c) for c in chosen):
            continue  # (a folder whose name differs only in case may be the same one)
        try:
            manifest = read_manifest(folder / MANIFEST)
        except InputError:
            continue  # not ours to judge: leave the folder alone
        if manifest is None or manifest.person not in folders:
            continue
        count, kept = _remove_stale(list(manifest.files), folder, protected, skip)
        removed[manifest.person] = removed.get(manifest.person, 0) + count
        if kept:
            _write_manifest(folder, manifest.model_copy(update={"files": tuple(kept)}))
            continue
        (folder / MANIFEST).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty: the user's own files keep it
    return removed
