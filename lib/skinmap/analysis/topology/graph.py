"""Landmarks and the symmetric k-nearest-neighbour graph (paper section 8, eq. 9).

Spectral persistent homology works on a graph, not on the raw embedding: the effective
resistance of a k-NN graph is robust to the high-dimensional noise that drowns Euclidean or
cosine Vietoris-Rips filtrations (Damrich, Berens & Kobak 2024). The dense resistance and the
Rips filtration are quadratic in memory, so for large collections the graph is built on a
subset of *landmarks* chosen by farthest-point sampling (covers the space evenly, keeps sparse
regions, which is where holes are), by *trimmed* farthest-point sampling (the same after dropping
the lowest-density tail: plain farthest-point sampling picks the most isolated rows first, i.e.
off-topic images and artefacts, which then sit in the graph as long shortcut edges or as tiny
components), or by stratified random sampling (keeps the mix of a metadata column such as
``dataset``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from tqdm.auto import tqdm

from skinmap.analysis.knn import SearchConfig, VectorIndex, knn_search, l2_normalize, training_sample

__all__ = [
    "farthest_point_landmarks",
    "build_row_index",
    "knn_sparsity",
    "landmark_pool",
    "trimmed_farthest_landmarks",
    "stratified_landmarks",
    "select_landmarks",
    "symmetric_knn_graph",
    "graph_components",
]


def farthest_point_landmarks(
    x: np.ndarray,
    n_landmarks: int,
    *,
    seed: int = 0,
    progress: bool = False,
    flush_size: int = 256,
    top_size: int | None = None,
    chunk_size: int = 32_768,
) -> np.ndarray:
    """Greedy farthest-point (max-min) sample of ``n_landmarks`` rows under cosine distance.

    Starts from a seeded random row; each next landmark is the row whose cosine distance to its
    nearest landmark so far is largest (ties: the lowest row). Returns sorted row indices; asking
    for at least ``n`` rows returns every row.

    Exact, but not one pass over all rows per landmark: the distance of every row to its nearest
    landmark is brought up to date in blocks of ``flush_size`` new landmarks (one matrix product
    over row chunks of ``chunk_size``: compute-bound, instead of ``n_landmarks`` memory-bound
    matrix-vector passes). Between two updates the stored distances are upper bounds; only the
    *front*, the ``top_size`` rows with the largest ones, is kept exact after every landmark. While
    the front's best value exceeds every stored value outside it, that row is the farthest;
    otherwise all rows are brought up to date early. Cost ``O(n * n_landmarks * d)`` flops at
    matrix-product speed plus ``O(top_size * n_landmarks * d)``; memory one float32 copy of the
    normalised rows plus ``O(n + top_size * d)``.

    Parameters
    ----------
    x : array of shape (n, d)
        Rows (any scale; l2-normalised here).
    n_landmarks : int
        Landmarks to pick.
    seed : int
        Seed of the first landmark (``default_rng(seed).integers(n)``).
    progress : bool
        tqdm bar on stderr.
    flush_size, top_size, chunk_size : int
        Landmarks per bulk update, rows kept exact between updates (default ``n // 64`` within
        ``[256, 4096]``), rows per matrix-product chunk (speed only: the same landmarks up to
        float32 round-off in exact ties).

    Returns
    -------
    ndarray of shape (n_landmarks,)
        Sorted row indices.
    """
    if n_landmarks < 1:
        raise ValueError(f"n_landmarks must be >= 1, got {n_landmarks}")
    n = len(x)
    if n_landmarks >= n:
        return np.arange(n)
    if top_size is None:
        top_size = int(np.clip(n // 64, 256, 4096))
    xn = l2_normalize(x)
    rng = np.random.default_rng(seed)
    chosen = np.empty(n_landmarks, dtype=np.int64)
    chosen[0] = rng.integers(n)
    bound = 1.0 - xn @ xn[chosen[0]]  # float32: exact distance to the first landmark
    bound[chosen[0]] = -np.inf
    front = _Front(xn, bound, top_size)
    pending: list[int] = []
    for step in tqdm(range(1, n_landmarks), disable=not progress, desc="farthest-point landmarks"):
        nxt = front.best()
        if nxt < 0:  # the front's best fell to the level of the rows outside it: bring all up to date
            _flush(xn, bound, pending, chunk_size)
            pending = []
            nxt = int(np.argmax(bound))
            front = _Front(xn, bound, top_size)
        chosen[step] = nxt
        pending.append(nxt)
        front.add_landmark(nxt)  # also marks it chosen (-inf)
        if len(pending) >= flush_size:
            _flush(xn, bound, pending, chunk_size)
            pending = []
            front = _Front(xn, bound, top_size)
    return np.sort(chosen)


class _Front:
    """The ``top_size`` rows with the largest stored distances, kept exact landmark by landmark.

    Rows outside the front have stored distances (upper bounds of their exact ones) of at most
    ``outside``; while the front's best exact value exceeds it, that row is the farthest.
    """

    def __init__(self, xn: np.ndarray, bound: np.ndarray, top_size: int) -> None:
        n = bound.size
        self.bound = bound
        if top_size >= n:
            self.rows = np.arange(n)
            self.outside = -np.inf
        else:
            part = np.argpartition(-bound, top_size)
            self.rows = np.sort(part[:top_size])
            self.outside = float(bound[part[top_size]])
        self.x = xn[self.rows]
        self.xn = xn

    def best(self) -> int:
        """The farthest row (lowest on ties), or -1 when it may lie outside the front."""
        vals = self.bound[self.rows]
        pos = int(np.argmax(vals))  # rows are sorted: argmax takes the lowest row on ties
        if not vals[pos] > self.outside:
            return -1
        return int(self.rows[pos])

    def add_landmark(self, row: int) -> None:
        """Bring the front's distances up to date with a new landmark (rows outside: at the next flush)."""
        d = (1.0 - self.x @ self.xn[row]).astype(self.bound.dtype)
        np.minimum(self.bound[self.rows], d, out=d)
        self.bound[self.rows] = d
        self.bound[row] = -np.inf


