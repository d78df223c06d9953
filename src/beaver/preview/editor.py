"""Edits to a prepared dataset that keep its files consistent: images, captions, JSON files.

Every edit changes several files (an image moves between shot folders, its captions follow,
shots.json, concepts.json, preview_manifest.json, metadata.json and prep's name record are
rewritten). To survive a crash half-way, an edit is first written to ``.beaver-edits.json``
as *pending*, then carried out with idempotent steps, then marked done; opening the dataset
again finishes a pending edit. Edits are serialised by a thread lock and an advisory file
lock, so two browser tabs (or two servers) never interleave their writes. The edit journal
also remembers each photo's edits by its content key, so a later ``beaver prep`` re-run
keeps them.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from beaver.errors import InputError
from beaver.fsutil import write_atomic
from beaver.prep import dataset as files
from beaver.prep.balance import RECOMMENDED_MIX, RECOMMENDED_RANGE, recommend
from beaver.prep.concepts import ImageConcepts, extract, top_concepts
from beaver.prep.edits import EDITS, EXCLUDED_DIR, USER_EXCLUDED, read_edits
from beaver.prep.taxonomy import Taxonomy, load_taxonomy
from beaver.prep.writer import CAPTIONS_DIR, STATE

__all__ = ["EDITS", "SHOT_TYPES", "DatasetEditor", "EditError", "read_edits"]

LOCK = ".beaver-edits.lock"
SHOT_TYPES = ("close", "mid", "far", "unknown")


class EditError(Exception):
    """An edit that cannot be made; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Data:
    """Everything an edit reads and writes, loaded fresh for each edit."""

    meta: dict[str, Any]
    shots: dict[str, Any]
    concepts: dict[str, Any]
    manifest: dict[str, Any]
    names: dict[str, str]
    state: dict[str, Any]
    journal: dict[str, Any]

    def image(self, filename: str) -> dict[str, Any]:
        for entry in self.manifest["images"]:
            if entry["filename"] == filename:
                return dict(entry)
        raise EditError(
            f"{filename} is not in this dataset (another tab may have moved it: reload).", 404
        )

    def key_of(self, filename: str) -> str:
        for key, name in self.names.items():
            if name == filename:
                return key
        return f"file:{Path(filename).name}"


