"""Holes: representative cycles, their geometry and what borders them (paper eqs. 14-18).

A hole is an H1 bar of the spectral Rips filtration (see :mod:`.persistence`). Its boundary
``V_k`` (eq. 14) is taken here as a *representative cycle*: a closed loop of data points made of
the bar's birth edge ``(u, v)`` plus the shortest path from ``v`` back to ``u`` through edges
that are already present just before the birth value. That loop exists exactly because the
birth edge creates a new 1-cycle, and following shortest paths makes it hug the hole. (The
paper read ``V_k`` off the cocycle; a cocycle's edges *cut across* the loop, so their vertices
are a scattered band, not the boundary.)

From the loop: center ``c_k`` = mean of its points (eq. 15), size ``|V_k|``, radius ``r_k`` =
median distance of its points to the center (eq. 16), the volume of the d-ball of that radius as
a logarithm (eq. 17; ``d = 1024`` would overflow a float otherwise), and boundary samples: each
loop point's ``k_b`` nearest neighbours that lie within ``alpha`` times the median ``k_b``-th
neighbour distance of the loop points (eq. 18, ``alpha = 1.5``; ``k_b`` is the knob
``boundary_n_neighbors`` of :class:`BoundaryConfig`). Eq. 18 uses Euclidean distances in the
embedding, as in the paper (on unit vectors the Euclidean distance is ``sqrt(2 x cosine
distance)``, so the cosine version used before needed ``alpha**2`` to select the same rows).
Term frequencies of the boundary samples' metadata say what borders the hole. The search that
finds the bars is :mod:`.search`.

Stability (:func:`hole_stability`): the search is rerun on several landmark draws (random
subsamples of the rows, then the configured landmark method); each reference hole is matched to
the draw's hole whose boundary rows overlap it most (Jaccard index) and the matched hole's
persistence is kept.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra
from scipy.special import gammaln

from skinmap.analysis.knn import VectorIndex
from skinmap.analysis.topology.graph import build_row_index
from skinmap.analysis.topology.persistence import (
    NullMethod,
    max_statistic_p_values,
    null_persistence_draws,
    rank_p_values,
    ratio_to_next,
)
from skinmap.analysis.topology.search import HoleSearch, HoleSearchConfig, search_holes, top_persistence
from skinmap.config import check_knobs, knob, with_knobs

__all__ = [
    "BoundaryConfig",
    "StabilityConfig",
    "Hole",
    "representative_cycle",
    "log_ball_volume",
    "hole_geometry",
    "boundary_samples",
    "describe_holes",
    "HoleFinding",
    "find_holes",
    "planted_overlap",
    "jaccard",
    "match_holes",
    "hole_stability",
    "term_frequencies",
]


@dataclass(frozen=True)
class BoundaryConfig:
    """The knobs of a hole's boundary samples (eq. 18), defaults and ranges."""

    boundary_n_neighbors: int = knob(10, ge=1, le=1000,
                                     description="neighbours per cycle point for boundary samples (k_b of eq. 18)")
    alpha: float = knob(1.5, gt=0.0, le=10.0,
                        description="boundary radius = alpha x median k_b-th neighbour distance (eq. 18)")

    def __post_init__(self) -> None:
        check_knobs(self)


@dataclass(frozen=True)
class StabilityConfig:
    """The knobs of the landmark-draw stability of the top holes (:func:`hole_stability`)."""

    n_draws: int = knob(5, ge=0, le=100, description="landmark draws the top holes are searched again on")
    fraction: float = knob(0.8, gt=0.0, le=1.0,
                           description="share of the rows each draw subsamples before choosing its landmarks")

    def __post_init__(self) -> None:
        check_knobs(self)


# ----------------------------------------------------------------------------- cycles


