"""Clustering faces into people: constraints, stable ids, thresholds and edge cases."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from beaver.faces import cluster
from beaver.faces.cluster import ClusterProblem, ClusterResult, cluster_faces
from beaver.faces.metrics import bcubed

Vectors = npt.NDArray[np.float32]


def _unit(v: npt.NDArray[np.float64]) -> Vectors:
    out: Vectors = (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)
    return out


def _direction(rng: np.random.Generator, dim: int) -> npt.NDArray[np.float64]:
    return _unit(rng.normal(size=dim)).astype(np.float64)


def _around(
    center: npt.NDArray[np.float64], count: int, rng: np.random.Generator, spread: float = 0.4
) -> Vectors:
    """Faces whose cosine distance to ``center`` is about 1 - 1/sqrt(1 + spread**2)."""
    dim = center.size
    return _unit(center + rng.normal(scale=spread / np.sqrt(dim), size=(count, dim)))


def _at_distance(center: npt.NDArray[np.float64], dist: float, rng: np.random.Generator) -> Vectors:
    """One face at exactly this cosine distance from a unit ``center``."""
    other = rng.normal(size=center.size)
    other -= (other @ center) * center
    other /= np.linalg.norm(other)
    cos = 1.0 - dist
    return _unit(cos * center + np.sqrt(1 - cos**2) * other)[None, :]


def _library(
    people: int, per: int, strangers: int, dim: int, seed: int = 0
) -> tuple[Vectors, npt.NDArray[np.int64]]:
    """``people`` well-separated people of ``per`` faces, then lone strangers (truth -1-k)."""
    rng = np.random.default_rng(seed)
    faces = [_around(_direction(rng, dim), per, rng) for _ in range(people)]
    faces += [_direction(rng, dim)[None, :].astype(np.float32) for _ in range(strangers)]
    truth = np.concatenate([np.repeat(np.arange(people), per), -1 - np.arange(strangers)])
    return np.concatenate(faces), truth.astype(np.int64)


def _problem(
    embeddings: Vectors,
    *,
    images: Iterable[int] | None = None,
    person: Iterable[int] | None = None,
    stable: Iterable[int] = (),
    locked: Iterable[int] = (),
    excluded: Iterable[int] = (),
    forbidden: Mapping[int, frozenset[int]] | None = None,
    next_id: int | None = None,
) -> ClusterProblem:
    n = len(embeddings)
    people = np.full(n, -1, dtype=np.int64) if person is None else np.array(person, dtype=np.int64)
    stable = frozenset(stable)
    lock = np.zeros(n, dtype=np.bool_)
    lock[list(locked)] = True
    drop = np.zeros(n, dtype=np.bool_)
    drop[list(excluded)] = True
    if next_id is None:
        next_id = max([int(people.max(initial=-1)), *stable], default=-1) + 1
    return ClusterProblem(
        embeddings=embeddings,
        image_ids=np.arange(n, dtype=np.int64) if images is None else np.array(list(images)),
        person=people,
        stable=stable,
        locked=lock,
        excluded=drop,
        forbidden=forbidden or {},
        next_id=next_id,
    )


def _groups(result: ClusterResult) -> list[set[int]]:
    """Faces per assigned person, ordered by their first face."""
    ids = sorted(
        {int(p) for p in result.person if p >= 0}, key=lambda p: result.person.tolist().index(p)
    )
    return [set(np.flatnonzero(result.person == p).tolist()) for p in ids]


@pytest.mark.parametrize("dim", [128, 512])
def test_people_found_and_strangers_left_out(dim: int):
    emb, truth = _library(people=4, per=12, strangers=6, dim=dim)
    result = cluster_faces(_problem(emb))
    assert _groups(result) == [set(range(k * 12, (k + 1) * 12)) for k in range(4)]
    assert (result.person[48:] == -1).all()
    assert result.created == (0, 1, 2, 3)
    assert result.retired == ()
    assert result.clusters == 4
    assert bcubed(truth, result.person).precision == 1.0


def test_runs_repeat_exactly():
    emb, _ = _library(people=3, per=10, strangers=4, dim=64, seed=3)
    first, second = cluster_faces(_problem(emb)), cluster_faces(_problem(emb))
    assert np.array_equal(first.person, second.person)
    assert (first.created, first.retired) == (second.created, second.retired)


def test_cell_search_finds_the_same_people(monkeypatch: pytest.MonkeyPatch):
    emb, truth = _library(people=4, per=12, strangers=5, dim=128, seed=4)
    exact = cluster_faces(_problem(emb))
    # Above this many faces the neighbours come from k-means cells instead of all pairs.
    monkeypatch.setattr(cluster, "_EXACT_UP_TO", 10)
    cells = cluster_faces(_problem(emb))
    assert np.array_equal(cells.person, exact.person)
    assert bcubed(truth, cells.person).f == 1.0


def test_jobs_limits_threads_without_changing_the_result():
    emb, _ = _library(people=2, per=8, strangers=2, dim=64, seed=5)
    assert np.array_equal(
        cluster_faces(_problem(emb), jobs=1).person, cluster_faces(_problem(emb)).person
    )


def test_two_faces_of_one_photo_never_share_a_person():
    rng = np.random.default_rng(6)
    center = _direction(rng, 128)
    emb = _around(center, 12, rng, spread=0.2)
    emb[1] = _around(center, 1, rng, spread=0.6)[0]  # farther from the centre than face 0
    images = [0, 0, *range(1, 11)]
    result = cluster_faces(_problem(emb, images=images))
    own = result.person[2]
    assert own >= 0
    assert (result.person[2:] == own).all()
    assert result.person[0] == own
    assert result.person[1] == -1
    assert result.conflicts_resolved == 1


def test_a_locked_face_wins_its_photo():
    rng = np.random.default_rng(7)
    center = _direction(rng, 128)
    emb = np.concatenate([_around(center, 10, rng, 0.2), _around(center, 2, rng, 0.6)])
    emb[11] = center  # the free face is nearer the centroid than the locked one
    person = [7] * 11 + [-1]
    result = cluster_faces(
        _problem(emb, images=[*range(10), 10, 10], person=person, stable=[7], locked=[10])
    )
    assert result.person[10] == 7
    assert result.person[11] == -1
    assert (result.person[:10] == 7).all()


def test_a_displaced_face_takes_its_next_nearest_person():
    rng = np.random.default_rng(8)
    a = _direction(rng, 128)
    b = _unit(0.8 * a + 0.6 * _at_distance(a, 1.0, rng)[0].astype(np.float64)).astype(np.float64)
    x = _unit(0.6 * a + 0.4 * b)
    dist_a, dist_b = 1 - float(x @ a), 1 - float(x @ b)
    assert dist_a < dist_b <= 0.35  # the set-up: near both, nearer a
    emb = np.concatenate([np.tile(a, (5, 1)), np.tile(b, (5, 1)), x[None, :]]).astype(np.float32)
    person = [1] * 5 + [2] * 5 + [-1]
    images = [0, *range(1, 10), 0]  # face 10 shares a photo with a's locked face 0
    result = cluster_faces(_problem(emb, images=images, person=person, stable=[1, 2], locked=[0]))
    assert result.person[10] == 2
    assert result.noise_joined == 1
    assert result.conflicts_resolved == 1


def test_forbidden_people_are_never_joined():
    rng = np.random.default_rng(9)
    center = _direction(rng, 128)
    emb = _around(center, 8, rng, 0.2)
    person = [3] * 6 + [-1, -1]
    # Face 5 was the person's but the user said it is not; face 6 would join but may not.
    forbidden = {5: frozenset({3}), 6: frozenset({3, 99})}
    result = cluster_faces(_problem(emb, person=person, stable=[3], forbidden=forbidden))
    assert (result.person[:5] == 3).all()
    assert result.person[5] == -1
    assert result.person[6] == -1
    assert result.person[7] == 3


def test_a_forbidden_id_is_respected_when_a_cluster_inherits_it():
    rng = np.random.default_rng(10)
    emb = _around(_direction(rng, 128), 12, rng)
    result = cluster_faces(_problem(emb, person=[4] * 12, forbidden={0: frozenset({4})}))
    assert result.person[0] == -1
    assert (result.person[1:] == 4).all()
    assert result.created == ()


def test_excluded_faces_are_never_assigned():
    rng = np.random.default_rng(11)
    tight = _around(_direction(rng, 128), 12, rng, 0.2)
    known = _around(_direction(rng, 128), 6, rng, 0.2)
    emb = np.concatenate([tight, known])
    person = [-1] * 12 + [2] * 6
    excluded = [*range(12), 12, 13]
    result = cluster_faces(_problem(emb, person=person, stable=[2], locked=[13], excluded=excluded))
    assert (result.person[:14] == -1).all()
    assert (result.person[14:] == 2).all()
    assert result.clusters == 0


def test_a_stable_person_keeps_its_id_and_gains_new_faces():
    rng = np.random.default_rng(12)
    center = _direction(rng, 512)
    emb = _around(center, 12, rng)
    person = [9, 9] + [-1] * 10  # named from two faces: fewer than min_cluster
    result = cluster_faces(_problem(emb, person=person, stable=[9]))
    assert (result.person == 9).all()
    assert result.created == ()
    assert result.clusters == 1


def test_a_stable_person_absorbs_a_second_look():
    rng = np.random.default_rng(13)
    first = _direction(rng, 256)
    second = _unit(0.75 * first + np.sqrt(1 - 0.75**2) * _at_distance(first, 1.0, rng)[0])
    second = second.astype(np.float64)
    emb = np.concatenate([_around(first, 3, rng, 0.2), _around(second, 12, rng, 0.2)])
    result = cluster_faces(_problem(emb, person=[5] * 3 + [-1] * 12, stable=[5]))
    assert (result.person == 5).all()


def test_stable_people_are_never_dissolved_even_when_tiny_or_odd():
    rng = np.random.default_rng(14)
    emb = np.concatenate([_direction(rng, 128)[None, :] for _ in range(3)]).astype(np.float32)
    # Person 5 has two unlike faces, person 6 one face, person 8 none at all.
    result = cluster_faces(_problem(emb, person=[5, 5, 6], stable=[5, 6, 8]))
    assert result.person.tolist() == [5, 5, 6]
    assert result.retired == ()


def test_clusters_that_share_a_photo_stay_two_people():
    rng = np.random.default_rng(15)
    a = _direction(rng, 256)
    b = _unit(0.75 * a + np.sqrt(1 - 0.75**2) * _at_distance(a, 1.0, rng)[0]).astype(np.float64)
    emb = np.concatenate([_around(a, 10, rng, 0.2), _around(b, 10, rng, 0.2)])
    apart = cluster_faces(_problem(emb))
    assert _groups(apart) == [set(range(20))]  # two looks of one person merge
    together = cluster_faces(_problem(emb, images=[*range(10), *range(10)]))
    assert _groups(together) == [set(range(10)), set(range(10, 20))]


def test_ids_survive_a_rerun_and_new_people_get_new_ids():
    emb, truth = _library(people=4, per=12, strangers=0, dim=256, seed=16)
    old = np.isin(truth, [0, 1, 2]) & (np.arange(len(truth)) % 12 < 9)
    first = cluster_faces(_problem(emb[old]))
    assert first.created == (0, 1, 2)
    person = np.full(len(truth), -1)
    person[old] = first.person
    # Shuffle the order so that numbering by position alone would give other ids.
    order = np.random.default_rng(0).permutation(len(truth))
    second = cluster_faces(_problem(emb[order], person=person[order], next_id=3))
    for k in range(3):
        previous = int(first.person[truth[old] == k][0])
        assert (second.person[truth[order] == k] == previous).all()
    assert (second.person[truth[order] == 3] == 3).all()
    assert second.created == (3,)
    assert second.retired == ()


def test_ids_are_never_reused():
    emb, _ = _library(people=3, per=10, strangers=0, dim=128, seed=17)
    person = [0] * 10 + [1] * 10 + [-1] * 10
    result = cluster_faces(_problem(emb, person=person, excluded=range(10, 20), next_id=5))
    assert result.retired == (1,)
    assert set(result.person[20:].tolist()) == {5}
    assert result.created == (5,)
    assert (result.person[:10] == 0).all()


def test_noise_joins_only_within_the_threshold():
    rng = np.random.default_rng(18)
    center = _direction(rng, 128)
    near, far = _at_distance(center, 0.30, rng), _at_distance(center, 0.40, rng)
    emb = np.concatenate([np.tile(center, (6, 1)), near, far]).astype(np.float32)
    problem = _problem(emb, person=[1] * 6 + [-1, -1], stable=[1])
    strict = cluster_faces(problem)
    assert strict.person[6:].tolist() == [1, -1]
    assert strict.noise_joined == 1
    loose = cluster_faces(problem, threshold=0.45)
    assert loose.person[6:].tolist() == [1, 1]
    assert loose.noise_joined == 2


def test_min_cluster_decides_what_makes_a_person():
    rng = np.random.default_rng(19)
    emb = _around(_direction(rng, 128), 4, rng, 0.2)
    assert (cluster_faces(_problem(emb), min_cluster=5).person == -1).all()
    small = cluster_faces(_problem(emb), min_cluster=3)
    assert _groups(small) == [set(range(4))]


def test_empty_single_and_all_noise_inputs():
    empty = cluster_faces(_problem(np.zeros((0, 512), dtype=np.float32)))
    assert empty.person.shape == (0,)
    assert (empty.created, empty.retired, empty.clusters) == ((), (), 0)
    one = cluster_faces(_problem(np.ones((1, 512), dtype=np.float32)))
    assert one.person.tolist() == [-1]
    rng = np.random.default_rng(20)
    scattered = np.stack([_direction(rng, 128) for _ in range(30)]).astype(np.float32)
    noise = cluster_faces(_problem(scattered))
    assert (noise.person == -1).all()
    assert (noise.clusters, noise.noise_joined) == (0, 0)


def test_unusable_embeddings_are_left_alone():
    rng = np.random.default_rng(21)
    emb = _around(_direction(rng, 128), 10, rng, 0.2)
    emb[0] = 0.0
    emb[1] = np.nan
    emb[2] = 0.0  # kept: it already belongs to a stable person
    person = [-1, -1, 4] + [-1] * 7
    result = cluster_faces(_problem(emb, person=person, stable=[4]))
    assert result.person[:2].tolist() == [-1, -1]
    assert result.person[2] == 4
    # Person 4 has no usable face to compare with, so the rest become a new person.
    assert result.person[3:].tolist() == [5] * 7


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"embeddings": np.zeros((3, 4), dtype=np.float32)}, "embeddings must have shape"),
        ({"image_ids": np.zeros(3, dtype=np.int64)}, "image_ids must have shape"),
        ({"next_id": 2}, "next_id 2 is not above"),
        ({"forbidden": {9: frozenset({1})}}, "outside 0..1"),
    ],
)
def test_inconsistent_problems_are_rejected(change: dict[str, Any], message: str):
    base = _problem(np.ones((2, 4), dtype=np.float32), person=[2, -1], stable=[2])
    with pytest.raises(ValueError, match=message):
        cluster_faces(dataclasses.replace(base, **change))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": 2.5}, "threshold"),
        ({"min_cluster": 1}, "min_cluster"),
        ({"jobs": 0}, "jobs"),
    ],
)
def test_bad_options_are_rejected(options: dict[str, float], message: str):
    with pytest.raises(ValueError, match=message):
        cluster_faces(_problem(np.ones((2, 4), dtype=np.float32)), **options)  # type: ignore[arg-type]


def test_faces_of_one_photo_never_make_a_person():
    rng = np.random.default_rng(22)
    emb = _around(_direction(rng, 128), 8, rng, 0.1)
    result = cluster_faces(_problem(emb, images=[0] * 8))
    assert (result.person == -1).all()
    assert result.created == ()


def test_a_wrongly_merged_person_splits_and_the_larger_part_keeps_the_id():
    emb, _ = _library(people=2, per=12, strangers=0, dim=128, seed=23)
    keep = np.r_[0:12, 12:20]  # 12 faces of one person, 8 of another, once filed together
    result = cluster_faces(_problem(emb[keep], person=[4] * 20, next_id=5))
    assert (result.person[:12] == 4).all()
    assert (result.person[12:] == 5).all()
    assert result.created == (5,)


def test_displaced_faces_settle_over_several_rounds(monkeypatch: pytest.MonkeyPatch):
    rng = np.random.default_rng(24)
    a = _direction(rng, 128)
    b = _unit(0.85 * a + np.sqrt(1 - 0.85**2) * _at_distance(a, 1.0, rng)[0]).astype(np.float64)
    c = _unit(0.85 * a + np.sqrt(1 - 0.85**2) * _at_distance(a, 1.0, rng)[0]).astype(np.float64)
    x = _unit(0.8 * a + 0.11 * b + 0.09 * c)
    y = _unit(0.8 * a + 0.1 * b + 0.1 * c + 0.02 * _at_distance(a, 1.0, rng)[0])
    for face in (x, y):
        dist = [1 - float(face @ v) for v in (a, b, c)]
        assert dist[0] < min(dist[1:])  # the set-up: nearest a ...
        assert max(dist) <= 0.35  # ... yet near all three
    emb = np.concatenate([np.tile(a, (5, 1)), np.tile(b, (5, 1)), np.tile(c, (5, 1)), [x, y]])
    person = [1] * 5 + [2] * 5 + [3] * 5 + [-1, -1]
    images = [0, *range(1, 15), 0, 0]  # x and y share a photo with a's locked face 0
    problem = _problem(
        emb.astype(np.float32), images=images, person=person, stable=[1, 2, 3], locked=[0]
    )
    settled = cluster_faces(problem)
    assert sorted(settled.person[15:].tolist()) == [2, 3]  # a taken; both wanted b; one gets c
    assert settled.conflicts_resolved == 2
    monkeypatch.setattr(cluster, "_CONFLICT_ROUNDS", 1)
    hurried = cluster_faces(problem)
    assert sorted(hurried.person[15:].tolist()) in ([-1, 2], [-1, 3])


def test_kmeans_cells_stay_usable_with_fewer_distinct_faces_than_cells():
    rng = np.random.default_rng(25)
    points = np.repeat(np.stack([_direction(rng, 16) for _ in range(3)]), 10, axis=0)
    cells = cluster._kmeans(points.astype(np.float32), 6)
    assert cells.shape == (6, 16)
    assert np.isfinite(cells).all()
    assert np.allclose(np.linalg.norm(cells, axis=1), 1.0, atol=1e-5)


# --- real embeddings (../shared) -----------------------------------------------------------

# insightface >= 2 calls scikit-image's deprecated estimate() inside FaceAnalysis.get.
SKIMAGE_ESTIMATE = "ignore:`estimate` is deprecated:FutureWarning"
FILM_PEOPLE = ("alan_grant", "claire_dearing", "ellie_sattler")


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.filterwarnings(SKIMAGE_ESTIMATE)
def test_real_faces_of_film_characters_are_not_mixed(
    shared_faces: Path, shared_models: Path, tmp_path: Path
):
    insightface_app = pytest.importorskip("insightface.app")
    from PIL import Image, ImageOps

    pack = tmp_path / "models" / "testpack"
    pack.mkdir(parents=True)
    for name in ("scrfd_2.5g_bnkps.onnx", "mobilefacenet_yywbxgl.onnx"):
        (pack / name).symlink_to(shared_models / name)
    app = insightface_app.FaceAnalysis(
        name="testpack", root=str(tmp_path), providers=["CPUExecutionProvider"]
    )
    app.prepare(ctx_id=-1, det_size=(640, 640))
    with (shared_faces / "MANIFEST.csv").open(encoding="utf-8") as fh:
        single = [r for r in csv.DictReader(fh) if r["yunet_faces_640"] == "1"]
    rows = [r for who in FILM_PEOPLE for r in [r for r in single if r["identity"] == who][:12]]
    embeddings, truth = [], []
    for row in rows:
        with Image.open(shared_faces / row["file"]) as im:
            upright = ImageOps.exif_transpose(im).convert("RGB")
            upright.thumbnail((1024, 1024))  # detection runs at 640 anyway
            bgr = np.asarray(upright)[:, :, ::-1]
        faces = app.get(np.ascontiguousarray(bgr))
        if faces:  # the label names the photo's largest face
            largest = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
            embeddings.append(largest.embedding)
            truth.append(row["identity"])
    assert len(truth) >= 30
    result = cluster_faces(_problem(np.array(embeddings, dtype=np.float32)))
    scores = bcubed(truth, result.person)
    # Film stills hold posters and look-alikes; a wrong join is what must not happen.
    assert scores.precision >= 0.95
    assert len({int(p) for p in result.person if p >= 0}) >= 2
    assert scores.recall > 0.5


def test_small_groups_of_different_people_are_never_chained_into_one() -> None:
    """min_cluster 2: two groups of 3 orthogonal faces stay two people (they were merged)."""
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(64, 3)))[0].T  # three orthogonal identities
    sizes = (4, 3, 3)
    emb = np.concatenate(
        [basis[k] * 3 + rng.normal(0, 0.05, (size, 64)) for k, size in enumerate(sizes)]
    ).astype(np.float32)
    n = len(emb)
    problem = ClusterProblem(
        embeddings=emb,
        image_ids=np.arange(n),
        person=np.full(n, -1),
        stable=frozenset(),
        locked=np.zeros(n, bool),
        excluded=np.zeros(n, bool),
        forbidden={},
        next_id=1,
    )
    person = cluster_faces(problem, threshold=0.35, min_cluster=2).person
    groups = [set(person[:4].tolist()), set(person[4:7].tolist()), set(person[7:].tolist())]
    assert all(len(g) == 1 for g in groups)
    assert len({next(iter(g)) for g in groups}) == 3
