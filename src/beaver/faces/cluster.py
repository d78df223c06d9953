"""Group faces into people: density clusters for new people, steady ids for known ones.

DESIGN DOC PLACEHOLDER
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float32]

_NEIGHBOURS = 16
_MIN_SAMPLES = 2
_SELECTION = "eom"
_PURITY = 1.0
_MERGE_CLUSTERS = 0.0
_MERGE_INTO_STABLE = False
_STABLE_FIRST = True
_EXACT_UP_TO = 8192
_PROBES = 6
_SAMPLE = 32
_BLOCK = 2048
_CANDIDATES = 8
_CONFLICT_ROUNDS = 8
_FAR = 2.0
_MERGE_TRIES = 4
_LOCKED, _KEPT, _NEW = 2, 1, 0


@dataclass(frozen=True)
class ClusterProblem:
    """Everything the clusterer needs about n faces; the caller maps to and from its store."""

    embeddings: npt.NDArray[np.float32]
    image_ids: npt.NDArray[np.int64]
    person: npt.NDArray[np.int64]
    stable: frozenset[int]
    locked: npt.NDArray[np.bool_]
    excluded: npt.NDArray[np.bool_]
    forbidden: Mapping[int, frozenset[int]]
    next_id: int


@dataclass(frozen=True)
class ClusterResult:
    """The person of every face (-1: none), which ids were created or retired, and counts."""

    person: npt.NDArray[np.int64]
    created: tuple[int, ...]
    retired: tuple[int, ...]
    clusters: int
    noise_joined: int
    conflicts_resolved: int


def cluster_faces(
    problem: ClusterProblem,
    *,
    threshold: float = 0.35,
    min_cluster: int = 5,
    jobs: int | None = None,
) -> ClusterResult:
    """Assign faces to people; stable people keep their id and faces, new people get new ids."""
    _check(problem, threshold, min_cluster, jobs)
    with _threads(jobs):
        return _Run(problem, threshold, min_cluster).result()


class _Run:
    """One clustering pass; people are columns: anchored people first, then new clusters."""

    def __init__(self, problem: ClusterProblem, threshold: float, min_cluster: int) -> None:
        self.p = problem
        self.threshold = threshold
        self.min_cluster = min_cluster
        self.n = len(problem.person)
        self.unit, self.usable = _unit_rows(problem.embeddings)
        self.images = np.unique(problem.image_ids, return_inverse=True)[1].astype(np.int64)
        excluded, locked, person = problem.excluded, problem.locked, problem.person
        anchors = set(problem.stable) | set(person[locked & ~excluded & (person >= 0)].tolist())
        self.ids = np.array(sorted(anchors), dtype=np.int64)
        known = np.isin(person, self.ids) & ~excluded
        self.col = np.full(self.n, -1, dtype=np.int64)
        self.col[known] = np.searchsorted(self.ids, person[known])
        self.priority = np.where(locked, _LOCKED, np.where(known, _KEPT, _NEW)).astype(np.int64)
        # A kept face the user said is not this person is free again; a locked one never moves.
        self.col[self._forbidden_mask(np.flatnonzero(known & ~locked))] = -1
        self.priority[(self.col < 0) & ~locked] = _NEW
        self.free = self.usable & (self.col < 0) & ~locked & ~excluded
        self.dist = np.full(self.n, np.inf, dtype=np.float32)

    def result(self) -> ClusterResult:
        """Run every step and describe the outcome."""
        anchored = len(self.ids)
        cents = self._centroids(self.col, anchored)
        self._refresh_dist(cents)
        if _STABLE_FIRST:
            self._join(np.flatnonzero(self.free), cents)
        labels = np.full(self.n, -1, dtype=np.int64)
        pool = np.flatnonzero(self.free & (self.col < 0))
        labels[pool] = _density_labels(
            self.unit[pool], self.images[pool], self.min_cluster, _MIN_SAMPLES
        )
        labels, found = self._purify(labels)
        labels, groups = self._merge(labels, found, anchored)
        new_ids = self._number(labels, groups)
        self.ids = np.concatenate([self.ids, new_ids])
        member = labels >= 0
        self.col[member] = anchored + labels[member]
        self.col[self._forbidden_mask(np.flatnonzero(member))] = -1
        cents = self._centroids(self.col, len(self.ids))
        self._refresh_dist(cents)
        noise = np.flatnonzero(self.free & (self.col < 0))
        joined = self._join(noise, cents)
        moved = self._resolve_conflicts(cents)
        return self._outcome(found, joined, moved, anchored)

    def _forbidden_mask(self, faces: Ints) -> Mask:
        """Which of these faces sit in a column whose person they must never join."""
        bad = np.zeros(self.n, dtype=np.bool_)
        for face in faces[np.isin(faces, list(self.p.forbidden))].tolist():
            bad[face] = int(self.ids[self.col[face]]) in self.p.forbidden[face]
        return bad

    def _centroids(self, col: Ints, width: int) -> Vectors:
        """Unit mean direction per column, from its usable faces; NaN rows for empty columns."""
        return _means(self.unit, np.where(self.usable, col, -1), width)

    def _refresh_dist(self, cents: Vectors) -> None:
        """Distance of each assigned face to its person's centroid (inf where not comparable)."""
        on = np.flatnonzero((self.col >= 0) & self.usable)
        sims = np.einsum("ij,ij->i", self.unit[on], cents[self.col[on]])
        self.dist[on] = np.nan_to_num(1.0 - sims, nan=np.inf)

    def _deny_keys(self) -> Ints:
        """Sorted keys face*m+column for every (face, person) pair the user forbade."""
        width = len(self.ids)
        where = {int(i): c for c, i in enumerate(self.ids.tolist())}
        keys = [
            face * width + where[pid]
            for face, pids in self.p.forbidden.items()
            for pid in pids
            if pid in where
        ]
        return np.unique(np.array(keys, dtype=np.int64))

    def _join(self, faces: Ints, cents: Vectors) -> int:
        """Give each face its nearest allowed person within the threshold; return how many joined."""
        if faces.size == 0 or len(cents) == 0:
            return 0
        cols, dists = _nearest(self.unit[faces], cents, _CANDIDATES)
        width = len(cents)
        ok = (dists <= self.threshold) & ~np.isin(faces[:, None] * width + cols, self._deny_keys())
        pick, picked = _first(cols, dists, ok)
        self.col[faces] = pick
        self.dist[faces] = picked
        return int(np.count_nonzero(pick >= 0))

    def _purify(self, labels: Ints) -> tuple[Ints, int]:
        """Drop members far from their cluster's centroid, then clusters left too small."""
        count = int(labels.max(initial=-1)) + 1
        if count == 0:
            return labels, 0
        cents = self._centroids(labels, count)
        on = np.flatnonzero(labels >= 0)
        far = 1.0 - np.einsum("ij,ij->i", self.unit[on], cents[labels[on]]) > _PURITY
        labels[on[far]] = -1
        sizes = np.bincount(labels[labels >= 0], minlength=count)
        labels[(labels >= 0) & (sizes[np.maximum(labels, 0)] < self.min_cluster)] = -1
        _, dense = np.unique(labels, return_inverse=True)
        dense = dense.astype(np.int64) - (1 if (labels < 0).any() else 0)
        return dense, int(dense.max(initial=-1)) + 1

    def _merge(self, labels: Ints, count: int, anchored: int) -> tuple[Ints, int]:
        """Join clusters (to each other or to an anchored person) whose centres are within the
        threshold and that share no photo; faces joining an anchored person leave ``labels``."""
        if count == 0 or _MERGE_CLUSTERS <= 0:
            return labels, count
        width = anchored + count
        col = np.where(labels >= 0, anchored + labels, self.col if _MERGE_INTO_STABLE else -1)
        on = np.flatnonzero((col >= 0) & self.usable)
        cents = _means(self.unit, col, width)
        sizes = np.bincount(col[on], minlength=width).astype(np.float64)
        sums = np.nan_to_num(cents.astype(np.float64)) * sizes[:, None]
        seen = np.unique(np.stack([col[on], self.images[on]], axis=1), axis=0)
        photos: list[set[int]] = [set() for _ in range(width)]
        for c, image in seen.tolist():
            photos[c].add(image)
        near, dists = _nearest(cents[anchored:], cents, _MERGE_TRIES + 1)
        pairs = [
            (float(d), anchored + a, int(b))
            for a, (row, drow) in enumerate(zip(near.tolist(), dists.tolist(), strict=True))
            for b, d in zip(row, drow, strict=True)
            if b != anchored + a and d <= self.threshold * _MERGE_CLUSTERS
        ]
        root = list(range(width))

        def find(c: int) -> int:
            while root[c] != c:
                root[c] = root[root[c]]
                c = root[c]
            return c

        for _, a, b in sorted(pairs):
            ra, rb = find(a), find(b)
            if ra == rb or (ra < anchored and rb < anchored):
                continue
            va, vb = sums[ra], sums[rb]
            cos = float(va @ vb) / float(np.linalg.norm(va) * np.linalg.norm(vb))
            if 1.0 - cos > self.threshold * _MERGE_CLUSTERS or photos[ra] & photos[rb]:
                continue
            keep, gone = (ra, rb) if ra < rb else (rb, ra)
            root[gone] = keep
            sums[keep] += sums[gone]
            photos[keep] |= photos[gone]
        final = np.array([find(c) for c in range(width)], dtype=np.int64)
        member = labels >= 0
        target = final[anchored + labels[member]]
        into = target < anchored
        faces = np.flatnonzero(member)
        self.col[faces[into]] = target[into]
        self.merged = int(np.count_nonzero(into))
        out = np.full(self.n, -1, dtype=np.int64)
        roots, dense = np.unique(target[~into], return_inverse=True)
        out[faces[~into]] = dense
        return out, len(roots)

    def _number(self, labels: Ints, count: int) -> Ints:
        """An id per new cluster: a previous non-stable person's id if it mostly lives on."""
        member = labels >= 0
        prev = self.p.person
        old = member & (prev >= 0) & ~np.isin(prev, self.ids)
        ids = np.full(count, -1, dtype=np.int64)
        if old.any():
            pairs, overlap = np.unique(
                np.stack([labels[old], prev[old]], axis=1), axis=0, return_counts=True
            )
            people, people_sizes = np.unique(
                prev[(prev >= 0) & ~self.p.excluded], return_counts=True
            )
            cluster_sizes = np.bincount(labels[member], minlength=count)
            taken: set[int] = set()
            for at in np.lexsort((pairs[:, 1], pairs[:, 0], -overlap)).tolist():
                cluster, pid = int(pairs[at, 0]), int(pairs[at, 1])
                size = min(cluster_sizes[cluster], people_sizes[np.searchsorted(people, pid)])
                if ids[cluster] < 0 and pid not in taken and 2 * overlap[at] > size:
                    ids[cluster] = pid
                    taken.add(pid)
        first_face = np.full(count, self.n, dtype=np.int64)
        np.minimum.at(first_face, labels[member], np.flatnonzero(member))
        fresh = [c for c in np.argsort(first_face, kind="stable").tolist() if ids[c] < 0]
        ids[fresh] = np.arange(self.p.next_id, self.p.next_id + len(fresh))
        return ids

    def _resolve_conflicts(self, cents: Vectors) -> int:
        """One face per (image, person): losers try their next-nearest person or go unassigned."""
        width = len(cents)
        banned = self._deny_keys()
        moved = np.zeros(self.n, dtype=np.bool_)
        for _ in range(_CONFLICT_ROUNDS):
            losers = _losers(self.col, self.dist, self.priority, self.images)
            if losers.size == 0:
                break
            moved[losers] = True
            banned = np.union1d(banned, losers * width + self.col[losers])
            self.col[losers] = -1
            on = self.col >= 0
            taken = np.unique(self.images[on] * width + self.col[on])
            cols, dists = _nearest(self.unit[losers], cents, _CANDIDATES)
            ok = (
                (dists <= self.threshold)
                & ~np.isin(losers[:, None] * width + cols, banned)
                & ~np.isin(self.images[losers][:, None] * width + cols, taken)
                & self.usable[losers][:, None]
            )
            self.col[losers], self.dist[losers] = _first(cols, dists, ok)
            self.priority[losers] = _NEW
        else:
            self.col[_losers(self.col, self.dist, self.priority, self.images)] = -1
        return int(np.count_nonzero(moved))

    def _outcome(self, found: int, joined: int, moved: int, anchored: int) -> ClusterResult:
        """Map columns back to ids and list what changed."""
        person = np.where(self.col >= 0, self.ids[np.maximum(self.col, 0)], -1).astype(np.int64)
        person[self.p.excluded] = -1
        present = set(np.unique(person[person >= 0]).tolist())
        previous = set(np.unique(self.p.person[self.p.person >= 0]).tolist())
        anchors = set(self.ids[:anchored].tolist())
        created = sorted(
            i for i in self.ids[anchored:].tolist() if i >= self.p.next_id and i in present
        )
        retired = sorted(previous - present - anchors)
        return ClusterResult(person, tuple(created), tuple(retired), found, joined, moved)