def representative_cycle(
    dist: np.ndarray, birth: float, cocycle: np.ndarray | None = None
) -> np.ndarray:
    """A closed loop of points born with an H1 bar: birth edge + shortest path before birth.

    ``dist`` is the matrix the filtration ran on and ``birth`` the bar's birth value (Ripser
    works in float32, so edges are matched in float32). The birth edge is an edge of length
    ``birth`` whose ends are already connected by shorter edges (otherwise it would merge two
    components, an H0 event); among several, one on the bar's cocycle is preferred.

    Returns positions ``[u, p_1, ..., p_m, v]`` in loop order; the loop closes with the birth
    edge ``v -> u``. Raises ``ValueError`` if no such edge exists.
    """
    d32 = np.asarray(dist, dtype=np.float32)
    b32 = np.float32(birth)
    iu, ju = np.nonzero(np.triu(d32 == b32, 1))
    if iu.size == 0:
        raise ValueError(f"no edge of length {birth!r} in the distance matrix")
    candidates = list(zip(iu.tolist(), ju.tolist()))
    if cocycle is not None and len(cocycle):
        on_cocycle = {(min(a, b), max(a, b)) for a, b in cocycle[:, :2].tolist()}
        candidates.sort(key=lambda e: e not in on_cocycle)
    before = _edge_graph(dist, d32 < b32)
    for u, v in candidates:
        path = _shortest_path(before, u, v)
        if path is not None:
            return path
    # Ties: edges of the birth length that Ripser ordered before the birth edge are present
    # too; allow every edge of length <= birth except the birth edge itself.
    at_birth = _edge_graph(dist, d32 <= b32)
    for u, v in candidates:
        g = at_birth.tolil()
        g[u, v] = 0
        g[v, u] = 0
        path = _shortest_path(g.tocsr(), u, v)
        if path is not None:
            return path
    raise ValueError(f"no edge of length {birth!r} closes a cycle (is this an H1 birth?)")


def _edge_graph(dist: np.ndarray, mask: np.ndarray) -> sp.csr_matrix:
    rows, cols = np.nonzero(mask)
    off = rows != cols
    rows, cols = rows[off], cols[off]
    # Tiny offset: zero-length edges (duplicates) must stay edges in the sparse graph.
    weights = np.asarray(dist, dtype=np.float64)[rows, cols] + 1e-12
    return sp.csr_matrix((weights, (rows, cols)), shape=mask.shape)


def _shortest_path(graph: sp.csr_matrix, u: int, v: int) -> np.ndarray | None:
    graph.eliminate_zeros()
    _, pred = dijkstra(graph, directed=False, indices=u, return_predecessors=True)
    if pred[v] < 0:
        return None  # v not reachable: the edge (u, v) would join components (an H0 event)
    path = [v]
    while path[-1] != u:
        path.append(int(pred[path[-1]]))
    return np.asarray(path[::-1], dtype=np.int64)


# ----------------------------------------------------------------------------- geometry


def log_ball_volume(radius: float, dim: int) -> float:
    """``log`` of the volume of a ``dim``-ball of ``radius`` (eq. 17), overflow-free.

    ``log V = (d/2) log(pi) - log Gamma(d/2 + 1) + d log r``; ``-inf`` for ``radius = 0``.
    """
    if dim < 1:
        raise ValueError(f"dimension must be >= 1, got {dim}")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if radius == 0:
        return float("-inf")
    return float(0.5 * dim * np.log(np.pi) - gammaln(0.5 * dim + 1.0) + dim * np.log(radius))


def hole_geometry(z: np.ndarray, cycle_rows: np.ndarray) -> dict:
    """Center (eq. 15), size, radius (eq. 16) and log-volume (eq. 17) of a loop in ``z``."""
    pts = np.asarray(z[np.asarray(cycle_rows, dtype=np.int64)], dtype=np.float64)  # only the loop's rows
    if pts.shape[0] == 0:
        raise ValueError("empty cycle")
    center = pts.mean(axis=0)
    radius = float(np.median(np.linalg.norm(pts - center, axis=1)))
    return {
        "center": center,
        "size": int(pts.shape[0]),
        "radius": radius,
        "log_volume": log_ball_volume(radius, z.shape[1]),
    }