class DatasetEditor:
    """One prepared dataset, for reading by the preview page and for its edits."""

    def __init__(self, path: Path, taxonomy: Path | None = None) -> None:
        self.path = path.resolve()
        self._lock = threading.Lock()
        self._taxonomy_path = taxonomy
        self._taxonomy: Taxonomy | None = None
        self._sizes: dict[tuple[str, int], tuple[int, int]] = {}
        self._listed: tuple[int, frozenset[str]] | None = None
        self._moved: dict[str, str] = {}
        if not (self.path / files.PREVIEW).is_file() or not (self.path / files.METADATA).is_file():
            raise InputError(
                self.path,
                "not a beaver prep dataset (preview_manifest.json or metadata.json is missing).",
                hint="Run `beaver prep PHOTOS --name NAME` and pass the folder it writes.",
            )
        with self._locked():
            self._load()  # fail early on malformed files; finishes a pending edit

    # -- reading -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole dataset as the page shows it."""
        with self._lock:
            return self._snapshot(self._load())

    def file_for(self, filename: str) -> Path | None:
        """The file of a listed image (None for anything else: only listed images are served)."""
        with self._lock:
            stamp = (self.path / files.PREVIEW).stat().st_mtime_ns
            if self._listed is None or self._listed[0] != stamp:
                # Read again only when the manifest changed: a page asks for every thumbnail.
                data = self._load()
                self._listed = (stamp, frozenset(e["filename"] for e in data.manifest["images"]))
            listed = self._listed[1]
        return self.path / filename if filename in listed else None

    def moved_to(self, filename: str) -> str | None:
        """Where an image this editor moved now is (following later moves), or None.

        A page may ask for an image by the name it had a moment ago (a request already on
        its way when the user changed the shot type); it is sent on to the new name.
        """
        with self._lock:
            seen: set[str] = set()
            name = filename
            while name in self._moved and name not in seen:
                seen.add(name)
                name = self._moved[name]
        return name if name != filename else None

    # -- edits ---------------------------------------------------------------------------

    def set_shot(self, filename: str, shot: str) -> dict[str, Any]:
        """Move an image to another shot type (file, captions and every JSON follow)."""
        if shot not in SHOT_TYPES:
            raise EditError(f"Unknown shot type {shot!r}: use one of {', '.join(SHOT_TYPES)}.")
        return self._edit("shot", filename, shot)

    def set_caption(self, filename: str, caption: str) -> dict[str, Any]:
        """Replace an image's caption (both .txt files); its concepts are extracted again."""
        text = " ".join(caption.split())
        if not text:
            raise EditError("A caption cannot be empty (trainers reject empty caption files).")
        return self._edit("caption", filename, text)

    def set_excluded(self, filename: str, excluded: bool) -> dict[str, Any]:
        """Leave an image out of training (moved to excluded/), or bring it back."""
        return self._edit("exclude", filename, bool(excluded))

    def set_emphasis(self, filename: str, emphasis: bool) -> dict[str, Any]:
        """Tag an image for emphasis: `beaver train` repeats it more."""
        return self._edit("emphasis", filename, bool(emphasis))

    def _edit(self, kind: str, filename: str, value: Any) -> dict[str, Any]:
        with self._lock, self._locked():
            data = self._load()
            data.image(filename)  # 404 before anything is written
            target = self._target(data, kind, filename, value)
            pending = {"op": kind, "filename": filename, "value": value, "target": target}
            data.journal["pending"] = pending
            self._write_journal(data.journal)
            new_name = self._apply(pending)
            if new_name != filename:
                self._moved[filename] = new_name
            data = self._load()
            return {
                "image": self._image(data, data.image(new_name)),
                "dataset": self._snapshot(data),
            }

    def _target(self, data: _Data, kind: str, filename: str, value: Any) -> str:
        """Where the image will be after the edit (its new name relative to the dataset)."""
        name = Path(filename).name
        entry = data.image(filename)
        if kind == "shot":
            if "/" not in filename or entry.get("excluded"):
                return filename  # a flat dataset, or an excluded image: only the data changes
            if filename.startswith(f"{value}/"):
                return filename
            return f"{value}/{self._free_name(data, name, str(value))}"
        if kind == "exclude":
            if value and not entry.get("excluded"):
                return f"{EXCLUDED_DIR}/{name}"
            if not value and entry.get("excluded"):
                folder = entry["shot_type"] if self._organised(data) else ""
                return f"{folder}/{name}" if folder else name
        return filename

    def _free_name(self, data: _Data, name: str, shot: str) -> str:
        """``<trigger>_<shot>_<next free number><ext>``: prep's naming, so prep keeps it."""
        trigger = data.meta["trigger_word"]
        taken = {Path(e["filename"]).name for e in data.manifest["images"]}
        suffix = Path(name).suffix
        number = 1
        while (
            f"{trigger}_{shot}_{number:04d}{suffix}" in taken
            or (self.path / shot / f"{trigger}_{shot}_{number:04d}{suffix}").exists()
        ):
            number += 1
        return f"{trigger}_{shot}_{number:04d}{suffix}"

    @staticmethod
    def _organised(data: _Data) -> bool:
        return any("/" in e["filename"] and not e.get("excluded") for e in data.manifest["images"])

    # -- carrying out an edit (idempotent: a crash between steps is finished on reopen) -----

    def _apply(self, pending: dict[str, Any]) -> str:
        kind, value = str(pending["op"]), pending["value"]
        old, new = str(pending["filename"]), str(pending["target"])
        if old != new:
            self._move(old, new)
        data = self._load(recover=False)
        key = data.key_of(old) if old in data.names.values() else data.key_of(new)
        record = data.journal.setdefault("images", {}).setdefault(key, {})
        entry = next(
            (e for e in data.manifest["images"] if e["filename"] in (old, new)),
            None,
        )
        if entry is None:  # already carried out (and the journal was cleared)
            return new
        old_key, new_key = Path(old).name, Path(new).name
        entry["filename"] = new
        if old in data.names.values():
            data.names[key] = new
        for table in (data.shots, data.concepts):
            if old_key in table and old_key != new_key:
                table[new_key] = table.pop(old_key)
        if kind == "shot":
            entry["shot_type"] = value
            entry["shot_confidence"] = 1.0
            target = data.shots.get(new_key)
            if target is not None:
                target["shot_type"] = value
                target["confidence"] = 1.0
            record["shot"] = value
        elif kind == "caption":
            self._write_caption(new, value)
            found = extract(value, self._taxonomy_for(data)).model_dump(mode="json")
            data.concepts[new_key] = found
            entry.update(
                caption=value,
                concepts=found["concepts"],
                pose=found["pose"],
                setting=found["setting"],
            )
            record["caption"] = value
        elif kind == "exclude":
            # shots.json and concepts.json keep the entry (the manifest marks it excluded).
            entry["excluded"] = value
            if value:
                record["excluded"] = True
            else:
                record.pop("excluded", None)
        elif kind == "emphasis":
            entry["emphasis"] = value
            if value:
                record["emphasis"] = True
            else:
                record.pop("emphasis", None)
        for i, e in enumerate(data.manifest["images"]):
            if e["filename"] in (old, new):
                data.manifest["images"][i] = entry
        self._refresh_metadata(data)
        self._save(data)
        data.journal["pending"] = None
        self._write_journal(data.journal)
        return new

    def _move(self, old: str, new: str) -> None:
        """Move an image and its caption files; each step skipped when already done."""
        pairs = [(old, new)]
        old_txt, new_txt = Path(old).with_suffix(".txt"), Path(new).with_suffix(".txt")
        pairs.append((old_txt.as_posix(), new_txt.as_posix()))
        if Path(old).stem != Path(new).stem:
            pairs.append(
                (
                    f"{CAPTIONS_DIR}/{Path(old).stem}.txt",
                    f"{CAPTIONS_DIR}/{Path(new).stem}.txt",
                )
            )
        for src_rel, dst_rel in pairs:
            src, dst = self.path / src_rel, self.path / dst_rel
            if os.path.lexists(src) and not os.path.lexists(dst):
                dst.parent.mkdir(parents=True, exist_ok=True)
                src.rename(dst)  # same file system: atomic, and a symlink stays a symlink

    def _write_caption(self, filename: str, caption: str) -> None:
        text = caption + "\n"
        write_atomic(self.path / Path(filename).with_suffix(".txt"), text)
        if (self.path / CAPTIONS_DIR).is_dir():
            write_atomic(self.path / CAPTIONS_DIR / f"{Path(filename).stem}.txt", text)

    def _refresh_metadata(self, data: _Data) -> None:
        kept = [e for e in data.manifest["images"] if not e.get("excluded")]
        counts = {s: sum(1 for e in kept if e["shot_type"] == s) for s in SHOT_TYPES}
        distribution = {s: counts[s] for s in ("close", "mid", "far")}
        if counts["unknown"]:
            distribution["unknown"] = counts["unknown"]
        meta = data.meta
        old_balance = set(recommend(meta.get("shot_distribution", {})).warnings)
        others = [w for w in meta.get("warnings", []) if w not in old_balance]
        meta["warnings"] = others + recommend(distribution).warnings
        meta["shot_distribution"] = distribution
        meta["total_images"] = len(kept)
        per_image = [
            ImageConcepts.model_validate(data.concepts[Path(e["filename"]).name])
            for e in kept
            if Path(e["filename"]).name in data.concepts
        ]
        meta["top_concepts"] = [
            t.model_dump(mode="json") for t in top_concepts(per_image, len(kept))
        ]
        sources = [
            data.shots.get(Path(e["filename"]).name, {}).get("source", "")
            for e in data.manifest["images"]
            if e.get("excluded")
        ]
        excluded = dict(meta.get("excluded", {}))
        excluded.pop(USER_EXCLUDED, None)
        if sources:
            excluded[USER_EXCLUDED] = sources
        meta["excluded"] = excluded
        meta["emphasis"] = [e["filename"] for e in kept if e.get("emphasis")]
        data.manifest["dataset"]["total_images"] = len(kept)

    # -- files ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An advisory lock on the dataset's edit lock file (other processes wait)."""
        try:
            import fcntl
        except ImportError:  # Windows: the thread lock still serialises this server
            yield
            return
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _read(self, name: str, default: Any = None) -> Any:
        path = self.path / name
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if default is not None:
                return default
            raise InputError(path, "is missing.", hint="Re-run `beaver prep`.") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(
                path, f"is not valid JSON ({exc}).", hint="Re-run `beaver prep`."
            ) from None

    def _load(self, *, recover: bool = True) -> _Data:
        journal = self._read(EDITS, {"version": 1, "images": {}})
        if recover and journal.get("pending"):
            self._apply(journal["pending"])
            journal = self._read(EDITS, {"version": 1, "images": {}})
        state = self._read(STATE, {"version": 1, "names": {}})
        try:
            manifest = files.PreviewManifest.model_validate(self._read(files.PREVIEW))
            meta = files.Metadata.model_validate(self._read(files.METADATA))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise InputError(
                self.path, f"{where}: {err['msg']}.", hint="Re-run `beaver prep`."
            ) from None
        return _Data(
            meta=meta.model_dump(mode="json"),
            shots=self._read(files.SHOTS, {}),
            concepts=self._read(files.CONCEPTS, {}),
            manifest=manifest.model_dump(mode="json"),
            names=dict(state.get("names", {})),
            state=state,
            journal=journal,
        )

    def _save(self, data: _Data) -> None:
        # Validate before writing: a bug must not leave a file prep or train cannot read.
        manifest = files.PreviewManifest.model_validate(data.manifest)
        meta = files.Metadata.model_validate(data.meta)
        shots = {k: files.ShotEntry.model_validate(v) for k, v in data.shots.items()}
        concepts = {k: ImageConcepts.model_validate(v) for k, v in data.concepts.items()}
        files.write_json(self.path / files.SHOTS, dict(shots))
        files.write_json(self.path / files.CONCEPTS, dict(concepts))
        files.write_json(self.path / files.PREVIEW, manifest)
        files.write_json(self.path / files.METADATA, meta)
        if (self.path / STATE).exists():
            state = dict(data.state)
            state["names"] = data.names
            write_atomic(self.path / STATE, json.dumps(state, indent=1) + "\n")

    def _write_journal(self, journal: dict[str, Any]) -> None:
        journal.setdefault("version", 1)
        write_atomic(self.path / EDITS, json.dumps(journal, indent=1, ensure_ascii=False) + "\n")

    def _taxonomy_for(self, data: _Data) -> Taxonomy:
        if self._taxonomy is None:
            path = self._taxonomy_path
            if path is None and data.meta.get("taxonomy"):
                candidate = Path(data.meta["taxonomy"])
                path = candidate if candidate.is_file() else None
            self._taxonomy = load_taxonomy(path)
        return self._taxonomy

    # -- what the page gets --------------------------------------------------------------

    def _size(self, filename: str) -> tuple[int, int]:
        path = self.path / filename
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            return (0, 0)
        cached = self._sizes.get((filename, stamp))
        if cached is None:
            from PIL import Image

            try:
                with Image.open(path) as image:
                    cached = image.size
            except OSError:
                cached = (0, 0)
            self._sizes[(filename, stamp)] = cached
        return cached

    def _image(self, data: _Data, entry: dict[str, Any]) -> dict[str, Any]:
        name = Path(entry["filename"]).name
        shot = data.shots.get(name) or {}
        width, height = self._size(entry["filename"])
        # The version makes a name reused by another photo (after a move) a new URL, so no
        # cached thumbnail of the old photo is shown; quoting keeps '#' and '?' in names.
        try:
            version = f"{(self.path / entry['filename']).stat().st_mtime_ns:x}"
        except OSError:
            version = "0"
        url = quote(entry["filename"])
        return {
            **entry,
            "name": name,
            "face_ratio": shot.get("face_ratio"),
            "face_bbox": shot.get("face_bbox"),
            "source": shot.get("source", ""),
            "width": width,
            "height": height,
            "thumb": f"/thumb/{url}?v={version}",
            "image": f"/image/{url}?v={version}",
        }

    def _snapshot(self, data: _Data) -> dict[str, Any]:
        meta = data.meta
        images = [self._image(data, e) for e in data.manifest["images"]]
        stamp = (self.path / files.PREVIEW).stat().st_mtime_ns
        return {
            "name": meta["person"],
            "trigger": meta["trigger_word"],
            "path": str(self.path),
            "total_images": meta["total_images"],
            "shot_distribution": meta["shot_distribution"],
            "recommended_mix": meta.get("recommended_mix") or dict(RECOMMENDED_MIX),
            "recommended_range": {k: list(v) for k, v in RECOMMENDED_RANGE.items()},
            "top_concepts": meta["top_concepts"],
            "warnings": meta.get("warnings", []),
            "concepts": sorted({c for e in images for c in e.get("concepts", [])}),
            "shot_types": list(SHOT_TYPES),
            "version": f"{stamp:x}",
            "images": images,
        }
