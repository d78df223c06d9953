"""The face vault's workflows: scan, cluster, export, each under the vault's lock.

The CLI parses flags and renders; these functions resolve settings into a plan, hold the
lock, run the work and keep ``face_cache.json`` in step with the database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from beaver.errors import InputError
from beaver.faces import cache, engine
from beaver.faces.export import (
    MANIFEST,
    ExportFace,
    ExportPerson,
    ExportPhoto,
    read_manifest,
)
from beaver.faces.lock import vault_lock
from beaver.faces.scan import ScanPlan, ScanReport, check_roots, scan
from beaver.faces.store import FaceStore, Person
from beaver.plugins import BeaverPluginManager
from beaver.progress import Progress
from beaver.settings import BeaverSettings

PREVIEW_DIR = "preview"


def scan_library(
    settings: BeaverSettings,
    plugins: BeaverPluginManager,
    roots: Sequence[Path],
    *,
    recursive: bool = True,
    exclude: Sequence[str] = (),
    rescan: bool = False,
    progress: Progress | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> ScanReport:
    """``beaver face scan``: scan ``roots`` into the vault and refresh face_cache.json."""
    spec = plugins.face_detectors().get(settings.face.detector)
    values = engine.detector_options(spec, settings)
    spec.parse_options(values)  # bad options fail before any work
    plan = ScanPlan(
        roots=tuple(Path(r).expanduser().resolve() for r in roots),
        recursive=recursive,
        exclude=tuple(exclude),
        min_score=settings.face.min_score,
        min_size=settings.face.min_size,
        workers=engine.scan_workers(settings),
        decode_size=settings.face.decode_size,
        rescan=rescan,
    )
    check_roots(plan.roots)
    key = engine.fingerprint(spec, values)
    folder = settings.facevault_dir
    with vault_lock(folder, "beaver face scan"), FaceStore.open(folder) as store:
        try:
            report = scan(
                plan,
                store,
                lambda: engine.build_engine(spec, values, store, key),
                engine.known_model_id(store, key),
                progress,
                on_skip,
            )
        finally:
            cache.write_cache(store, folder, export_aliases(folder))
    return report


@dataclass(frozen=True)
class ClusterSummary:
    """What ``beaver face cluster`` did."""

    faces: int
    assigned: int
    people: int
    created: int
    retired: int
    noise_joined: int
    conflicts_resolved: int
    other_models: int
    preview: Path | None


def cluster_vault(
    settings: BeaverSettings, *, preview: bool = False, progress: Progress | None = None
) -> ClusterSummary:
    """``beaver face cluster``: group the faces of the current model into people."""
    from beaver.faces.cluster import ClusterProblem, cluster_faces

    folder = settings.facevault_dir
    with vault_lock(folder, "beaver face cluster"), FaceStore.open(folder, create=False) as store:
        model_id = store.get_meta("engine")
        if model_id is None:
            raise InputError(
                folder, "no faces scanned yet", hint="Run `beaver face scan DIR` first."
            )
        inputs = store.cluster_inputs(model_id)
        total = store.counts()["faces"]
        if progress is not None:
            progress.start("Clustering faces")
        result = cluster_faces(
            ClusterProblem(
                embeddings=inputs.embeddings,
                image_ids=inputs.image_ids,
                person=inputs.person,
                stable=inputs.stable,
                locked=inputs.locked,
                excluded=inputs.excluded,
                forbidden=inputs.forbidden,
                next_id=inputs.next_id,
            ),
            threshold=settings.face.threshold,
            min_cluster=settings.face.min_cluster,
        )
        store.apply_clusters(inputs.face_ids, result.person, result.created, result.retired)
        if progress is not None:
            progress.finish()
        sheet = write_preview(settings, store) if preview else None
        cache.write_cache(store, folder, export_aliases(folder))
        people = len({int(p) for p in result.person if p >= 0})
        return ClusterSummary(
            faces=len(inputs.face_ids),
            assigned=int(np.count_nonzero(result.person >= 0)),
            people=people,
            created=len(result.created),
            retired=len(result.retired),
            noise_joined=result.noise_joined,
            conflicts_resolved=result.conflicts_resolved,
            other_models=total - len(inputs.face_ids),
            preview=sheet,
        )


def export_person_data(store: FaceStore, people: Sequence[Person]) -> list[ExportPerson]:
    """The export module's plain-data view of people and their photos."""
    out = []
    for person in people:
        photos: dict[str, list[ExportFace]] = {}
        hashes: dict[str, str] = {}
        for face in store.faces(person_id=person.id):
            if face.rejected:
                continue
            photos.setdefault(face.path, []).append(
                ExportFace(face_id=face.id, bbox=face.bbox, score=face.score)
            )
            hashes[face.path] = face.sha256 or ""
        out.append(
            ExportPerson(
                key=person.key,
                name=person.name,
                photos=tuple(
                    ExportPhoto(source=Path(p), sha256=hashes[p], faces=tuple(f))
                    for p, f in sorted(photos.items())
                ),
            )
        )
    return out


def write_preview(settings: BeaverSettings, store: FaceStore) -> Path:
    """Contact sheets of every visible person and an HTML index; returns the index."""
    from beaver.faces import preview

    people = [p for p in store.people(include_hidden=False) if p.faces]
    data = export_person_data(store, people)
    return preview.write_preview(data, settings.facevault_dir / PREVIEW_DIR)


def export_aliases(folder: Path) -> dict[str, str]:
    """Exported organized copies → their originals, read from the export manifests."""
    aliases: dict[str, str] = {}
    for path in sorted((folder / "organized").glob(f"*/{MANIFEST}")):
        try:
            manifest = read_manifest(path)
        except InputError:
            continue  # a hand-edited manifest must not break scans; export reports it
        for entry in manifest.files if manifest else ():
            aliases[str(path.parent / entry.file)] = str(entry.source)
    return aliases