def _flush(xn: np.ndarray, bound: np.ndarray, pending: list[int], chunk_size: int) -> None:
    """``bound = min(bound, distance to the pending landmarks)`` for every row, in chunks."""
    if not pending:
        return
    p_t = np.ascontiguousarray(xn[pending].T)
    for start in range(0, xn.shape[0], chunk_size):
        blk = bound[start : start + chunk_size]
        sim = (xn[start : start + chunk_size] @ p_t).max(axis=1)
        np.minimum(blk, (1.0 - sim).astype(blk.dtype), out=blk)


def build_row_index(
    x: np.ndarray, search: SearchConfig | None = None, *, use_gpu: bool | None = None
) -> VectorIndex:
    """A cosine :class:`~skinmap.analysis.knn.VectorIndex` over every row of ``x`` (ids = rows).

    ``x`` (n, d) may be a memmap: it is read and normalised in chunks. An IVF index is trained
    first on a seeded sample of ``search.ivf_train_size`` rows.
    """
    search = SearchConfig() if search is None else search
    index = VectorIndex(x.shape[1], search, use_gpu=use_gpu)
    if search.search_method != "exact":
        index.train(training_sample(x, search.ivf_train_size, seed=search.seed), n_total=len(x), normalize=False)
    index.add(x)
    return index


def knn_sparsity(
    x: np.ndarray,
    n_neighbors: int,
    *,
    rows: np.ndarray | None = None,
    search: SearchConfig | None = None,
    index: VectorIndex | None = None,
) -> np.ndarray:
    """Cosine distance of rows to their ``n_neighbors``-th nearest *other* row of ``x``.

    A k-NN density proxy: large values are rows in the lowest-density tail (isolated points).

    Parameters
    ----------
    x : array of shape (n, d)
        All rows (a memmap is read in chunks); neighbours are searched among all of them.
    n_neighbors : int
        ``k``, in ``[1, n - 1]``.
    rows : array of shape (m,), optional
        The rows whose sparsity is wanted (default: every row). Their neighbours are still
        searched among all ``n`` rows, so a row's value does not depend on ``rows``.
    search : SearchConfig, optional
        k-NN engine (default exact); "ivf" approximates the neighbours (values can only grow).
    index : VectorIndex, optional
        A ready index over all rows of ``x`` in row order (built here when absent).

    Returns
    -------
    ndarray of shape (m,)
        float64 cosine distances; a row itself is excluded by identity (duplicates count).
    """
    n = len(x)
    if not 1 <= n_neighbors < n:
        raise ValueError(f"n_neighbors must be in [1, n-1] = [1, {n - 1}], got {n_neighbors}")
    rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    if index is None:
        index = build_row_index(x, search)
    elif index.ntotal != n:
        raise ValueError(f"index holds {index.ntotal} rows, x has {n}")
    res = index.search(x, n_neighbors + 1, rows=rows)
    idx, sims = res.indices, res.similarities
    keep = (idx != rows[:, None]) & (idx >= 0)
    # The n_neighbors-th kept entry of each row (its own row removed by identity, not by rank).
    pos = np.argmax(np.cumsum(keep, axis=1) >= n_neighbors, axis=1)
    found = keep.sum(axis=1) >= n_neighbors
    out = 1.0 - sims[np.arange(rows.size), pos].astype(np.float64)
    out[~found] = 2.0  # fewer than k neighbours came back: as isolated as a cosine distance can be
    return out