def _check(problem: ClusterProblem, threshold: float, min_cluster: int, jobs: int | None) -> None:
    """Reject inputs that cannot describe one set of faces."""
    n = len(problem.person)
    emb = problem.embeddings
    if emb.ndim != 2 or emb.shape[0] != n:
        raise ValueError(f"embeddings must have shape (n, d) with n={n}, got {emb.shape}")
    for name in ("image_ids", "locked", "excluded"):
        if getattr(problem, name).shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {getattr(problem, name).shape}")
    if not 0.0 < threshold <= 2.0:
        raise ValueError(f"threshold is a cosine distance in (0, 2], got {threshold}")
    if min_cluster < 2:
        raise ValueError(f"min_cluster must be at least 2, got {min_cluster}")
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    used = [int(problem.person.max(initial=-1)), *problem.stable]
    if problem.next_id <= max(used, default=-1):
        raise ValueError(f"next_id {problem.next_id} is not above every existing person id")
    if any(not 0 <= face < n for face in problem.forbidden):
        raise ValueError(f"forbidden names a face index outside 0..{n - 1}")


@contextlib.contextmanager
def _threads(jobs: int | None) -> Iterator[None]:
    """Cap the BLAS/OpenMP threads numpy and scikit-learn use when the caller asks."""
    if jobs is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=jobs):
        yield


