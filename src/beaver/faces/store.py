"""The face store: one SQLite database (WAL) under ``outputs/facevault/``.

It holds what a scan found (images, faces with embeddings and quality), the people that
clustering and the user made, and the user's decisions. Every write happens inside a
transaction, so a crash or a full disk leaves the last committed state intact.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import numpy.typing as npt

from beaver.errors import BeaverError, DiskFullError, InputError
from beaver.faces import schema

DB_NAME = "faces.db"
ImageStatus = Literal["ok", "error", "missing"]
Box = tuple[float, float, float, float]
Points = tuple[tuple[float, float], ...]

_FACE_COLUMNS = (
    "f.id, f.image_id, i.path, f.x1, f.y1, f.x2, f.y2, f.score, f.landmarks, f.size, f.blur, "
    "f.person_id, f.locked, f.rejected, i.sha256"
)


def person_key(person_id: int) -> str:
    """The user-facing id of a person: ``person_001``."""
    return f"person_{person_id:03d}"


def parse_person_key(text: str) -> int | None:
    """``person_007`` → 7; None when ``text`` is not a person key."""
    prefix, _, number = text.partition("_")
    if prefix == "person" and number.isdigit():
        return int(number)
    return None


@dataclass(frozen=True)
class ImageRecord:
    """One row of ``images``."""

    id: int
    path: str
    size: int
    mtime_ns: int
    sha256: str | None
    width: int | None
    height: int | None
    status: ImageStatus
    error: str | None
    engine: str | None


@dataclass(frozen=True)
class NewFace:
    """A face a scan found, in original-image pixels, ready to store."""

    bbox: Box
    score: float
    landmarks: Points
    embedding: npt.NDArray[np.float32]
    size: float
    """Short side of the box, in original pixels."""
    blur: float
    """Variance of the Laplacian of the face crop: low means blurred."""


@dataclass(frozen=True)
class FaceRow:
    """A stored face, with the path of its image."""

    id: int
    image_id: int
    path: str
    bbox: Box
    score: float
    landmarks: Points
    size: float
    blur: float
    person_id: int | None
    locked: bool
    rejected: bool
    sha256: str | None
    """Content hash of the photo."""


@dataclass(frozen=True)
class Person:
    """A person: a numbered group of faces, maybe named."""

    id: int
    name: str | None
    hidden: bool
    confirmed: bool
    faces: int
    photos: int

    @property
    def key(self) -> str:
        """``person_001``."""
        return person_key(self.id)

    @property
    def label(self) -> str:
        """The name when there is one, else the key."""
        return self.name or self.key


@dataclass(frozen=True)
class ClusterInputs:
    """Everything clustering needs, as arrays aligned on ``face_ids``."""

    face_ids: npt.NDArray[np.int64]
    embeddings: npt.NDArray[np.float32]
    image_ids: npt.NDArray[np.int64]
    person: npt.NDArray[np.int64]
    locked: npt.NDArray[np.bool_]
    excluded: npt.NDArray[np.bool_]
    stable: frozenset[int]
    forbidden: dict[int, frozenset[int]]
    next_id: int


class FaceStore:
    """Read and write the face database. Use as a context manager."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.db = db
        self.path = path

    @classmethod
    def open(cls, folder: Path, *, create: bool = True) -> FaceStore:
        """Open (and create or upgrade) ``folder/faces.db``."""
        path = folder / DB_NAME
        if not create and not path.exists():
            raise InputError(
                path,
                "no face database yet",
                hint="Run `beaver face scan DIR` first (or pass the --output-dir it used).",
            )
        try:
            folder.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
            version = schema.schema_version(db)
            if version > schema.SCHEMA_VERSION:
                db.close()
                raise InputError(
                    path,
                    f"schema version {version} is newer than this beaver knows "
                    f"({schema.SCHEMA_VERSION})",
                    hint="Upgrade eager-beaver.",
                )
            schema.migrate(db)
        except sqlite3.DatabaseError as exc:
            raise _db_error(path, exc) from None
        except PermissionError as exc:
            raise InputError(
                folder, f"cannot write here ({exc.strerror})", hint="Choose --output-dir."
            ) from None
        return cls(db, path)

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work; rolled back on any error, a full disk becomes DiskFullError."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _db_error(self.path, exc) from None
        try:
            yield self.db
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise _db_error(self.path, exc) from None
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    # -- meta ---------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A value of the ``meta`` table."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, db: sqlite3.Connection, key: str, value: str) -> None:
        """Set a ``meta`` value inside the caller's transaction."""
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- images -------------------------------------------------------------------------

    def image_index(self) -> dict[str, tuple[int, int, ImageStatus, str | None]]:
        """``path → (size, mtime_ns, status, engine)`` for the scanner's unchanged-file test."""
        rows = self.db.execute("SELECT path, size, mtime_ns, status, engine FROM images")
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def image(self, path: str) -> ImageRecord | None:
        """The row of one path."""
        row = self.db.execute(_IMAGE_SELECT + " WHERE path = ?", (path,)).fetchone()
        return None if row is None else ImageRecord(*row)

    def images_with_hash(self, sha256: str, engine: str) -> list[ImageRecord]:
        """Scanned images with this content and embeddings of ``engine``."""
        rows = self.db.execute(
            _IMAGE_SELECT + " WHERE sha256 = ? AND status != 'error' AND engine = ?",
            (sha256, engine),
        )
        return [ImageRecord(*r) for r in rows]

    def known_hashes(self, engine: str) -> set[str]:
        """Content hashes whose faces are known for ``engine``."""
        rows = self.db.execute(
            "SELECT DISTINCT sha256 FROM images WHERE sha256 IS NOT NULL "
            "AND status != 'error' AND engine = ?",
            (engine,),
        )
        return {r[0] for r in rows}

    def save_image(
        self,
        db: sqlite3.Connection,
        *,
        path: str,
        size: int,
        mtime_ns: int,
        sha256: str,
        width: int,
        height: int,
        engine: str,
        faces: Sequence[NewFace],
    ) -> int:
        """Insert or update an image and its faces; keep user decisions on re-detected faces."""
        old = db.execute("SELECT id FROM images WHERE path = ?", (path,)).fetchone()
        values = (size, mtime_ns, sha256, width, height, engine, time.time())
        if old is None:
            cur = db.execute(
                "INSERT INTO images (size, mtime_ns, sha256, width, height, engine, scanned_at,"
                " path, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'ok')",
                (*values, path),
            )
            image_id = int(cur.lastrowid or 0)
        else:
            image_id = int(old[0])
            db.execute(
                "UPDATE images SET size = ?, mtime_ns = ?, sha256 = ?, width = ?, height = ?,"
                " engine = ?, scanned_at = ?, status = 'ok', error = NULL WHERE id = ?",
                (*values, image_id),
            )
        self._replace_faces(db, image_id, engine, faces)
        return image_id

    def _replace_faces(
        self, db: sqlite3.Connection, image_id: int, engine: str, faces: Sequence[NewFace]
    ) -> None:
        # Like Immich: a re-detected face overlapping an old one (IoU > 0.5) inherits its
        # person and the user's decisions, so re-scanning an edited photo loses nothing.
        old = db.execute(
            "SELECT id, x1, y1, x2, y2, person_id, locked, rejected FROM faces WHERE image_id = ?",
            (image_id,),
        ).fetchall()
        claimed: set[int] = set()
        for face in faces:
            match = _best_overlap(face.bbox, old, claimed)
            row = (
                *face.bbox,
                face.score,
                json.dumps([list(p) for p in face.landmarks]) if face.landmarks else None,
                np.ascontiguousarray(face.embedding, dtype=np.float32).tobytes(),
                int(face.embedding.shape[0]),
                engine,
                face.size,
                face.blur,
            )
            if match is None:
                db.execute(
                    "INSERT INTO faces (x1, y1, x2, y2, score, landmarks, embedding, dim, engine,"
                    " size, blur, image_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*row, image_id),
                )
            else:
                claimed.add(match)
                db.execute(
                    "UPDATE faces SET x1 = ?, y1 = ?, x2 = ?, y2 = ?, score = ?, landmarks = ?,"
                    " embedding = ?, dim = ?, engine = ?, size = ?, blur = ? WHERE id = ?",
                    (*row, match),
                )
        stale = [r[0] for r in old if r[0] not in claimed]
        db.executemany("DELETE FROM faces WHERE id = ?", [(i,) for i in stale])

    def copy_faces(self, image_id: int) -> list[NewFace]:
        """The stored faces of an image, to record a byte-identical duplicate without decoding."""
        rows = self.db.execute(
            "SELECT x1, y1, x2, y2, score, landmarks, embedding, size, blur FROM faces"
            " WHERE image_id = ? ORDER BY id",
            (image_id,),
        )
        return [
            NewFace(
                bbox=(r[0], r[1], r[2], r[3]),
                score=r[4],
                landmarks=_points(r[5]),
                embedding=np.frombuffer(r[6], dtype=np.float32).copy(),
                size=r[7],
                blur=r[8],
            )
            for r in rows
        ]

    def move_image(
        self, db: sqlite3.Connection, image_id: int, path: str, size: int, mtime: int
    ) -> None:
        """A known photo now lives at ``path``: keep its faces, people and decisions."""
        db.execute("DELETE FROM images WHERE path = ? AND id != ?", (path, image_id))
        db.execute(
            "UPDATE images SET path = ?, size = ?, mtime_ns = ?, status = 'ok', error = NULL"
            " WHERE id = ?",
            (path, size, mtime, image_id),
        )

    def touch_image(self, db: sqlite3.Connection, path: str, size: int, mtime_ns: int) -> None:
        """Same content, new file stat (touched, or back after going missing): keep its faces."""
        db.execute(
            "UPDATE images SET size = ?, mtime_ns = ?, status = 'ok', error = NULL WHERE path = ?",
            (size, mtime_ns, path),
        )

    def save_error(
        self, db: sqlite3.Connection, path: str, size: int, mtime_ns: int, reason: str
    ) -> None:
        """Record a photo that could not be read, with why; its old faces go."""
        db.execute("DELETE FROM images WHERE path = ?", (path,))
        db.execute(
            "INSERT INTO images (path, size, mtime_ns, status, error, scanned_at)"
            " VALUES (?, ?, ?, 'error', ?, ?)",
            (path, size, mtime_ns, reason, time.time()),
        )

    def mark_missing(self, db: sqlite3.Connection, paths: Sequence[str]) -> None:
        """Photos that are gone from disk: kept (a move may reveal them) but not used."""
        db.executemany("UPDATE images SET status = 'missing' WHERE path = ?", [(p,) for p in paths])

    def errors(self) -> list[tuple[str, str]]:
        """``(path, reason)`` of every unreadable photo."""
        rows = self.db.execute(
            "SELECT path, error FROM images WHERE status = 'error' ORDER BY path"
        )
        return [(r[0], r[1] or "") for r in rows]

    def counts(self) -> dict[str, int]:
        """Images per status, faces and people, for summaries."""
        out = dict.fromkeys(("ok", "error", "missing"), 0)
        for status, n in self.db.execute("SELECT status, count(*) FROM images GROUP BY status"):
            out[status] = n
        out["faces"] = self.db.execute(
            "SELECT count(*) FROM faces f JOIN images i ON i.id = f.image_id WHERE i.status = 'ok'"
        ).fetchone()[0]
        out["people"] = self.db.execute("SELECT count(*) FROM people WHERE retired = 0").fetchone()[
            0
        ]
        return out

    # -- faces and people ---------------------------------------------------------------

    def faces(self, *, person_id: int | None = None, image_id: int | None = None) -> list[FaceRow]:
        """Faces of visible photos, optionally of one person or one image."""
        where, args = ["i.status = 'ok'"], []
        if person_id is not None:
            where.append("f.person_id = ?")
            args.append(person_id)
        if image_id is not None:
            where.append("f.image_id = ?")
            args.append(image_id)
        rows = self.db.execute(
            f"SELECT {_FACE_COLUMNS} FROM faces f JOIN images i ON i.id = f.image_id"
            f" WHERE {' AND '.join(where)} ORDER BY f.score * f.size DESC, f.id",
            args,
        )
        return [_face_row(r) for r in rows]

    def face(self, face_id: int) -> FaceRow | None:
        """One face by id."""
        row = self.db.execute(
            f"SELECT {_FACE_COLUMNS} FROM faces f JOIN images i ON i.id = f.image_id"
            " WHERE f.id = ?",
            (face_id,),
        ).fetchone()
        return None if row is None else _face_row(row)

    def people(self, *, include_hidden: bool = True) -> list[Person]:
        """Living people, named first, then by face count."""
        rows = self.db.execute(
            "SELECT p.id, p.name, p.hidden, p.confirmed,"
            " count(f.id), count(DISTINCT f.image_id)"
            " FROM people p LEFT JOIN faces f ON f.person_id = p.id AND f.rejected = 0"
            " AND f.image_id IN (SELECT id FROM images WHERE status = 'ok')"
            " WHERE p.retired = 0 GROUP BY p.id"
            " ORDER BY p.hidden, p.name IS NULL, count(f.id) DESC, p.id"
        )
        people = [Person(r[0], r[1], bool(r[2]), bool(r[3]), r[4], r[5]) for r in rows]
        return [p for p in people if include_hidden or not p.hidden]

    def person(self, person_id: int) -> Person | None:
        """One living person."""
        return next((p for p in self.people() if p.id == person_id), None)

    def cluster_inputs(self, engine: str) -> ClusterInputs:
        """Faces of one embedding space, with the constraints the user has set."""
        rows = self.db.execute(
            "SELECT f.id, f.embedding, f.image_id, f.person_id, f.locked, f.rejected FROM faces f"
            " JOIN images i ON i.id = f.image_id WHERE i.status = 'ok' AND f.engine = ?"
            " ORDER BY f.id",
            (engine,),
        ).fetchall()
        n = len(rows)
        dim = len(rows[0][1]) // 4 if rows else 0
        emb = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(n, dim)
        stable = frozenset(
            r[0]
            for r in self.db.execute(
                "SELECT id FROM people WHERE retired = 0 AND (name IS NOT NULL OR confirmed = 1)"
            )
        )
        index = {r[0]: k for k, r in enumerate(rows)}
        forbidden: dict[int, set[int]] = {}
        for face_id, person_id in self.db.execute(
            "SELECT face_id, person_id FROM decisions WHERE kind = 'not_person'"
        ):
            if face_id in index:
                forbidden.setdefault(index[face_id], set()).add(person_id)
        top = self.db.execute("SELECT coalesce(max(id), 0) FROM people").fetchone()[0]
        return ClusterInputs(
            face_ids=np.array([r[0] for r in rows], dtype=np.int64),
            embeddings=emb.copy(),
            image_ids=np.array([r[2] for r in rows], dtype=np.int64),
            person=np.array([-1 if r[3] is None else r[3] for r in rows], dtype=np.int64),
            locked=np.array([bool(r[4]) for r in rows], dtype=np.bool_),
            excluded=np.array([bool(r[5]) for r in rows], dtype=np.bool_),
            stable=stable,
            forbidden={k: frozenset(v) for k, v in forbidden.items()},
            next_id=int(top) + 1,
        )

    def apply_clusters(
        self,
        face_ids: npt.NDArray[np.int64],
        person: npt.NDArray[np.int64],
        created: Sequence[int],
        retired: Sequence[int],
    ) -> None:
        """Store a clustering result in one transaction."""
        now = time.time()
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO people (id, created_at) VALUES (?, ?)",
                [(int(p), now) for p in created],
            )
            db.executemany(
                "UPDATE faces SET person_id = ? WHERE id = ?",
                [
                    (None if p < 0 else int(p), int(f))
                    for f, p in zip(face_ids, person, strict=True)
                ],
            )
            db.executemany(
                "UPDATE people SET retired = 1 WHERE id = ? AND name IS NULL AND confirmed = 0",
                [(int(p),) for p in retired],
            )

    def new_person(self, db: sqlite3.Connection) -> int:
        """Create an empty person; ids are never reused."""
        top = db.execute("SELECT coalesce(max(id), 0) FROM people").fetchone()[0]
        db.execute("INSERT INTO people (id, created_at) VALUES (?, ?)", (top + 1, time.time()))
        return int(top) + 1

    def decide(
        self, db: sqlite3.Connection, face_id: int, person_id: int | None, kind: str
    ) -> None:
        """Log a user decision about a face."""
        db.execute(
            "INSERT INTO decisions (face_id, person_id, kind, created_at) VALUES (?, ?, ?, ?)",
            (face_id, person_id, kind, time.time()),
        )

    def cache_rows(self) -> Iterator[tuple[Any, ...]]:
        """Every visible photo with its faces, for face_cache.json (ordered by path)."""
        return iter(
            self.db.execute(
                "SELECT i.path, i.width, i.height, i.sha256, f.id, f.x1, f.y1, f.x2, f.y2,"
                " f.score, f.landmarks, p.id, p.name, f.rejected"
                " FROM images i LEFT JOIN faces f ON f.image_id = i.id"
                " LEFT JOIN people p ON p.id = f.person_id AND p.retired = 0"
                " WHERE i.status = 'ok' ORDER BY i.path, f.id"
            )
        )


