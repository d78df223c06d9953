"""The SQLite face store: schema, migrations, incremental writes, decisions, failures."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from beaver.errors import DiskFullError, InputError
from beaver.faces import schema
from beaver.faces.store import FaceStore, NewFace, iou, parse_person_key, person_key


def _face(x: float, y: float, side: float = 50.0, seed: int = 0) -> NewFace:
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=8).astype(np.float32)
    return NewFace(
        bbox=(x, y, x + side, y + side),
        score=0.9,
        landmarks=(
            (x + 10, y + 10),
            (x + 40, y + 10),
            (x + 25, y + 25),
            (x + 12, y + 40),
            (x + 38, y + 40),
        ),
        embedding=emb / np.linalg.norm(emb),
        size=side,
        blur=100.0,
    )


def _save(
    store: FaceStore, path: str, faces: list[NewFace], *, sha: str = "h", size: int = 10
) -> int:
    with store.transaction() as db:
        return store.save_image(
            db,
            path=path,
            size=size,
            mtime_ns=1,
            sha256=sha,
            width=640,
            height=480,
            engine="m1",
            faces=faces,
        )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FaceStore]:
    s = FaceStore.open(tmp_path / "vault")
    yield s
    s.close()


def test_new_store_is_at_current_version_in_wal_mode(store: FaceStore) -> None:
    assert schema.schema_version(store.db) == schema.SCHEMA_VERSION
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migrations_run_once_and_in_order(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    calls: list[int] = []
    steps = (lambda c: calls.append(1), lambda c: calls.append(2))
    assert schema.migrate(db, steps) == 0
    assert schema.migrate(db, steps) == 2
    assert calls == [1, 2]
    assert schema.schema_version(db) == 2


def test_failed_migration_leaves_old_version(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "x.db", isolation_level=None)

    def broken(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE t (a)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        schema.migrate(db, (broken,))
    assert schema.schema_version(db) == 0
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 't'").fetchone() is None


def test_newer_schema_is_refused_with_upgrade_hint(tmp_path: Path) -> None:
    folder = tmp_path / "vault"
    FaceStore.open(folder).close()
    db = sqlite3.connect(folder / "faces.db")
    db.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 5}")
    db.close()
    with pytest.raises(InputError, match="newer") as info:
        FaceStore.open(folder)
    assert "Upgrade" in (info.value.hint or "")


def test_open_without_create_explains_scan_first(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no face database") as info:
        FaceStore.open(tmp_path / "none", create=False)
    assert "beaver face scan" in (info.value.hint or "")


def test_damaged_database_is_a_one_line_error(tmp_path: Path) -> None:
    folder = tmp_path / "vault"
    folder.mkdir()
    (folder / "faces.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError, match="damaged") as info:
        FaceStore.open(folder)
    assert "Move it aside" in (info.value.hint or "")


def test_person_keys_round_trip() -> None:
    assert person_key(7) == "person_007"
    assert parse_person_key("person_007") == 7
    assert parse_person_key("emma") is None


def test_iou() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)


def test_rescanned_image_keeps_person_and_decisions_of_overlapping_faces(store: FaceStore) -> None:
    image = _save(store, "/p/a.jpg", [_face(10, 10), _face(200, 10, seed=1)])
    faces = store.faces(image_id=image)
    with store.transaction() as db:
        pid = store.new_person(db)
        db.execute("UPDATE faces SET person_id = ?, locked = 1 WHERE id = ?", (pid, faces[0].id))
    # The file changed: one face moved slightly, the other vanished, a new one appeared.
    _save(store, "/p/a.jpg", [_face(12, 11, seed=2), _face(400, 300, seed=3)], sha="h2")
    after = {f.bbox[0]: f for f in store.faces(image_id=image)}
    assert set(after) == {12, 400}
    assert after[12].id == faces[0].id
    assert after[12].person_id == pid
    assert after[12].locked
    assert after[400].person_id is None
    record = store.image("/p/a.jpg")
    assert record is not None
    assert record.sha256 == "h2"


def test_copy_and_move_keep_faces(store: FaceStore) -> None:
    image = _save(store, "/p/a.jpg", [_face(10, 10)])
    copied = store.copy_faces(image)
    assert len(copied) == 1
    assert np.allclose(copied[0].embedding, store.copy_faces(image)[0].embedding)
    with store.transaction() as db:
        store.move_image(db, image, "/q/a.jpg", 10, 2)
    assert store.image("/p/a.jpg") is None
    moved = store.image("/q/a.jpg")
    assert moved is not None
    assert moved.id == image
    assert len(store.faces(image_id=image)) == 1


def test_errors_and_missing_are_recorded_and_hidden_from_faces(store: FaceStore) -> None:
    image = _save(store, "/p/a.jpg", [_face(10, 10)])
    with store.transaction() as db:
        store.save_error(db, "/p/bad.jpg", 3, 1, "truncated or corrupt file")
        store.mark_missing(db, ["/p/a.jpg"])
    assert store.errors() == [("/p/bad.jpg", "truncated or corrupt file")]
    assert store.faces(image_id=image) == []
    counts = store.counts()
    assert counts["error"] == 1
    assert counts["missing"] == 1
    assert counts["faces"] == 0


def test_cluster_inputs_carry_constraints(store: FaceStore) -> None:
    a = _save(store, "/p/a.jpg", [_face(10, 10), _face(200, 10, seed=1)])
    _save(store, "/p/b.jpg", [_face(10, 10, seed=2)], sha="h2")
    fa, fb = store.faces(image_id=a)[:2]
    with store.transaction() as db:
        named = store.new_person(db)
        loose = store.new_person(db)
        db.execute("UPDATE people SET name = 'Emma' WHERE id = ?", (named,))
        db.execute("UPDATE faces SET person_id = ? WHERE id = ?", (named, fa.id))
        db.execute("UPDATE faces SET person_id = ?, rejected = 1 WHERE id = ?", (loose, fb.id))
        store.decide(db, fb.id, named, "not_person")
    inputs = store.cluster_inputs("m1")
    assert inputs.embeddings.shape == (3, 8)
    assert inputs.stable == frozenset({named})
    assert inputs.next_id == loose + 1
    k = list(inputs.face_ids).index(fb.id)
    assert inputs.forbidden == {k: frozenset({named})}
    assert inputs.excluded[k]
    assert inputs.image_ids[0] == inputs.image_ids[1] != inputs.image_ids[2]
    assert store.cluster_inputs("other-model").face_ids.size == 0


def test_apply_clusters_creates_and_retires_people(store: FaceStore) -> None:
    _save(store, "/p/a.jpg", [_face(10, 10), _face(200, 10, seed=1)])
    inputs = store.cluster_inputs("m1")
    store.apply_clusters(inputs.face_ids, np.array([1, 2]), created=[1, 2], retired=[])
    assert [p.key for p in store.people()] == ["person_001", "person_002"]
    store.apply_clusters(inputs.face_ids, np.array([1, -1]), created=[], retired=[2])
    assert [p.key for p in store.people()] == ["person_001"]
    with store.transaction() as db:
        assert store.new_person(db) == 3  # ids are never reused


def _crash_mid_batch(store: FaceStore) -> None:
    with store.transaction() as db:
        store.save_error(db, "/p/x.jpg", 1, 1, "x")
        raise RuntimeError("crash mid-batch")


def _fill_disk(store: FaceStore) -> None:
    with store.transaction() as db:
        for k in range(2000):
            store.save_error(db, f"/p/{k:05d}-{'x' * 200}.jpg", 1, 1, "y" * 200)


def test_failed_transaction_rolls_back(store: FaceStore) -> None:
    with pytest.raises(RuntimeError):
        _crash_mid_batch(store)
    assert store.errors() == []


def test_full_disk_becomes_disk_full_error_and_keeps_committed_state(store: FaceStore) -> None:
    _save(store, "/p/a.jpg", [_face(10, 10)])
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(DiskFullError):
        _fill_disk(store)
    store.db.execute("PRAGMA max_page_count = 1073741823")
    assert store.image("/p/a.jpg") is not None
    assert store.errors() == []