def _unit_rows(embeddings: npt.NDArray[np.float32]) -> tuple[Vectors, Mask]:
    """L2-normalised rows, and which rows were usable (finite, non-zero)."""
    emb = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1)
    usable = np.isfinite(norms) & (norms > 0) & np.isfinite(emb).all(axis=1)
    unit = np.zeros_like(emb)
    unit[usable] = emb[usable] / norms[usable, None]
    return unit, usable


def _means(unit: Vectors, labels: Ints, width: int) -> Vectors:
    """Unit mean direction of the rows of each label 0..width-1; NaN rows for empty labels."""
    on = np.flatnonzero(labels >= 0)
    order = on[np.argsort(labels[on], kind="stable")]
    sums = np.zeros((width, unit.shape[1]), dtype=np.float32)
    if order.size:
        sorted_labels = labels[order]
        starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
        sums[sorted_labels[starts]] = np.add.reduceat(unit[order], starts, axis=0)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / norms


def _nearest(rows: Vectors, cents: Vectors, top: int) -> tuple[Ints, npt.NDArray[np.float32]]:
    """The ``top`` nearest columns per row, nearest first, with their cosine distances."""
    top = min(top, len(cents))
    cols = np.empty((len(rows), top), dtype=np.int64)
    dists = np.empty((len(rows), top), dtype=np.float32)
    clean = np.nan_to_num(cents, nan=0.0)
    empty = ~np.isfinite(cents[:, 0]) if len(cents) else np.zeros(0, dtype=np.bool_)
    for start in range(0, len(rows), _BLOCK):
        d = 1.0 - rows[start : start + _BLOCK] @ clean.T
        d[:, empty] = np.inf
        part = np.argpartition(d, top - 1, axis=1)[:, :top] if top < d.shape[1] else None
        if part is None:
            part = np.broadcast_to(np.arange(d.shape[1]), d.shape).copy()
        near = np.take_along_axis(d, part, axis=1)
        order = np.argsort(near, axis=1, kind="stable")
        cols[start : start + len(d)] = np.take_along_axis(part, order, axis=1)
        dists[start : start + len(d)] = np.take_along_axis(near, order, axis=1)
    return cols, dists