def _euclidean_neighbours(
    z: np.ndarray, rows: np.ndarray, k: int, *, chunk: int = 16_384, index: VectorIndex | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest other rows of ``z[rows]`` in Euclidean distance, nearest first.

    Returns ``(indices, distances)``, each ``(len(rows), min(k, n - 1))``; a row is never its own
    neighbour (by identity: exact duplicates stay neighbours at distance 0); ties go to the lower
    row. Candidates come from a brute-force pass over chunks of ``z`` (a memmap is read once, in
    order; float32 data is screened in float32 after centring on the queries, keeping
    ``2k + 8`` candidates), or, with ``index`` (a cosine :class:`VectorIndex` over all rows of
    ``z``), from its ``2k + 8`` most similar rows (the same rows when ``z``'s rows have one norm
    and the index is exact). Candidates are then ranked by float64 distance. Memory
    ``O(len(rows) * (chunk + k))``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    n = len(z)
    k = min(k, n - 1)
    queries = np.asarray(z[rows], dtype=np.float64)
    n_cand = min(2 * k + 8, n)
    if index is not None:
        if index.ntotal != n:
            raise ValueError(f"index holds {index.ntotal} rows, z has {n}")
        cand = index.search(z, n_cand, rows=rows).indices
    else:
        cand = _screen_neighbours(z, rows, queries, n_cand, chunk)
    return _rank_candidates(z, rows, queries, cand, k)


def _screen_neighbours(z, rows: np.ndarray, queries: np.ndarray, n_cand: int, chunk: int) -> np.ndarray:
    """Brute-force candidate rows (``n_cand`` per query, self excluded) over chunks of ``z``."""
    work = np.float64 if np.asarray(z[:1]).dtype == np.float64 else np.float32
    offset = queries.mean(axis=0)  # distances are translation invariant; centring keeps float32 accurate
    q = (queries - offset).astype(work)
    off = offset.astype(work)
    q_sq = np.einsum("ij,ij->i", q, q)
    best_d = np.full((len(rows), 0), np.inf, dtype=work)
    best_i = np.zeros((len(rows), 0), dtype=np.int64)
    for start in range(0, len(z), chunk):
        block = np.asarray(z[start : start + chunk], dtype=work) - off
        d2 = q_sq[:, None] + np.einsum("ij,ij->i", block, block)[None, :] - 2.0 * (q @ block.T)
        own = (rows >= start) & (rows < start + len(block))
        d2[np.flatnonzero(own), rows[own] - start] = np.inf  # not itself
        idx = np.broadcast_to(np.arange(start, start + len(block)), d2.shape)
        cand_d = np.concatenate([best_d, d2], axis=1)
        cand_i = np.concatenate([best_i, idx], axis=1)
        if cand_d.shape[1] > n_cand:
            keep = np.argpartition(cand_d, n_cand - 1, axis=1)[:, :n_cand]
            cand_d = np.take_along_axis(cand_d, keep, axis=1)
            cand_i = np.take_along_axis(cand_i, keep, axis=1)
        best_d, best_i = cand_d, cand_i
    return best_i


def _rank_candidates(
    z, rows: np.ndarray, queries: np.ndarray, cand: np.ndarray, k: int, batch: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest of each query's candidate rows by float64 distance (self and -1 dropped)."""
    out_i = np.full((len(rows), k), -1, dtype=np.int64)
    out_d = np.full((len(rows), k), np.inf)
    for s in range(0, len(rows), batch):
        c = cand[s : s + batch]
        flat = np.unique(c[c >= 0])
        pos = np.searchsorted(flat, np.where(c >= 0, c, flat[0] if flat.size else 0))
        pts = np.asarray(z[flat], dtype=np.float64)
        d = np.sqrt(((pts[pos] - queries[s : s + batch, None, :]) ** 2).sum(-1))
        d[(c < 0) | (c == rows[s : s + batch, None])] = np.inf
        for j in range(c.shape[0]):
            order = np.lexsort((c[j], d[j]))[:k]
            order = order[np.isfinite(d[j, order])]
            out_i[s + j, : order.size] = c[j, order]
            out_d[s + j, : order.size] = d[j, order]
    return out_i, out_d


def boundary_samples(
    z: np.ndarray,
    cycle_rows: np.ndarray,
    config: BoundaryConfig | None = None,
    *,
    index: VectorIndex | None = None,
    **knobs,
) -> np.ndarray:
    """Rows bordering a hole (eq. 18): the loop points and their close neighbours.

    For each loop point its ``k_b`` (``boundary_n_neighbors``) nearest neighbours among all rows
    of ``z`` in Euclidean distance (itself excluded) are kept when closer than ``alpha`` times
    the median, over the loop points, of their ``k_b``-th neighbour distance. ``index`` (a cosine
    :class:`~skinmap.analysis.knn.VectorIndex` over all rows of ``z``) supplies the neighbour
    candidates instead of a brute-force pass (see :func:`_euclidean_neighbours`). Returns sorted
    unique rows including the loop points themselves.
    """
    cfg = with_knobs(BoundaryConfig, config, knobs)
    cycle_rows = np.unique(np.asarray(cycle_rows, dtype=np.int64))
    if len(z) < 2 or cycle_rows.size == 0:
        return cycle_rows
    idx, dist = _euclidean_neighbours(z, cycle_rows, cfg.boundary_n_neighbors, index=index)
    return _boundary_from_neighbours(cycle_rows, idx, dist, cfg.alpha)


def _boundary_from_neighbours(cycle_rows: np.ndarray, idx: np.ndarray, dist: np.ndarray, alpha: float) -> np.ndarray:
    """Eq. 18 given each (sorted, unique) loop point's neighbour rows and distances."""
    radius = alpha * float(np.median(dist[:, -1]))
    return np.unique(np.concatenate([cycle_rows, idx[dist <= radius]]))


# ----------------------------------------------------------------------------- holes


@dataclass(frozen=True)
class Hole:
    """One described hole; every row index refers to ``z`` (the fused embedding's rows).

    ``p_value`` is max-statistic adjusted (against each null round's largest persistence);
    ``p_value_unadjusted`` is rank-matched (against each null round's bar of the same rank).
    """

    rank: int
    birth: float
    death: float
    persistence: float
    ratio_to_next: float
    p_value: float | None
    p_value_unadjusted: float | None
    cycle: list[int]
    center: list[float]
    size: int
    radius: float
    log_volume: float | None
    boundary: list[int]

    def to_json(self) -> dict:
        """A JSON-ready dict (``-inf`` log-volume and infinite ratios written as ``null``)."""
        out = asdict(self)
        for key in ("ratio_to_next", "log_volume", "p_value", "p_value_unadjusted"):
            v = out[key]
            if v is not None and not np.isfinite(v):
                out[key] = None
        return out


def describe_holes(
    z: np.ndarray,
    search: HoleSearch,
    boundary: BoundaryConfig | None = None,
    *,
    n_holes: int = 3,
    null_draws: np.ndarray | None = None,
    index: VectorIndex | None = None,
    **boundary_knobs,
) -> list[Hole]:
    """The ``n_holes`` most persistent holes with cycles, geometry and boundary samples (eqs. 14-18).

    ``boundary`` (single knobs also as keyword arguments) sets the boundary samples.
    ``null_draws`` (``(n_rounds, n_top)`` from
    :func:`~skinmap.analysis.topology.persistence.null_persistence_draws`, or 1-D null maxima)
    gives each hole its max-statistic adjusted p-value (``p_value``) and its rank-matched,
    unadjusted one (``p_value_unadjusted``); without it both are ``None``. The boundary samples of
    all holes come from one neighbour search over the union of their loops (one pass over the
    rows of ``z``, or ``index``, see :func:`boundary_samples`).
    """
    boundary = with_knobs(BoundaryConfig, boundary, boundary_knobs)
    diag = search.diagram
    ratios = ratio_to_next(diag.persistence)
    n_top = min(n_holes, len(diag))
    if null_draws is not None:
        p_rank = rank_p_values(diag.persistence[:n_top], null_draws)
        p_adj = max_statistic_p_values(diag.persistence[:n_top], null_draws)
    rows_of = search.rips_rows
    cycles = {}
    for rank in range(n_top):
        try:
            pos = representative_cycle(diag.distance, diag.births[rank], diag.cocycles[rank])
        except ValueError as exc:  # not expected for Ripser bars; never silently drop one
            warnings.warn(f"H1 bar {rank + 1} has no representative cycle ({exc}); skipped", stacklevel=2)
            continue
        cycles[rank] = rows_of[pos]
    loop_rows = np.unique(np.concatenate(list(cycles.values()))) if cycles else np.zeros(0, np.int64)
    if len(z) >= 2 and loop_rows.size:
        nb_idx, nb_dist = _euclidean_neighbours(z, loop_rows, boundary.boundary_n_neighbors, index=index)
    holes = []
    for rank, cycle in cycles.items():
        geom = hole_geometry(z, cycle)
        pers = float(diag.persistence[rank])
        own = np.unique(cycle)
        if len(z) >= 2:
            at = np.searchsorted(loop_rows, own)
            border = _boundary_from_neighbours(own, nb_idx[at], nb_dist[at], boundary.alpha)
        else:
            border = own
        holes.append(
            Hole(
                rank=rank + 1,
                birth=float(diag.births[rank]),
                death=float(diag.deaths[rank]),
                persistence=pers,
                ratio_to_next=float(ratios[rank]),
                p_value=None if null_draws is None else float(p_adj[rank]),
                p_value_unadjusted=None if null_draws is None or np.isnan(p_rank[rank]) else float(p_rank[rank]),
                cycle=[int(r) for r in cycle],
                center=[float(c) for c in geom["center"]],
                size=geom["size"],
                radius=geom["radius"],
                log_volume=geom["log_volume"],
                boundary=[int(r) for r in border],
            )
        )
    return holes


@dataclass(frozen=True)
class HoleFinding:
    """What :func:`find_holes` produced: the search, the described holes, the null and timings."""

    search: HoleSearch
    holes: list[Hole]
    null_draws: np.ndarray | None
    seconds: dict[str, float]


def find_holes(
    z: np.ndarray,
    config: HoleSearchConfig | None = None,
    boundary: BoundaryConfig | None = None,
    *,
    strata: Sequence | None = None,
    n_holes: int = 3,
    null_rounds: int = 0,
    null_method: NullMethod = "shuffle",
    blas_threads: int | None = 1,
    n_jobs: int | None = None,
    progress: bool = False,
) -> HoleFinding:
    """The whole hole step: landmarks, corrected resistance, H1 with cycles, boundary samples (eqs. 9-18).

    :func:`~skinmap.analysis.topology.search.search_holes`, then (``null_rounds > 0``) the
    significance null on the observed landmarks
    (:func:`~skinmap.analysis.topology.persistence.null_persistence_draws` of
    :func:`~skinmap.analysis.topology.search.top_persistence`, seeded by ``config.seed``), then
    :func:`describe_holes`. When landmark selection needs neighbours among all rows (trimmed
    farthest-point with ``landmark_density_rows="all"``) and ``config.search_method`` is "ivf",
    one :class:`~skinmap.analysis.knn.VectorIndex` over all rows serves both the landmark density
    and the boundary samples; otherwise the boundary samples are exact (one brute-force pass over
    the rows for all holes together).

    Parameters
    ----------
    z : array of shape (n, d)
        The embedding; a float32 memmap is read in chunks (no full copy).
    config, boundary : HoleSearchConfig, BoundaryConfig, optional
        The knobs of the search and of the boundary samples.
    strata : sequence of length n, optional
        Labels of stratified landmarks and of the stratified landmark pool.
    n_holes : int
        Top holes described.
    null_rounds : int
        Null data sets (0: no p-values).
    null_method : {"shuffle", "resample"}
        The null (:func:`~skinmap.analysis.topology.persistence.null_persistence_draws`).
    blas_threads : int or None
        BLAS threads of every stage (see :mod:`~skinmap.analysis.topology.search`).
    n_jobs : int or None
        Worker processes of the null rounds (as in
        :func:`~skinmap.analysis.topology.persistence.null_persistence_draws`; the draws do not
        depend on it).
    progress : bool
        tqdm bars on stderr.

    Returns
    -------
    HoleFinding
        ``search``, ``holes``, ``null_draws`` (``(null_rounds, n_holes)`` or None) and ``seconds``
        per stage: ``index``, ``landmarks``, ``resistance``, ``ripser``, ``null``, ``describe``
        and ``null_per_round``.
    """
    cfg = config if config is not None else HoleSearchConfig()
    boundary = boundary if boundary is not None else BoundaryConfig()
    seconds = {}
    t0 = time.perf_counter()
    index = None
    if cfg.search_method != "exact" and cfg.needs_row_index and cfg.n_landmarks < len(z):
        index = build_row_index(z, cfg.search)
    seconds["index"] = time.perf_counter() - t0
    search = search_holes(z, cfg, strata=strata, blas_threads=blas_threads, index=index, progress=progress)
    seconds.update(search.seconds)
    t0 = time.perf_counter()
    null_draws = None
    if null_rounds:
        null_draws = null_persistence_draws(
            z[search.landmarks], lambda x: top_persistence(x, cfg, n_top=n_holes, blas_threads=blas_threads),
            n_rounds=null_rounds, n_top=n_holes, method=null_method, seed=cfg.seed, blas_threads=blas_threads,
            n_jobs=n_jobs, progress=progress)
    seconds["null"] = time.perf_counter() - t0
    seconds["null_per_round"] = seconds["null"] / max(null_rounds, 1)
    t0 = time.perf_counter()
    holes = describe_holes(z, search, boundary, n_holes=n_holes, null_draws=null_draws, index=index)
    seconds["describe"] = time.perf_counter() - t0
    return HoleFinding(search, holes, null_draws, seconds)


def planted_overlap(holes: Sequence[Hole], planted_rows: Sequence[int]) -> pd.DataFrame:
    """How well each hole's cycle and boundary cover a planted ring of rows (ground truth).

    Per hole: rows of the planted ring among the boundary samples (``recall`` of the ring),
    share of boundary samples that belong to the ring (``precision``), and the share of the
    cycle's points that are ring rows.
    """
    ring = set(int(r) for r in planted_rows)
    out = []
    for h in holes:
        b, c = set(h.boundary), set(h.cycle)
        out.append({
            "rank": h.rank,
            "ring_in_boundary": len(ring & b),
            "recall": len(ring & b) / max(len(ring), 1),
            "precision": len(ring & b) / max(len(b), 1),
            "cycle_on_ring": len(ring & c) / max(len(c), 1),
        })
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------- stability


def jaccard(a: Sequence[int], b: Sequence[int]) -> float:
    """``|a & b| / |a | b|`` of two row sets (1 for two empty sets)."""
    sa, sb = set(int(i) for i in a), set(int(i) for i in b)
    union = sa | sb
    return 1.0 if not union else len(sa & sb) / len(union)


def match_holes(
    reference: Sequence[Sequence[int]], candidates: Sequence[Sequence[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """For each reference boundary, the candidate with the largest Jaccard index.

    Returns ``(index, jaccard)``, each of shape ``(len(reference),)``; index -1 and Jaccard 0
    when there is no candidate. Matching is per reference hole (two may pick the same candidate).
    """
    idx = np.full(len(reference), -1, dtype=np.int64)
    jac = np.zeros(len(reference))
    for i, ref in enumerate(reference):
        scores = [jaccard(ref, c) for c in candidates]
        if scores:
            idx[i] = int(np.argmax(scores))
            jac[i] = scores[idx[i]]
    return idx, jac


def hole_stability(
    z: np.ndarray,
    holes: Sequence[Hole],
    search_config: HoleSearchConfig,
    boundary: BoundaryConfig | None = None,
    stability: StabilityConfig | None = None,
    *,
    strata: Sequence | None = None,
    seed: int = 0,
    blas_threads: int | None = 1,
    **stability_knobs,
) -> pd.DataFrame:
    """The reference holes searched again on ``n_draws`` landmark draws (boundary Jaccard, persistence).

    Draw ``i`` keeps a random ``fraction`` of the rows (seeded by ``seed + i``, without
    replacement), picks its landmarks among them with ``search_config``, searches and describes
    ``len(holes)`` holes (boundary samples among all rows of ``z``), and matches each reference
    hole to the draw's hole with the most similar boundary rows (:func:`match_holes`). A draw's
    graph has fewer nodes when ``fraction < 1`` and every row is a landmark, and resistances grow
    with graph size, so matched persistences compare within a draw better than across draws.
    ``blas_threads`` as in :func:`~skinmap.analysis.topology.search.search_holes`.

    Returns
    -------
    DataFrame
        One row per (draw, reference hole): ``draw, rank, matched_rank, jaccard, persistence``
        (the reference's) and ``matched_persistence`` (NaN when the draw found no hole).
    """
    stab = with_knobs(StabilityConfig, stability, stability_knobs)
    boundary = boundary if boundary is not None else BoundaryConfig()
    from threadpoolctl import threadpool_limits

    reference = [h.boundary for h in holes]
    out = []
    n = len(z)
    limits = threadpool_limits(limits=blas_threads, user_api="blas") if blas_threads else nullcontext()
    with limits:
        for draw in range(stab.n_draws):
            rng = np.random.default_rng(seed + draw)
            size = max(int(round(stab.fraction * n)), 3)
            rows = np.arange(n) if size >= n else np.sort(rng.choice(n, size=size, replace=False))
            sub_strata = None if strata is None else [strata[r] for r in rows]
            found = search_holes(z[rows], search_config, strata=sub_strata, blas_threads=blas_threads)
            found = HoleSearch(rows[found.landmarks], found.adjacency, found.diagram)  # rows of z
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                draw_holes = describe_holes(z, found, boundary, n_holes=len(holes))
            idx, jac = match_holes(reference, [h.boundary for h in draw_holes])
            for h, i, j in zip(holes, idx, jac):
                out.append({
                    "draw": draw, "rank": h.rank,
                    "matched_rank": int(draw_holes[i].rank) if i >= 0 else -1,
                    "jaccard": float(j), "persistence": h.persistence,
                    "matched_persistence": float(draw_holes[i].persistence) if i >= 0 else np.nan,
                })
    cols = ["draw", "rank", "matched_rank", "jaccard", "persistence", "matched_persistence"]
    return pd.DataFrame(out, columns=cols)


# ----------------------------------------------------------------------------- metadata


def term_frequencies(metadata: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Counts of each value per metadata column: ``column, term, count, share``.

    ``share`` is the count over the rows with a known value in that column; missing values are
    counted separately as the term ``"(missing)"`` with share over all rows.
    """
    parts = []
    n = len(metadata)
    for col in columns:
        if col not in metadata.columns:
            raise KeyError(f"metadata has no column {col!r}")
        values = metadata[col]
        known = values.dropna().astype(str)
        counts = known.value_counts()
        df = pd.DataFrame({"column": col, "term": counts.index, "count": counts.to_numpy()})
        df["share"] = df["count"] / max(len(known), 1)
        n_missing = n - len(known)
        if n_missing:
            df = pd.concat(
                [df, pd.DataFrame({"column": [col], "term": ["(missing)"], "count": [n_missing],
                                   "share": [n_missing / max(n, 1)]})],
                ignore_index=True,
            )
        parts.append(df)
    if not parts:
        return pd.DataFrame(columns=["column", "term", "count", "share"])
    return pd.concat(parts, ignore_index=True)