_IMAGE_SELECT = (
    "SELECT id, path, size, mtime_ns, sha256, width, height, status, error, engine FROM images"
)


def _points(text: str | None) -> Points:
    if not text:
        return ()
    return tuple((float(x), float(y)) for x, y in json.loads(text))


def _face_row(r: tuple[Any, ...]) -> FaceRow:
    return FaceRow(
        id=r[0],
        image_id=r[1],
        path=r[2],
        bbox=(r[3], r[4], r[5], r[6]),
        score=r[7],
        landmarks=_points(r[8]),
        size=r[9],
        blur=r[10],
        person_id=r[11],
        locked=bool(r[12]),
        rejected=bool(r[13]),
        sha256=r[14],
    )


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``x1, y1, x2, y2`` boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _best_overlap(box: Box, old: Sequence[tuple[Any, ...]], claimed: set[int]) -> int | None:
    best, best_iou = None, 0.5
    for row in old:
        if row[0] in claimed:
            continue
        overlap = iou(box, (row[1], row[2], row[3], row[4]))
        if overlap > best_iou:
            best, best_iou = int(row[0]), overlap
    return best


def _db_error(path: Path, exc: sqlite3.Error) -> BeaverError:
    text = str(exc)
    if "disk is full" in text or ("disk I/O" in text and "full" in text):
        return DiskFullError(path)
    if "locked" in text or "busy" in text:
        return InputError(
            path,
            "the face database is busy",
            hint="Another beaver is writing it; retry when it is done.",
        )
    if "readonly" in text or "read-only" in text:
        return InputError(
            path, "the face database is read-only", hint="Choose a writable --output-dir."
        )
    if isinstance(exc, sqlite3.DatabaseError) and ("malformed" in text or "not a database" in text):
        return InputError(
            path,
            f"the face database is damaged ({text})",
            hint="Move it aside and re-run `beaver face scan`.",
        )
    return InputError(path, f"database error: {text}")