def _first(
    cols: Ints, dists: npt.NDArray[np.float32], ok: Mask
) -> tuple[Ints, npt.NDArray[np.float32]]:
    """Per row, the first allowed candidate; -1 and inf where none is."""
    has = ok.any(axis=1)
    at = np.argmax(ok, axis=1)
    rows = np.arange(len(cols))
    pick = np.where(has, cols[rows, at], -1).astype(np.int64)
    picked = np.where(has, dists[rows, at], np.inf).astype(np.float32)
    return pick, picked


def _losers(col: Ints, dist: npt.NDArray[np.float32], priority: Ints, images: Ints) -> Ints:
    """Faces that share an image and a person with a better face (locked, kept, then nearer)."""
    on = np.flatnonzero(col >= 0)
    order = on[np.lexsort((dist[on], -priority[on], col[on], images[on]))]
    same = (images[order][1:] == images[order][:-1]) & (col[order][1:] == col[order][:-1])
    lose = order[1:][same]
    return lose[priority[lose] < _LOCKED]


def _density_labels(unit: Vectors, images: Ints, min_cluster: int, min_samples: int) -> Ints:
    """HDBSCAN labels (-1 noise) from a k-nearest-neighbour graph of euclidean distances."""
    n = len(unit)
    if n < max(min_cluster, min_samples + 1, 3):
        return np.full(n, -1, dtype=np.int64)
    from sklearn.cluster import HDBSCAN

    nbr, dist = _knn(unit, images, min(_NEIGHBOURS, n - 1))
    graph = _graph(nbr, dist, min_samples)
    model = HDBSCAN(
        min_cluster_size=min_cluster,
        min_samples=min_samples,
        metric="precomputed",
        cluster_selection_method=_SELECTION,
        copy=False,
    )
    return np.asarray(model.fit(graph).labels_, dtype=np.int64)


