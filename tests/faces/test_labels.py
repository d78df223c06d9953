"""User decisions: name, confirm, hide, merge, split, reject, ignore."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from beaver.errors import InputError, UsageError
from beaver.faces import labels
from beaver.faces.store import FaceStore, NewFace


def _face(x: float, seed: int) -> NewFace:
    emb = np.random.default_rng(seed).normal(size=8).astype(np.float32)
    return NewFace((x, 0, x + 50, 50), 0.9, (), emb / np.linalg.norm(emb), 50.0, 10.0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FaceStore]:
    """Two people: person_001 in a.jpg and shared.jpg, person_002 in b.jpg and shared.jpg."""
    s = FaceStore.open(tmp_path / "vault")
    with s.transaction() as db:
        ids = {}
        for k, (path, xs) in enumerate(
            {"a.jpg": [0], "b.jpg": [0], "shared.jpg": [0, 100]}.items()
        ):
            ids[path] = s.save_image(
                db,
                path=f"/p/{path}",
                size=1,
                mtime_ns=1,
                sha256=f"h{k}",
                width=200,
                height=100,
                engine="m",
                faces=[_face(x, k * 10 + j) for j, x in enumerate(xs)],
            )
        p1, p2 = s.new_person(db), s.new_person(db)
        faces = {f.path: f for f in s.faces()}
        shared = s.faces(image_id=ids["shared.jpg"])
        db.execute(
            "UPDATE faces SET person_id = ? WHERE id IN (?, ?)",
            (p1, faces["/p/a.jpg"].id, shared[0].id),
        )
        db.execute(
            "UPDATE faces SET person_id = ? WHERE id IN (?, ?)",
            (p2, faces["/p/b.jpg"].id, shared[1].id),
        )
    yield s
    s.close()


def test_find_person_by_key_number_and_name(store: FaceStore) -> None:
    assert labels.find_person(store, "person_001").id == 1
    assert labels.find_person(store, "2").id == 2
    labels.name_person(store, "person_001", "  Emma   Smith ")
    assert labels.find_person(store, "emma smith").key == "person_001"
    with pytest.raises(UsageError, match="No person 'zoe'") as info:
        labels.find_person(store, "zoe")
    assert "beaver face people" in (info.value.hint or "")


def test_naming_confirms_and_names_are_unique(store: FaceStore) -> None:
    person = labels.name_person(store, "person_001", "Emma")
    assert person.name == "Emma"
    assert person.confirmed
    with pytest.raises(UsageError, match="already named") as info:
        labels.name_person(store, "person_002", "EMMA")
    assert "--merge person_002 person_001" in (info.value.hint or "")
    with pytest.raises(UsageError, match="not a usable name"):
        labels.name_person(store, "person_002", "a/b")
    assert labels.name_person(store, "person_001", "Emma").name == "Emma"  # idempotent


def test_hide_and_confirm(store: FaceStore) -> None:
    assert labels.set_hidden(store, "person_002").hidden
    assert [p.key for p in store.people(include_hidden=False)] == ["person_001"]
    assert not labels.set_hidden(store, "person_002", hidden=False).hidden
    assert labels.confirm_person(store, "person_002").confirmed


def test_merge_moves_faces_keeps_one_face_per_photo_and_retires_source(store: FaceStore) -> None:
    labels.name_person(store, "person_002", "Leo")
    result = labels.merge_people(store, "person_002", "person_001")
    assert result.into.key == "person_001"
    assert result.into.name == "Leo"
    assert (result.moved, result.unassigned) == (1, 1)
    assert [p.key for p in store.people()] == ["person_001"]
    per_photo = [f.image_id for f in store.faces(person_id=1)]
    assert len(per_photo) == len(set(per_photo)) == 3
    with pytest.raises(UsageError, match="itself"):
        labels.merge_people(store, "Leo", "person_001")


def test_split_makes_a_confirmed_person_and_forbids_the_old_one(store: FaceStore) -> None:
    face = store.faces(person_id=1)[0]
    new = labels.split_person(store, "person_001", [face.id])
    assert new.key == "person_003"
    assert new.confirmed
    assert new.faces == 1
    moved = store.face(face.id)
    assert moved is not None
    assert moved.person_id == 3
    assert moved.locked
    inputs = store.cluster_inputs("m")
    k = list(inputs.face_ids).index(face.id)
    assert 1 in inputs.forbidden[k]
    with pytest.raises(UsageError, match="not one of"):
        labels.split_person(store, "person_001", [face.id])


def test_reject_and_ignore(store: FaceStore) -> None:
    face = store.faces(person_id=2)[0]
    assert labels.reject_faces(store, [face.id]) == 1
    inputs = store.cluster_inputs("m")
    k = list(inputs.face_ids).index(face.id)
    assert inputs.person[k] == -1
    assert inputs.forbidden[k] == frozenset({2})
    assert labels.ignore_faces(store, [face.id]) == 1
    assert store.cluster_inputs("m").excluded[k]
    with pytest.raises(UsageError, match="No face 9999"):
        labels.reject_faces(store, [9999])


def test_require_people_points_at_cluster(tmp_path: Path) -> None:
    with FaceStore.open(tmp_path / "empty") as empty, pytest.raises(InputError) as info:
        labels.require_people(empty)
    assert "beaver face cluster" in (info.value.hint or "")