def landmark_pool(n: int, pool_size: int, *, strata: Sequence | None = None, seed: int = 0) -> np.ndarray:
    """The seeded candidate rows landmarks are chosen among: all ``n`` rows when ``pool_size`` is
    0 or at least ``n``, otherwise a random sample of ``pool_size`` rows, stratified by ``strata``
    (one label per row; each stratum keeps its share, :func:`stratified_landmarks`) when given.
    Returns sorted row indices."""
    if pool_size < 0:
        raise ValueError(f"pool_size must be >= 0, got {pool_size}")
    if pool_size == 0 or pool_size >= n:
        return np.arange(n)
    if strata is not None:
        if len(strata) != n:
            raise ValueError(f"strata has {len(strata)} labels for {n} rows")
        return stratified_landmarks(strata, pool_size, seed=seed)
    return np.sort(np.random.default_rng(seed).choice(n, size=pool_size, replace=False))


def trimmed_farthest_landmarks(
    x: np.ndarray,
    n_landmarks: int,
    *,
    trim_fraction: float = 0.025,
    n_neighbors: int = 10,
    seed: int = 0,
    pool: np.ndarray | None = None,
    density_rows: str = "all",
    search: SearchConfig | None = None,
    index: VectorIndex | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Farthest-point landmarks among the rows left after dropping the lowest-density tail.

    Among the candidate rows ``pool`` (default: every row; :func:`landmark_pool`), the
    ``ceil(trim_fraction * len(pool))`` with the largest :func:`knn_sparsity` (neighbours among
    *all* rows of ``x``, engine ``search`` or ``index``) are removed (never so many that fewer than
    ``n_landmarks`` remain), then :func:`farthest_point_landmarks` runs on the rest: even coverage
    of the bulk, without spending landmarks on isolated outliers. A seeded random pool of a large
    collection keeps its density (in expectation) and so its bulk, tail and holes, at a fraction
    of the farthest-point cost. Returns sorted row indices of ``x``; at least ``len(pool)``
    landmarks asked for returns the whole pool.

    ``density_rows="pool"`` searches the neighbours among the pool rows only (``index``, if
    given, must then hold exactly the pool rows in pool order): the same when the pool is all
    rows, and much cheaper for a small pool. The ``k``-th neighbour distance within a uniform
    random pool that keeps a share ``f`` of the rows is, in expectation, the ``k / f``-th
    neighbour distance among all rows: a decreasing function of the local density, so it ranks
    rows by density like the all-rows value, smoothed over a wider neighbourhood and noisier.
    """
    n = len(x)
    pool = np.arange(n) if pool is None else np.asarray(pool, dtype=np.int64)
    m = pool.size
    if n_landmarks < 1:
        raise ValueError(f"n_landmarks must be >= 1, got {n_landmarks}")
    if not 0.0 <= trim_fraction < 1.0:
        raise ValueError(f"trim_fraction must be in [0, 1), got {trim_fraction}")
    if n_landmarks >= m:
        return pool
    n_trim = min(int(np.ceil(trim_fraction * m)), m - n_landmarks)
    if n_trim <= 0:
        return pool[farthest_point_landmarks(_rows_of(x, pool), n_landmarks, seed=seed, progress=progress)]
    if density_rows == "all":
        sparsity = knn_sparsity(x, min(n_neighbors, n - 1), rows=pool, search=search, index=index)
        keep = pool[np.sort(np.argsort(-sparsity, kind="stable")[n_trim:])]
        return keep[farthest_point_landmarks(_rows_of(x, keep), n_landmarks, seed=seed, progress=progress)]
    if density_rows != "pool":
        raise ValueError(f"density_rows must be 'all' or 'pool', got {density_rows!r}")
    xp = _rows_of(x, pool)  # the pool is read once
    sparsity = knn_sparsity(xp, min(n_neighbors, m - 1), search=search, index=index)
    keep = np.sort(np.argsort(-sparsity, kind="stable")[n_trim:])  # positions in the pool
    return pool[keep[farthest_point_landmarks(xp[keep], n_landmarks, seed=seed, progress=progress)]]


def _rows_of(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``x[rows]`` for sorted ``rows`` (a memmap is read once, in order; all rows: ``x`` itself)."""
    if rows.size == len(x) and (rows.size == 0 or (rows[0] == 0 and rows[-1] == rows.size - 1)):
        return x
    return x[rows]


def stratified_landmarks(strata: Sequence, n_landmarks: int, *, seed: int = 0) -> np.ndarray:
    """Random sample of ``n_landmarks`` rows with each stratum's share kept (largest remainder).

    Every non-empty stratum gets at least one landmark when ``n_landmarks`` allows; missing
    values (None/NaN/NA) form their own stratum. Returns sorted row indices.
    """
    labels = np.asarray([("<NA>" if _is_missing(s) else str(s)) for s in strata], dtype=object)
    n = labels.size
    if n_landmarks < 1:
        raise ValueError(f"n_landmarks must be >= 1, got {n_landmarks}")
    if n_landmarks >= n:
        return np.arange(n)
    names, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = counts / n * n_landmarks
    take = np.floor(quota).astype(int)
    if n_landmarks >= names.size:
        take = np.maximum(take, 1)
    # Hand out (or take back) the remaining landmarks by largest fractional remainder.
    order = np.argsort(-(quota - np.floor(quota)), kind="stable")
    i = 0
    while take.sum() < n_landmarks:
        s = order[i % names.size]
        if take[s] < counts[s]:
            take[s] += 1
        i += 1
    while take.sum() > n_landmarks:
        s = int(np.argmax(take))
        take[s] -= 1
    rng = np.random.default_rng(seed)
    rows = [rng.choice(np.flatnonzero(inverse == s), size=int(t), replace=False) for s, t in enumerate(take)]
    return np.sort(np.concatenate(rows))


def _is_missing(value) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value) or str(value) == "<NA>"  # NaN / pd.NA
    except TypeError:
        return True  # pd.NA raises on bool()