def _knn(unit: Vectors, images: Ints, k: int) -> tuple[Ints, npt.NDArray[np.float32]]:
    """Approximate k nearest faces from other images: exact when small, inverted cells when big."""
    n = len(unit)
    cells = 1 if n <= _EXACT_UP_TO else int(np.sqrt(n))
    probes = min(_PROBES, cells)
    if cells == 1:
        top = np.zeros((n, 1), dtype=np.int64)
    else:
        top = _nearest(unit, _kmeans(unit, cells), probes)[0]
    primary = top[:, 0]
    members_order = np.argsort(primary, kind="stable")
    member_bounds = np.searchsorted(primary[members_order], np.arange(cells + 1))
    flat = top.ravel()
    query_order = np.argsort(flat, kind="stable")
    query_bounds = np.searchsorted(flat[query_order], np.arange(cells + 1))
    best_s = np.full((n, probes, k), -np.inf, dtype=np.float32)
    best_i = np.full((n, probes, k), -1, dtype=np.int64)
    for cell in range(cells):
        members = members_order[member_bounds[cell] : member_bounds[cell + 1]]
        slots = query_order[query_bounds[cell] : query_bounds[cell + 1]]
        if members.size == 0 or slots.size == 0:
            continue
        kk = min(k, members.size)
        vectors, faces_images = unit[members], images[members]
        for start in range(0, slots.size, _BLOCK):
            chunk = slots[start : start + _BLOCK]
            queries, ranks = chunk // probes, chunk % probes
            sims = unit[queries] @ vectors.T
            # Faces of one image are never one person, so they are never each other's neighbours.
            np.copyto(sims, -np.inf, where=images[queries][:, None] == faces_images[None, :])
            if kk < members.size:
                part = np.argpartition(sims, members.size - kk, axis=1)[:, members.size - kk :]
            else:
                part = np.broadcast_to(np.arange(kk), (len(chunk), kk))
            best_s[queries, ranks, :kk] = np.take_along_axis(sims, part, axis=1)
            best_i[queries, ranks, :kk] = members[part]
    flat_s, flat_i = best_s.reshape(n, -1), best_i.reshape(n, -1)
    part = np.argpartition(-flat_s, k - 1, axis=1)[:, :k] if flat_s.shape[1] > k else None
    if part is not None:
        flat_s = np.take_along_axis(flat_s, part, axis=1)
        flat_i = np.take_along_axis(flat_i, part, axis=1)
    order = np.argsort(-flat_s, axis=1, kind="stable")
    sims = np.take_along_axis(flat_s, order, axis=1)
    nbr = np.where(np.isfinite(sims), np.take_along_axis(flat_i, order, axis=1), -1)
    dist = np.sqrt(np.maximum(2.0 - 2.0 * sims, 0.0)).astype(np.float32)
    return nbr.astype(np.int64), np.where(nbr >= 0, dist, np.inf).astype(np.float32)


