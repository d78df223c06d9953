"""The face store's SQLite schema and its migrations.

``PRAGMA user_version`` holds the schema version. Each migration moves the database one
version up inside one transaction, so an interrupted upgrade leaves the old version intact.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

_V1 = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE images (
    id         INTEGER PRIMARY KEY,
    path       TEXT NOT NULL UNIQUE,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    sha256     TEXT,
    width      INTEGER,
    height     INTEGER,
    status     TEXT NOT NULL CHECK (status IN ('ok', 'error', 'missing')),
    error      TEXT,
    engine     TEXT,
    scanned_at REAL NOT NULL
);
CREATE INDEX images_sha256 ON images (sha256);
CREATE TABLE people (
    id         INTEGER PRIMARY KEY,
    name       TEXT COLLATE NOCASE,
    hidden     INTEGER NOT NULL DEFAULT 0,
    confirmed  INTEGER NOT NULL DEFAULT 0,
    retired    INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE UNIQUE INDEX people_name ON people (name) WHERE name IS NOT NULL;
CREATE TABLE faces (
    id         INTEGER PRIMARY KEY,
    image_id   INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    score      REAL NOT NULL,
    landmarks  TEXT,
    embedding  BLOB NOT NULL,
    dim        INTEGER NOT NULL,
    engine     TEXT NOT NULL,
    size       REAL NOT NULL,
    blur       REAL NOT NULL,
    person_id  INTEGER REFERENCES people (id) ON DELETE SET NULL,
    locked     INTEGER NOT NULL DEFAULT 0,
    rejected   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX faces_image ON faces (image_id);
CREATE INDEX faces_person ON faces (person_id);
CREATE TABLE decisions (
    id         INTEGER PRIMARY KEY,
    face_id    INTEGER NOT NULL REFERENCES faces (id) ON DELETE CASCADE,
    person_id  INTEGER REFERENCES people (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('confirmed', 'rejected', 'not_person')),
    created_at REAL NOT NULL
);
CREATE INDEX decisions_face ON decisions (face_id);
"""


def _statements(script: str) -> list[str]:
    return [s for s in script.split(";") if s.strip()]


def _to_v1(db: sqlite3.Connection) -> None:
    # Statement by statement: executescript() would commit the migration's transaction.
    for statement in _statements(_V1):
        db.execute(statement)


Migration = Callable[[sqlite3.Connection], None]

MIGRATIONS: tuple[Migration, ...] = (_to_v1,)
"""``MIGRATIONS[i]`` upgrades version ``i`` to ``i + 1``."""

SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(db: sqlite3.Connection) -> int:
    """The database's schema version (0 for a new file)."""
    row = db.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(db: sqlite3.Connection, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Bring the database up to the newest version; return the version it started at."""
    start = schema_version(db)
    for version in range(start, len(migrations)):
        db.execute("BEGIN IMMEDIATE")
        try:
            migrations[version](db)
            db.execute(f"PRAGMA user_version = {version + 1}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return start
