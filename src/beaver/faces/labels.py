"""The user's decisions about people and faces: name, merge, split, hide, reject, ignore.

Every decision is stored and survives re-scans and re-clustering: named or confirmed
people are never dissolved, a rejected face never rejoins that person, an ignored face is
never assigned, and a face split out by hand stays where it was put.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from beaver.errors import InputError, UsageError
from beaver.faces.store import FaceStore, Person, parse_person_key, person_key


def find_person(store: FaceStore, text: str) -> Person:
    """A person by key (``person_001``), bare number or name (any case)."""
    wanted = text.strip()
    number = parse_person_key(wanted) or (int(wanted) if wanted.isdigit() else None)
    for person in store.people():
        if person.id == number or (person.name and person.name.casefold() == wanted.casefold()):
            return person
    raise UsageError(
        f"No person {text!r}.", hint="Run `beaver face people` to list people and their ids."
    )


def _face(store: FaceStore, face_id: int) -> None:
    if store.face(face_id) is None:
        raise UsageError(
            f"No face {face_id}.",
            hint="Face ids are listed by `beaver face label --show-paths` and in face_cache.json.",
        )


def name_person(store: FaceStore, who: str, name: str) -> Person:
    """Give a person a name (which also makes it stable)."""
    person = find_person(store, who)
    clean = " ".join(name.split())
    if not clean or "/" in clean or clean in {".", ".."}:
        raise UsageError(f"{name!r} is not a usable name.", hint="Use letters, digits and spaces.")
    clash = next(
        (p for p in store.people() if p.name and p.name.casefold() == clean.casefold()), None
    )
    if clash is not None and clash.id != person.id:
        raise UsageError(
            f"{clash.key} is already named {clash.name!r}.",
            hint=f"Merge them instead: `beaver face label --merge {person.key} {clash.key}`.",
        )
    with store.transaction() as db:
        db.execute("UPDATE people SET name = ?, confirmed = 1 WHERE id = ?", (clean, person.id))
    return find_person(store, person.key)


def confirm_person(store: FaceStore, who: str) -> Person:
    """Mark a person as right without naming it: clustering will keep it."""
    person = find_person(store, who)
    with store.transaction() as db:
        db.execute("UPDATE people SET confirmed = 1 WHERE id = ?", (person.id,))
    return find_person(store, person.key)


def set_hidden(store: FaceStore, who: str, *, hidden: bool = True) -> Person:
    """Hide a person (strangers) from lists, previews and ``export --all``, or show it again."""
    person = find_person(store, who)
    with store.transaction() as db:
        db.execute("UPDATE people SET hidden = ? WHERE id = ?", (int(hidden), person.id))
    return find_person(store, person.key)


@dataclass(frozen=True)
class MergeResult:
    """What a merge did."""

    into: Person
    moved: int
    unassigned: int


def merge_people(store: FaceStore, source: str, target: str) -> MergeResult:
    """Move every face of ``source`` into ``target``; ``source`` is retired.

    The target keeps its name (or takes the source's when it has none). Two faces in one
    photo are never one person: where both people are in a photo, the target keeps its
    face and the source's face is left unassigned.
    """
    src, dst = find_person(store, source), find_person(store, target)
    if src.id == dst.id:
        raise UsageError(f"Cannot merge {src.key} into itself.")
    with store.transaction() as db:
        clash = db.execute(
            "SELECT id FROM faces WHERE person_id = ? AND image_id IN"
            " (SELECT image_id FROM faces WHERE person_id = ?)",
            (src.id, dst.id),
        ).fetchall()
        db.executemany(
            "UPDATE faces SET person_id = NULL, locked = 0 WHERE id = ?", [(r[0],) for r in clash]
        )
        moved = db.execute(
            "UPDATE faces SET person_id = ? WHERE person_id = ?", (dst.id, src.id)
        ).rowcount
        name = dst.name or src.name
        db.execute("UPDATE people SET name = NULL, retired = 1 WHERE id = ?", (src.id,))
        db.execute(
            "UPDATE people SET name = ?, confirmed = 1, hidden = 0 WHERE id = ?", (name, dst.id)
        )
        db.execute("UPDATE decisions SET person_id = ? WHERE person_id = ?", (dst.id, src.id))
    return MergeResult(into=find_person(store, dst.key), moved=moved, unassigned=len(clash))


def split_person(store: FaceStore, who: str, face_ids: Sequence[int]) -> Person:
    """Move the given faces of a person into a new confirmed person, fixed there."""
    person = find_person(store, who)
    if not face_ids:
        raise UsageError("Name the faces to split off.", hint="--split PERSON FACE_ID,FACE_ID")
    for face_id in face_ids:
        face = store.face(face_id)
        if face is None or face.person_id != person.id:
            raise UsageError(
                f"Face {face_id} is not one of {person.key}'s faces.",
                hint=f"List them with `beaver face label --show-paths {person.key}`.",
            )
    with store.transaction() as db:
        new = store.new_person(db)
        db.execute("UPDATE people SET confirmed = 1 WHERE id = ?", (new,))
        for face_id in face_ids:
            db.execute("UPDATE faces SET person_id = ?, locked = 1 WHERE id = ?", (new, face_id))
            store.decide(db, face_id, person.id, "not_person")
            store.decide(db, face_id, new, "confirmed")
    return find_person(store, person_key(new))


def reject_faces(store: FaceStore, face_ids: Sequence[int]) -> int:
    """ "Not this person": take faces out of their person and never put them back there."""
    for face_id in face_ids:
        _face(store, face_id)
    count = 0
    with store.transaction() as db:
        for face_id in face_ids:
            face = store.face(face_id)
            if face is None or face.person_id is None:
                continue
            store.decide(db, face_id, face.person_id, "not_person")
            db.execute("UPDATE faces SET person_id = NULL, locked = 0 WHERE id = ?", (face_id,))
            count += 1
    return count


def ignore_faces(store: FaceStore, face_ids: Sequence[int]) -> int:
    """Not a face, or a stranger: never assign these faces to anyone."""
    for face_id in face_ids:
        _face(store, face_id)
    with store.transaction() as db:
        for face_id in face_ids:
            store.decide(db, face_id, None, "rejected")
            db.execute(
                "UPDATE faces SET person_id = NULL, locked = 0, rejected = 1 WHERE id = ?",
                (face_id,),
            )
    return len(face_ids)


def require_people(store: FaceStore) -> list[Person]:
    """Every living person; an error pointing at ``face cluster`` when there are none."""
    people = store.people()
    if not people:
        raise InputError(
            store.path, "no people yet", hint="Run `beaver face cluster` after scanning."
        )
    return people