def _kmeans(unit: Vectors, cells: int, rounds: int = 8) -> Vectors:
    """Spherical k-means cell centres from a sample, seeded so runs repeat."""
    rng = np.random.default_rng(0)
    sample = unit[rng.choice(len(unit), size=min(len(unit), _SAMPLE * cells), replace=False)]
    cents = sample[rng.choice(len(sample), size=cells, replace=False)].copy()
    for _ in range(rounds):
        owner = _nearest(sample, cents, 1)[0][:, 0]
        fresh = _means(sample, owner, cells)
        # An emptied cell restarts at a random sample point.
        empty = ~np.isfinite(fresh[:, 0])
        fresh[empty] = sample[rng.choice(len(sample), size=int(empty.sum()), replace=False)]
        cents = fresh
    return cents


def _graph(nbr: Ints, dist: Floats, min_samples: int) -> object:
    """Symmetric sparse distance graph, padded and joined at a far distance for HDBSCAN."""
    from scipy.sparse import coo_matrix, csgraph

    n, k = nbr.shape
    rows = np.repeat(np.arange(n), k)
    ok = nbr.ravel() >= 0
    # A zero distance would read as "no edge" in a sparse matrix.
    weights = np.maximum(dist.ravel()[ok], 1e-6)
    graph = coo_matrix((weights, (rows[ok], nbr.ravel()[ok])), shape=(n, n)).tocsr()
    graph = graph.maximum(graph.T).tocsr()
    extra_r: list[Ints] = []
    extra_c: list[Ints] = []
    short = np.flatnonzero(np.diff(graph.indptr) < min_samples)
    for step in range(1, min_samples + 1):
        extra_r.append(short)
        extra_c.append((short + step) % n)
    components, which = csgraph.connected_components(graph, directed=False)
    if components > 1:
        heads = np.unique(which, return_index=True)[1]
        extra_r.append(heads[1:])
        extra_c.append(np.full(components - 1, heads[0]))
    if extra_r:
        r, c = np.concatenate(extra_r), np.concatenate(extra_c)
        pad = coo_matrix((np.ones(r.size), (r, c)), shape=(n, n)).tocsr()
        pad = pad.maximum(pad.T)
        # Pairs that already have a real edge keep it; the rest get the far distance.
        pad = pad - pad.multiply(graph != 0)
        pad.eliminate_zeros()
        graph = (graph + pad * _FAR).tocsr()
    return graph
