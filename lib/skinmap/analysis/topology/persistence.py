"""H1 persistence of a distance matrix with Ripser, ranking and significance (eqs. 12-13).

Ripser computes the Vietoris-Rips persistence (eq. 12) of a dense distance matrix; a hole's
persistence is ``death - birth`` (eq. 13). Ripser's H1 cost grows roughly with the cube of the
number of points on metrics as concentrated as effective resistance in high dimensions (measured
on this project's 2-core machine: ~8 s at 1,000 points, ~75 s at 2,000), so the filtration runs
on at most ``max_points`` rows picked by a greedy permutation (farthest-point sampling in the
same metric). Its covering radius ``r_cover`` bounds the error: the subsample's diagram is within
bottleneck distance ``2 * r_cover`` of the full one (Gromov-Hausdorff stability of Rips).

Significance is always relative to the rest of the diagram, never an absolute threshold alone:
``ratio_to_next`` (a bar's persistence over the next-ranked bar's, descriptive) and Monte Carlo
p-values against null data sets (:func:`null_persistence_draws`: per null round the largest
``n_top`` persistences of the same pipeline). A p-value is ``(1 + #{null >= observed}) /
(1 + n_null)`` (Davison & Hinkley 1997, eq. 4.11; never below ``1 / (1 + n_null)``, so reaching
0.01 takes 99 rounds, :func:`min_null_rounds`). Several holes are examined at once, so the p-value
reported is adjusted by the *max-statistic* (single-step max-T, Westfall & Young 1993): every
observed bar is compared with the largest persistence of each null diagram
(:func:`max_statistic_p_values`), which controls the family-wise error over *all* bars of the
diagram, not only the top ones described. The unadjusted, rank-matched p-value (bar ``k`` against
the null's ``k``-th largest persistence, :func:`rank_p_values`) is exported beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from skinmap.config import check_choice, check_range

__all__ = [
    "H1Diagram",
    "greedy_permutation",
    "h1_persistence",
    "ratio_to_next",
    "null_max_persistence",
    "null_persistence_draws",
    "empirical_p_value",
    "rank_p_values",
    "max_statistic_p_values",
    "p_value_floor",
    "min_null_rounds",
    "shuffle_columns",
    "NullMethod",
    "LEVEL_BOUNDS",
]

#: Bounds of a significance level (a family-wise error rate above one half is not a test).
LEVEL_BOUNDS = {"gt": 0.0, "le": 0.5}

#: The null data sets of :func:`null_max_persistence`.
NullMethod = Literal["shuffle", "resample"]


@dataclass(frozen=True)
class H1Diagram:
    """H1 bars sorted by persistence, largest first.

    ``points`` are the rows (into the matrix given to :func:`h1_persistence`) the filtration ran
    on; cocycles and ``distance`` refer to positions within ``points``. Infinite deaths (only
    possible with a finite ``thresh``) are replaced by ``thresh``.
    """

    births: np.ndarray
    deaths: np.ndarray
    cocycles: list[np.ndarray]
    points: np.ndarray
    r_cover: float
    distance: np.ndarray = field(repr=False)

    @property
    def persistence(self) -> np.ndarray:
        """``death - birth`` per bar (eq. 13)."""
        return self.deaths - self.births

    def __len__(self) -> int:
        return int(self.births.size)


def greedy_permutation(dist: np.ndarray, n_points: int, *, start: int = 0) -> tuple[np.ndarray, float]:
    """Farthest-point order on a distance matrix: ``(first n_points rows, covering radius)``.

    The covering radius is the largest distance from any row to its nearest chosen row.
    """
    n = dist.shape[0]
    if n_points >= n:
        return np.arange(n), 0.0
    chosen = np.empty(n_points, dtype=np.int64)
    chosen[0] = start
    nearest = np.array(dist[start], dtype=np.float64)
    for i in range(1, n_points):
        nxt = int(np.argmax(nearest))
        chosen[i] = nxt
        np.minimum(nearest, dist[nxt], out=nearest)
    return np.sort(chosen), float(nearest.max())


def _upper_triangle_float32(dist: np.ndarray) -> np.ndarray:
    """Ripser's compressed layout (``dm[i, i+1:]`` row after row) without n^2 index arrays."""
    n = dist.shape[0]
    out = np.empty(n * (n - 1) // 2, dtype=np.float32)
    pos = 0
    for i in range(n - 1):
        seg = n - 1 - i
        out[pos : pos + seg] = dist[i, i + 1 :]
        pos += seg
    return out


def h1_persistence(
    dist: np.ndarray,
    *,
    max_points: int | None = None,
    thresh: float = np.inf,
    coeff: int = 2,
    cocycles: bool = True,
) -> H1Diagram:
    """Vietoris-Rips H1 diagram of a symmetric distance matrix with Ripser (eqs. 12-13).

    ``max_points``: run on a greedy-permutation subsample of that size (see module docstring);
    ``None`` uses every row. Cocycles are kept (they locate each bar's birth edge) unless
    ``cocycles=False`` (a null round needs persistences only; the list is then empty).
    """
    from pyRipser import doRipsFiltrationDM  # ripser's compiled core, called without its n^2 index grids

    dist = np.asarray(dist)
    if dist.ndim != 2 or dist.shape[0] != dist.shape[1]:
        raise ValueError(f"distance matrix must be square, got shape {dist.shape}")
    if not np.isfinite(dist).all():
        raise ValueError("distance matrix has non-finite entries")
    if dist.shape[0] and np.abs(np.diag(dist)).max() > 0:
        raise ValueError("distance matrix must have a zero diagonal")
    points, r_cover = (np.arange(dist.shape[0]), 0.0)
    if max_points is not None and max_points < dist.shape[0]:
        points, r_cover = greedy_permutation(dist, max_points)
        dist = dist[np.ix_(points, points)]
    empty = np.zeros(0)
    if dist.shape[0] < 3:
        return H1Diagram(empty, empty, [], points, r_cover, dist)
    res = doRipsFiltrationDM(_upper_triangle_float32(dist), 1, thresh, coeff, cocycles)
    pairs = np.asarray(res["births_and_deaths_by_dim"][1], dtype=np.float64).reshape(-1, 2)
    cocycle_list = []
    for ccl in (res["cocycles_by_dim"][1] if cocycles else []):
        arr = np.asarray(ccl, dtype=np.int64).reshape(-1, 3)
        arr[:, 2] %= coeff
        cocycle_list.append(arr)
    births, deaths = pairs[:, 0], pairs[:, 1]
    deaths = np.where(np.isfinite(deaths), deaths, thresh if np.isfinite(thresh) else np.nan)
    pers = deaths - births
    order = np.argsort(-np.nan_to_num(pers, nan=np.inf), kind="stable")
    return H1Diagram(
        births[order], deaths[order], [cocycle_list[i] for i in order] if cocycles else [], points, r_cover, dist
    )


def ratio_to_next(persistence: np.ndarray) -> np.ndarray:
    """Each bar's persistence over the next-ranked one's (``inf`` for the last bar).

    Expects persistence sorted in decreasing order. A planted hole shows up as a large ratio at
    rank 1 and ratios near 1 among noise bars.
    """
    p = np.asarray(persistence, dtype=np.float64)
    out = np.full(p.size, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[:-1] = p[:-1] / p[1:]
    return out


def shuffle_columns(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Permute each column independently: keeps every marginal, destroys joint structure."""
    out = np.array(x, copy=True)
    for j in range(out.shape[1]):
        out[:, j] = out[rng.permutation(out.shape[0]), j]
    return out


#: A round that took longer than this (seconds) sends the remaining rounds to worker processes
#: when ``n_jobs`` is None: starting a worker (imports, about 2 s) costs less than one such round.
PARALLEL_ROUND_SECONDS = 1.0


def _null_data_sets(x: np.ndarray, n_rounds: int, method: NullMethod, rng: np.random.Generator):
    """Yield the ``n_rounds`` null data sets of ``x``, in order, from one seeded stream."""
    for _ in range(n_rounds):
        if method == "shuffle":
            yield shuffle_columns(x, rng)
        else:
            yield np.asarray(x)[rng.integers(0, len(x), len(x))]


def null_max_persistence(
    x: np.ndarray,
    max_persistence: Callable[[np.ndarray], float],
    *,
    n_rounds: int = 10,
    method: NullMethod = "shuffle",
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """Largest H1 persistence of ``n_rounds`` null data sets built from ``x``.

    ``method="shuffle"``: columns permuted independently (:func:`shuffle_columns`), the null of
    no joint structure. ``method="resample"``: rows drawn with replacement (a bootstrap of the
    top persistence: its variability under resampling rather than a no-structure null).
    ``max_persistence`` runs the whole pipeline (graph, resistance, Ripser) on one data set.
    """
    return null_persistence_draws(x, lambda xr: [max_persistence(xr)], n_rounds=n_rounds, n_top=1, method=method,
                                  seed=seed, blas_threads=None, n_jobs=1, progress=progress)[:, 0]


def _round_top(top_persistence: Callable[[np.ndarray], np.ndarray], xr: np.ndarray, n_top: int,
               blas_threads: int | None) -> np.ndarray:
    """One round: ``top_persistence(xr)``, largest first, cut or zero-padded to ``n_top``."""
    from threadpoolctl import threadpool_limits

    limits = threadpool_limits(limits=blas_threads, user_api="blas") if blas_threads else nullcontext()
    with limits:
        pers = np.sort(np.asarray(top_persistence(xr), dtype=np.float64).ravel())[::-1][:n_top]
    out = np.zeros(n_top)
    out[: pers.size] = pers
    return out


def null_persistence_draws(
    x: np.ndarray,
    top_persistence: Callable[[np.ndarray], np.ndarray],
    *,
    n_rounds: int,
    n_top: int = 1,
    method: NullMethod = "shuffle",
    seed: int = 0,
    blas_threads: int | None = 1,
    n_jobs: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """The ``n_top`` largest H1 persistences of each of ``n_rounds`` null data sets built from ``x``.

    Parameters
    ----------
    x : ndarray of shape (n, d)
        The rows the observed diagram was computed on (the landmarks).
    top_persistence : callable
        Runs the observed pipeline on one data set and returns its persistences, largest first.
        With more than one job it must pickle (cloudpickle: closures and lambdas do).
    n_rounds : int
        Null data sets (Monte Carlo replicates).
    n_top : int
        Persistences kept per round (padded with 0 when a diagram has fewer bars).
    method : {"shuffle", "resample"}
        As in :func:`null_max_persistence`; the same seeded stream of null data sets.
    blas_threads : int or None
        BLAS threads during each round (``None``: leave as is); the holes pipeline sets its own
        (see :mod:`~skinmap.analysis.topology.search`), this guards other callables.
    n_jobs : int or None
        Worker processes for the rounds after the first (joblib's loky backend). ``None``: the
        CPUs this process may use when the first round took longer than
        :data:`PARALLEL_ROUND_SECONDS`, else 1. Round 0 always runs here (a failing callable
        fails with its own traceback), and every null data set is drawn here in round order, so
        the draws are the same whatever ``n_jobs``.

    Returns
    -------
    ndarray of shape (n_rounds, n_top)
        Row ``r`` holds round ``r``'s persistences sorted in decreasing order; column 0 is the
        null statistic of the max-statistic adjustment.
    """
    check_choice("null method", method, NullMethod)
    if n_top < 1:
        raise ValueError(f"n_top must be >= 1, got {n_top}")
    if n_jobs is not None and n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1 or None, got {n_jobs}")
    out = np.zeros((n_rounds, n_top))
    if n_rounds == 0:
        return out
    rounds = _null_data_sets(x, n_rounds, method, np.random.default_rng(seed))
    bar = tqdm(total=n_rounds, disable=not progress, desc=f"null ({method})")
    t0 = time.perf_counter()
    out[0] = _round_top(top_persistence, next(rounds), n_top, blas_threads)
    bar.update()
    jobs = n_jobs
    if jobs is None:
        from skinmap.analysis.frechet import _available_cpus

        jobs = _available_cpus() if time.perf_counter() - t0 > PARALLEL_ROUND_SECONDS else 1
    jobs = min(jobs, n_rounds - 1)
    if jobs > 1:
        # Each worker gets one data set at a time (joblib memory-maps large arrays); at most
        # 2 x jobs are drawn ahead, so memory stays bounded whatever n_rounds.
        from joblib import Parallel, delayed

        work = Parallel(n_jobs=jobs, backend="loky", return_as="generator", pre_dispatch="2*n_jobs")(
            delayed(_round_top)(top_persistence, xr, n_top, blas_threads) for xr in rounds)
    else:
        work = (_round_top(top_persistence, xr, n_top, blas_threads) for xr in rounds)
    for r, top in enumerate(work, start=1):
        out[r] = top
        bar.update()
    bar.close()
    return out


def empirical_p_value(observed: float, null: np.ndarray) -> float:
    """``(1 + #{null >= observed}) / (1 + n_null)`` (never exactly zero)."""
    null = np.asarray(null, dtype=np.float64)
    return float((1 + np.sum(null >= observed)) / (1 + null.size))


def p_value_floor(n_null: int) -> float:
    """The smallest attainable Monte Carlo p-value, ``1 / (1 + n_null)``."""
    if n_null < 0:
        raise ValueError(f"n_null must be >= 0, got {n_null}")
    return 1.0 / (1.0 + n_null)


def min_null_rounds(level: float) -> int:
    """The fewest null rounds whose p-value floor ``1 / (1 + n)`` is at most ``level``."""
    check_range("level", level, **LEVEL_BOUNDS)
    return max(int(np.ceil(1.0 / level - 1.0 - 1e-9)), 1)


def max_statistic_p_values(observed: np.ndarray, null_draws: np.ndarray) -> np.ndarray:
    """Max-statistic adjusted p-values of observed bars, shape ``(k,)``.

    Each observed persistence is compared with the *largest* persistence of every null round
    (column 0 of :func:`null_persistence_draws`, or a 1-D array of null maxima): single-step
    max-T, family-wise error control over all bars of the diagram.
    """
    null = np.asarray(null_draws, dtype=np.float64)
    null_max = null if null.ndim == 1 else null.max(axis=1)
    return np.array([empirical_p_value(o, null_max) for o in np.atleast_1d(observed)])


def rank_p_values(observed: np.ndarray, null_draws: np.ndarray) -> np.ndarray:
    """Unadjusted, rank-matched p-values: bar ``k`` against each round's ``k``-th persistence.

    ``null_draws`` has shape ``(n_rounds, n_top)``; bars ranked beyond ``n_top`` get NaN.
    """
    obs = np.atleast_1d(np.asarray(observed, dtype=np.float64))
    null = np.asarray(null_draws, dtype=np.float64)
    if null.ndim == 1:
        null = null[:, None]
    out = np.full(obs.size, np.nan)
    for k in range(min(obs.size, null.shape[1])):
        out[k] = empirical_p_value(obs[k], null[:, k])
    return out
