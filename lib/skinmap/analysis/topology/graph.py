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

from skinmap.analysis.knn import knn_search, l2_normalize

__all__ = [
    "farthest_point_landmarks",
    "knn_sparsity",
    "trimmed_farthest_landmarks",
    "stratified_landmarks",
    "select_landmarks",
    "symmetric_knn_graph",
    "graph_components",
]


def farthest_point_landmarks(
    x: np.ndarray, n_landmarks: int, *, seed: int = 0, progress: bool = False
) -> np.ndarray:
    """Greedy farthest-point (max-min) sample of ``n_landmarks`` rows under cosine distance.

    Starts from a seeded random row; each next landmark is the row whose cosine distance to its
    nearest landmark so far is largest. Cost ``O(n * n_landmarks * d)`` time, ``O(n)`` memory.
    Returns sorted row indices. Asking for at least ``n`` rows returns every row.
    """
    xn = l2_normalize(x)
    n = xn.shape[0]
    if n_landmarks < 1:
        raise ValueError(f"n_landmarks must be >= 1, got {n_landmarks}")
    if n_landmarks >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    chosen = np.empty(n_landmarks, dtype=np.int64)
    chosen[0] = rng.integers(n)
    nearest = 1.0 - xn @ xn[chosen[0]]
    nearest[chosen[0]] = -np.inf
    for step in tqdm(range(1, n_landmarks), disable=not progress, desc="farthest-point landmarks"):
        nxt = int(np.argmax(nearest))
        chosen[step] = nxt
        np.minimum(nearest, 1.0 - xn @ xn[nxt], out=nearest)
        nearest[chosen[: step + 1]] = -np.inf  # duplicates of a landmark also have distance 0
    return np.sort(chosen)


def knn_sparsity(x: np.ndarray, n_neighbors: int) -> np.ndarray:
    """Cosine distance of each row to its ``n_neighbors``-th nearest other row, shape ``(n,)``.

    A k-NN density proxy: large values are rows in the lowest-density tail (isolated points).
    """
    n = len(x)
    if not 1 <= n_neighbors < n:
        raise ValueError(f"n_neighbors must be in [1, n-1] = [1, {n - 1}], got {n_neighbors}")
    res = knn_search(x, x, n_neighbors, exclude_self=True)
    return res.distances[:, n_neighbors - 1].astype(np.float64)


def trimmed_farthest_landmarks(
    x: np.ndarray,
    n_landmarks: int,
    *,
    trim_fraction: float = 0.025,
    n_neighbors: int = 10,
    seed: int = 0,
) -> np.ndarray:
    """Farthest-point landmarks among the rows left after dropping the lowest-density tail.

    The ``ceil(trim_fraction * n)`` rows with the largest :func:`knn_sparsity` are removed (never
    so many that fewer than ``n_landmarks`` rows remain), then :func:`farthest_point_landmarks`
    runs on the rest: even coverage of the bulk, without spending landmarks on isolated outliers.
    Returns sorted row indices of ``x``; at least ``n`` landmarks asked for returns every row.
    """
    n = len(x)
    if n_landmarks < 1:
        raise ValueError(f"n_landmarks must be >= 1, got {n_landmarks}")
    if not 0.0 <= trim_fraction < 1.0:
        raise ValueError(f"trim_fraction must be in [0, 1), got {trim_fraction}")
    if n_landmarks >= n:
        return np.arange(n)
    n_trim = min(int(np.ceil(trim_fraction * n)), n - n_landmarks)
    if n_trim <= 0:
        return farthest_point_landmarks(x, n_landmarks, seed=seed)
    sparsity = knn_sparsity(x, min(n_neighbors, n - 1))
    keep = np.sort(np.argsort(-sparsity, kind="stable")[n_trim:])
    return keep[farthest_point_landmarks(x[keep], n_landmarks, seed=seed)]


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
) -> np.ndarray:
    """Landmark rows by ``method`` in {"farthest", "trimmed_farthest", "stratified", "random", "all"}.

    ``trim_fraction`` and ``density_n_neighbors`` are used by "trimmed_farthest" only (see
    :func:`trimmed_farthest_landmarks`). Returns every row when ``n_landmarks >= len(x)``
    whatever the method.
    """
    n = len(x)
    if method == "all" or n_landmarks >= n:
        return np.arange(n)
    if method == "farthest":
        return farthest_point_landmarks(x, n_landmarks, seed=seed)
    if method == "trimmed_farthest":
        return trimmed_farthest_landmarks(x, n_landmarks, trim_fraction=trim_fraction,
                                          n_neighbors=density_n_neighbors, seed=seed)
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