def select_landmarks(
    x: np.ndarray,
    n_landmarks: int,
    method: str = "farthest",
    *,
    strata: Sequence | None = None,
    seed: int = 0,
    trim_fraction: float = 0.025,
    density_n_neighbors: int = 10,
    pool_size: int = 0,
    density_rows: str = "all",
    search: SearchConfig | None = None,
    index: VectorIndex | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Landmark rows by ``method`` in {"farthest", "trimmed_farthest", "stratified", "random", "all"}.

    ``trim_fraction``, ``density_n_neighbors``, ``density_rows``, ``search`` and ``index`` are used by
    "trimmed_farthest" only (see :func:`trimmed_farthest_landmarks`). ``pool_size`` (0: all rows)
    restricts the farthest-point methods to a seeded candidate pool (:func:`landmark_pool`,
    stratified by ``strata`` when given). Returns every row when ``n_landmarks >= len(x)``
    whatever the method.
    """
    n = len(x)
    if method == "all" or n_landmarks >= n:
        return np.arange(n)
    if method in ("farthest", "trimmed_farthest"):
        pool = landmark_pool(n, pool_size, strata=strata, seed=seed)
        if method == "farthest":
            if n_landmarks >= pool.size:
                return pool
            return pool[farthest_point_landmarks(_rows_of(x, pool), n_landmarks, seed=seed, progress=progress)]
        return trimmed_farthest_landmarks(x, n_landmarks, trim_fraction=trim_fraction,
                                          n_neighbors=density_n_neighbors, seed=seed, pool=pool,
                                          density_rows=density_rows, search=search, index=index,
                                          progress=progress)
    if method == "stratified":
        if strata is None:
            raise ValueError("method='stratified' needs `strata` (one label per row)")
        if len(strata) != n:
            raise ValueError(f"strata has {len(strata)} labels for {n} rows")
        return stratified_landmarks(strata, n_landmarks, seed=seed)
    if method == "random":
        return np.sort(np.random.default_rng(seed).choice(n, size=n_landmarks, replace=False))
    raise ValueError(f"unknown landmark method {method!r} (farthest, trimmed_farthest, stratified, random, all)")


def symmetric_knn_graph(x: np.ndarray, k: int) -> sp.csr_matrix:
    """Binary adjacency of the symmetric cosine k-NN graph (paper eq. 9).

    ``A_ij = 1`` if ``j`` is among the ``k`` nearest neighbours of ``i`` *or* vice versa; no
    self-loops. Exact duplicates remain neighbours of each other (identity, not distance, decides
    what "self" is). Returned as a float64 CSR matrix with sorted indices.
    """
    n = len(x)
    if n < 2:
        raise ValueError(f"a k-NN graph needs at least 2 points, got {n}")
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, n-1] = [1, {n - 1}], got {k}")
    res = knn_search(x, x, k, exclude_self=True)
    rows = np.repeat(np.arange(n), k)
    cols = res.indices.ravel()
    keep = cols >= 0
    a = sp.coo_matrix((np.ones(keep.sum()), (rows[keep], cols[keep])), shape=(n, n)).tocsr()
    a.data[:] = 1.0  # repeated (i, j) entries were summed
    a = a.maximum(a.T).tocsr()
    a.setdiag(0)
    a.eliminate_zeros()
    a.sort_indices()
    return a


def graph_components(adjacency: sp.spmatrix) -> tuple[int, np.ndarray]:
    """Connected components of an undirected graph: ``(n_components, label per node)``."""
    n_comp, labels = connected_components(sp.csr_matrix(adjacency), directed=False)
    return int(n_comp), labels
