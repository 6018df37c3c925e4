"""Dataset similarity by the Fréchet distance between Gaussian fits (paper eqs. 7-8).

Each dataset ``a`` is summarised by the mean ``mu_a`` and covariance ``S_a`` (divisor ``n - 1``) of
its l2-normalised embeddings (eq. 7). Two datasets are compared by (eq. 8)

    FD(a, b) = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}).

Low FD = homologous datasets (subsets, re-releases, shared lineage); the *uniqueness* of a
dataset is its mean FD to all others.

Trace term without a general matrix square root. ``S_a S_b`` is not symmetric, and the usual
``scipy.linalg.sqrtm(S_a @ S_b)`` (a Schur decomposition per pair) is slow and returns complex or
NaN values for singular covariances. The eigenvalues of ``(S_a S_b)^{1/2}`` are the square roots
of those of ``S_a S_b``, which for any factor ``S_b = F_b F_b^T`` are those of the symmetric PSD
matrix ``F_b^T S_a F_b`` (``eig(XY) = eig(YX)`` for the non-zero ones), so

    Tr (S_a S_b)^{1/2} = sum_i sqrt(lambda_i(F_b^T S_a F_b)),

one symmetric eigenvalue problem per pair (eigenvalues only). Each covariance is factored once:

* numerically positive definite (more images than dimensions, or Ledoit-Wolf shrunk): Cholesky,
  ``S = L L^T``. A pair of such datasets forms ``L_b^T S_a L_b`` with LAPACK ``dsygst`` (the
  reduction of the generalised problem ``S_a S_b x = lambda x`` to standard form, ~d^3 flops,
  half of a general matrix product), then its eigenvalues (tridiagonal reduction, ~4/3 d^3).
* singular (rank ``k < d``, e.g. fewer images than dimensions): ``F = V diag(sqrt w)`` from the
  eigendecomposition, directions of numerically zero variance dropped. A pair involving such a
  dataset uses the smaller Gram matrix of ``C = F_a^T F_b`` (``k_a x k_b``), whose non-zero
  eigenvalues are the same; this is cheaper than ``d x d`` whenever ``k`` is well below ``d``.

Negative round-off eigenvalues are clipped at 0, so the result is always real and finite; FD
itself is clipped at 0 (it is a squared distance; only round-off can make it negative).
Pairs run with one BLAS thread each, large ones spread over a thread pool (:func:`pairwise_frechet`).

Few samples. With ``n <= d`` the empirical covariance is singular. ``covariance="ledoit_wolf"``
(or ``"auto"``, which uses it only for such datasets) shrinks it towards a scaled identity with
scikit-learn's Ledoit-Wolf coefficient; ``pca_components`` instead projects every dataset onto
the leading principal components of the pooled embeddings first. The estimator and shrinkage
used per dataset are reported.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import linalg
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from skinmap.analysis.knn import l2_normalize

__all__ = [
    "FRECHET_COLUMNS",
    "GaussianStats",
    "gaussian_stats",
    "trace_sqrt_product",
    "frechet_distance",
    "pairwise_frechet",
    "dataset_similarity",
    "DatasetSimilarity",
    "uniqueness",
    "high_overlap_pairs",
    "cluster_order",
    "known_pair_ranks",
]

# Below this dimension a multi-threaded BLAS only adds synchronisation: on a busy machine a
# 128 x 128 eigendecomposition was measured 50x slower with 2 OpenBLAS threads than with 1.
SINGLE_THREAD_BELOW_DIM = 512

# pairwise_frechet always runs each pair with one BLAS thread: the tridiagonal reduction behind
# every symmetric eigenvalue solver is half matrix-vector work (memory-bound) and gains little from
# BLAS threads; on the 2-core dev machine under load, a d = 1024 pair cost 0.4-1.0 CPU s with
# 2 OpenBLAS threads against 0.10-0.11 s with 1, and took longer in wall time too. From this
# dimension pairs are instead spread over threads (independent pairs scale; wall 60 ms per pair
# at 105 ms CPU when both cores were free). Below it a pair's GIL-held share (scipy's dsygst
# wrapper, Python overhead) dominates: 2 threads gave no wall gain at d = 128-768 and cost
# 60% more CPU at d = 32.
PARALLEL_PAIRS_FROM_DIM = 512

FRECHET_COLUMNS = ("dataset_a", "dataset_b", "n_a", "n_b", "fd", "ci_low", "ci_high")
Covariance = Literal["empirical", "ledoit_wolf", "auto"]


@dataclass(frozen=True)
class GaussianStats:
    """Mean, covariance and covariance factor ``F`` (``cov = F F^T``) of one dataset (eq. 7).

    ``cholesky=True``: ``factor`` is the lower-triangular Cholesky factor (``d x d``, Fortran
    order, as LAPACK takes it). Otherwise ``factor = V diag(sqrt w)`` over the ``rank`` directions
    of non-zero variance (``d x rank``). :meth:`from_moments` picks the form.
    """

    mean: np.ndarray
    cov: np.ndarray
    factor: np.ndarray
    n: int
    estimator: str = "given"
    shrinkage: float = 0.0
    cholesky: bool = False

    @property
    def trace(self) -> float:
        return float(np.trace(self.cov))

    @property
    def rank(self) -> int:
        """Numerical rank of the covariance: ``d`` when positive definite, else the kept directions."""
        return int(self.factor.shape[1])

    @classmethod
    def from_moments(cls, mean, cov, *, n: int = 0, estimator: str = "given",
                     shrinkage: float = 0.0, rtol: float | None = None,
                     factorization: Literal["auto", "eigen"] = "auto") -> GaussianStats:
        """Build from a mean and a symmetric PSD covariance (factored once here).

        ``factorization="auto"`` tries a Cholesky factorisation first (a third of the flops of
        an eigendecomposition) and keeps it when every pivot exceeds ``rtol * largest variance``
        (default ``rtol = d * machine eps``): the covariance is numerically positive definite.
        Otherwise (or with ``"eigen"``) the covariance is eigendecomposed and eigenvalues below
        ``rtol * max eigenvalue`` are treated as exactly zero variance: they are round-off of a
        singular covariance. Both forms give the same FD up to round-off. ``rtol`` is a
        numerical-zero threshold: to drop small but real variances on purpose, pass a larger
        ``rtol`` with ``factorization="eigen"`` (a positive definite Cholesky keeps every direction).
        """
        if factorization not in ("auto", "eigen"):
            raise ValueError(f"factorization must be 'auto' or 'eigen', got {factorization!r}")
        mean = np.asarray(mean, dtype=np.float64)
        cov = np.asarray(cov, dtype=np.float64)
        d = mean.shape[0]
        if mean.ndim != 1 or cov.shape != (d, d):
            raise ValueError(f"mean must be (d,) and cov (d, d); got {mean.shape} and {cov.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(cov).all()):
            raise ValueError("mean and covariance must be finite")
        cov = (cov + cov.T) / 2.0
        rtol = d * np.finfo(np.float64).eps if rtol is None else rtol
        common = dict(mean=mean, cov=cov, n=int(n), estimator=estimator, shrinkage=float(shrinkage))
        if factorization == "auto" and d > 0:
            # cov.T is cov (symmetric) but Fortran-ordered, so LAPACK gets it without a transpose copy
            chol, info = lapack.dpotrf(cov.T, lower=1, clean=1)
            top = float(np.max(np.diag(cov)))
            # Each pivot L_ii^2 is at least the smallest eigenvalue; a tiny one means a numerically
            # singular covariance that round-off let through: take the eigen route, which drops
            # the zero-variance directions explicitly.
            if info == 0 and top > 0 and float(np.min(np.diag(chol))) ** 2 > rtol * top:
                return cls(factor=np.asfortranarray(chol), cholesky=True, **common)
        w, v = linalg.eigh(cov, driver="evd")
        top = max(float(w[-1]), 0.0) if d else 0.0
        keep = w > rtol * top
        factor = np.ascontiguousarray(v[:, keep] * np.sqrt(w[keep]))
        return cls(factor=factor, cholesky=False, **common)


def gaussian_stats(x: np.ndarray, *, covariance: Covariance = "empirical", normalize: bool = True,
                   counts: np.ndarray | None = None, chunk_rows: int = 65536) -> GaussianStats:
    """Eq. 7: mean and covariance (divisor ``n - 1``) of one dataset's (l2-normalised) rows.

    ``counts`` (optional, non-negative integers per row) weights each row as if it were repeated
    that many times: a bootstrap resample without copying the data. Sums run over row chunks
    of ``chunk_rows`` (two passes: mean, then centred products), so memory stays O(chunk x d)
    for datasets of any size.

    ``covariance="ledoit_wolf"`` shrinks towards ``(Tr S / d) I`` with scikit-learn's Ledoit-Wolf
    coefficient (the same shrunk matrix sklearn returns, rescaled to divisor ``n - 1``);
    ``"auto"`` does so only when ``n <= d`` (a singular empirical covariance).
    """
    if covariance not in ("empirical", "ledoit_wolf", "auto"):
        raise ValueError(f"covariance must be 'empirical', 'ledoit_wolf' or 'auto', got {covariance!r}")
    x = l2_normalize(x) if normalize else np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array (n, d), got shape {x.shape}")
    rows, d = x.shape
    w = np.ones(rows) if counts is None else np.asarray(counts, dtype=np.float64)
    if w.shape != (rows,) or (w < 0).any():
        raise ValueError(f"counts must be {rows} non-negative numbers")
    n = int(round(w.sum()))
    if n < 2:
        raise ValueError(f"a covariance needs at least 2 rows, got {n}")
    blocks = [slice(i, min(i + chunk_rows, rows)) for i in range(0, rows, chunk_rows)]
    mean = sum(w[b] @ np.asarray(x[b], dtype=np.float64) for b in blocks) / n
    cov = np.zeros((d, d))
    for b in blocks:
        centred = np.asarray(x[b], dtype=np.float64) - mean
        cov += centred.T @ (centred * w[b, None])
    cov /= n - 1
    use_lw = covariance == "ledoit_wolf" or (covariance == "auto" and n <= d)
    shrinkage = 0.0
    if use_lw:
        from sklearn.covariance import ledoit_wolf_shrinkage

        # The Ledoit-Wolf coefficient needs the (repeated) centred rows themselves.
        centred = np.repeat(np.asarray(x, dtype=np.float64), w.astype(np.int64), axis=0) - mean
        shrinkage = float(ledoit_wolf_shrinkage(centred, assume_centered=True))
        mu = np.trace(cov) / d
        cov = (1.0 - shrinkage) * cov
        cov[np.diag_indices(d)] += shrinkage * mu
    return GaussianStats.from_moments(mean, cov, n=n, estimator="ledoit_wolf" if use_lw else "empirical",
                                      shrinkage=shrinkage)


def trace_sqrt_product(a: GaussianStats, b: GaussianStats) -> float:
    """``Tr (S_a S_b)^{1/2}`` (eq. 8) = sum of square roots of the eigenvalues of ``F_b^T S_a F_b``.

    Two positive definite covariances: ``L_b^T S_a L_b`` by LAPACK ``dsygst`` (~d^3 flops) and
    its eigenvalues (~4/3 d^3). Otherwise, or when a covariance is of so low rank that it is
    cheaper, the smaller Gram matrix of ``C = F_a^T F_b`` (same non-zero eigenvalues).
    """
    d = a.mean.shape[0]
    ka, kb = a.rank, b.rank
    small, large = min(ka, kb), max(ka, kb)
    # flop counts: product C + Gram (symmetric rank-k update) + tridiagonal reduction, versus
    # dsygst + tridiagonal reduction at full size (needs one Cholesky factor)
    via_factors = 2.0 * d * ka * kb + small * small * large + 4.0 / 3.0 * small**3
    via_cholesky = 7.0 / 3.0 * d**3
    if (a.cholesky or b.cholesky) and via_cholesky <= via_factors:
        if not b.cholesky:
            a, b = b, a  # eig(S_a S_b) = eig(S_b S_a): reduce with whichever factor is triangular
        # itype=2: A <- L^T A L. a.cov.T is a.cov in Fortran order: LAPACK's working copy is a
        # plain memcpy. Only the lower triangle of the result is meaningful (lower=1).
        m, info = lapack.dsygst(a.cov.T, b.factor, itype=2, lower=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"dsygst failed (info={info})")
        # numpy's solver (LAPACK dsyevd, eigenvalues only) releases the GIL, unlike scipy's
        # wrapper, so concurrent pairs in pairwise_frechet overlap; same LAPACK, same speed.
        lam = np.linalg.eigvalsh(m, UPLO="L")
    else:
        c = a.factor.T @ b.factor
        gram = c @ c.T if c.shape[0] <= c.shape[1] else c.T @ c  # the smaller side; same spectrum
        if gram.size == 0:
            return 0.0
        lam = np.linalg.eigvalsh(gram)
    return float(np.sqrt(np.clip(lam, 0.0, None)).sum())


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """Eq. 8: ``||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})``, real and >= 0."""
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"dimension mismatch: {a.mean.shape[0]} vs {b.mean.shape[0]}")
    diff = a.mean - b.mean
    fd = float(diff @ diff) + a.trace + b.trace - 2.0 * trace_sqrt_product(a, b)
    return max(fd, 0.0)


def _blas_threads(dim: int):
    """One BLAS thread for small matrices (see :data:`SINGLE_THREAD_BELOW_DIM`), else unchanged."""
    return threadpool_limits(1) if dim < SINGLE_THREAD_BELOW_DIM else contextlib.nullcontext()


def _available_cpus() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's count, where known)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def pairwise_frechet(stats: Sequence[GaussianStats], *, progress: bool = False,
                     n_jobs: int | None = None) -> np.ndarray:
    """Symmetric (m, m) matrix of eq. 8 over all pairs (zero diagonal; each pair computed once).

    Pairs run on ``n_jobs`` threads (default: the available CPUs, or 1 below
    :data:`PARALLEL_PAIRS_FROM_DIM`), each with a single BLAS thread. The numerical work releases
    the GIL except ``dsygst`` (scipy's wrapper holds it), which is the shorter half of a pair, so
    two threads overlap one pair's reduction with another's eigenvalues. Every pair is computed
    the same way whatever ``n_jobs``, so the result does not depend on it.
    """
    m = len(stats)
    out = np.zeros((m, m))
    pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
    dim = stats[0].mean.shape[0] if m else 0
    if n_jobs is None:
        n_jobs = _available_cpus() if dim >= PARALLEL_PAIRS_FROM_DIM else 1
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1, got {n_jobs}")
    workers = min(n_jobs, len(pairs))

    def one(pair: tuple[int, int]) -> float:
        return frechet_distance(stats[pair[0]], stats[pair[1]])

    def fill(values) -> None:
        for (i, j), fd in zip(pairs, tqdm(values, total=len(pairs), desc="Fréchet pairs", unit="pair",
                                          disable=not progress)):
            out[i, j] = out[j, i] = fd

    # One BLAS thread per pair even without a pool (see PARALLEL_PAIRS_FROM_DIM). BLAS thread
    # counts are process-wide (threadpoolctl), so this limit covers the pool's threads too.
    with threadpool_limits(1):
        if workers <= 1:
            fill(map(one, pairs))
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                fill(pool.map(one, pairs))
    return out


@dataclass(frozen=True)
class DatasetSimilarity:
    """Result of :func:`dataset_similarity`.

    ``table``: one row per unordered pair with :data:`FRECHET_COLUMNS`; ``matrix``: FD as a square
    DataFrame indexed by dataset; ``stats``: per dataset ``n``, ``estimator``, ``shrinkage``, ``dim``;
    ``replicates``: (B, m, m) bootstrap FD matrices.
    """

    table: pd.DataFrame
    matrix: pd.DataFrame
    stats: pd.DataFrame
    replicates: np.ndarray


def dataset_similarity(
    groups: Mapping[str, np.ndarray],
    *,
    covariance: Covariance = "auto",
    pca_components: int | None = None,
    n_bootstrap: int = 100,
    ci: float = 0.95,
    seed: int = 0,
    min_images: int = 2,
    progress: bool = True,
) -> DatasetSimilarity:
    """All-pairs FD (eqs. 7-8) with percentile bootstrap CIs.

    ``groups`` maps dataset name -> its (n, d) embeddings (l2-normalised here). Each bootstrap
    replicate resamples the images of every dataset with replacement, re-estimates every
    Gaussian with the same estimator and recomputes all pairs; the CI is the central ``ci``
    quantile range. ``pca_components`` (optional) projects onto the leading principal axes of
    all datasets pooled, fitted once on the original data. Datasets with fewer than
    ``min_images`` rows are a ``ValueError`` naming them.
    """
    names = list(groups)
    if len(names) < 2:
        raise ValueError(f"need at least 2 datasets to compare, got {len(names)}")
    small = [f"{k} ({len(groups[k])})" for k in names if len(groups[k]) < max(min_images, 2)]
    if small:
        raise ValueError(f"datasets with too few images for a covariance: {', '.join(small)}")
    data = {k: l2_normalize(groups[k]) for k in names}  # float32; moments accumulate in float64
    if pca_components is not None:
        from sklearn.decomposition import PCA

        pooled = np.concatenate([data[k] for k in names]).astype(np.float64)
        if not 1 <= pca_components <= min(pooled.shape):
            raise ValueError(f"pca_components must be in [1, {min(pooled.shape)}], got {pca_components}")
        pca = PCA(n_components=pca_components, svd_solver="full", random_state=seed).fit(pooled)
        data = {k: pca.transform(v.astype(np.float64)) for k, v in data.items()}

    def fit_all(counts: Mapping[str, np.ndarray | None]) -> list[GaussianStats]:
        with _blas_threads(data[names[0]].shape[1]):
            return [gaussian_stats(data[k], covariance=covariance, normalize=False, counts=counts[k])
                    for k in names]

    point_stats = fit_all({k: None for k in names})
    fd = pairwise_frechet(point_stats, progress=progress)
    rng = np.random.default_rng(seed)
    reps = np.empty((n_bootstrap, len(names), len(names)))
    for b in tqdm(range(n_bootstrap), desc="Fréchet bootstrap", unit="rep", disable=not progress):
        # resample images within each dataset; as counts per row so nothing is copied
        draw = {k: np.bincount(rng.integers(0, len(data[k]), size=len(data[k])), minlength=len(data[k]))
                for k in names}
        reps[b] = pairwise_frechet(fit_all(draw))
    alpha = (1.0 - ci) / 2.0
    if n_bootstrap > 0:
        low, high = np.quantile(reps, [alpha, 1.0 - alpha], axis=0)
    else:
        low = high = np.full_like(fd, np.nan)
    n = {k: len(data[k]) for k in names}
    rows = [(names[i], names[j], n[names[i]], n[names[j]], fd[i, j], low[i, j], high[i, j])
            for i in range(len(names)) for j in range(i + 1, len(names))]
    table = pd.DataFrame(rows, columns=list(FRECHET_COLUMNS))
    stats = pd.DataFrame({
        "dataset": names, "n": [s.n for s in point_stats], "estimator": [s.estimator for s in point_stats],
        "shrinkage": [s.shrinkage for s in point_stats], "dim": [s.mean.shape[0] for s in point_stats],
        "rank": [s.rank for s in point_stats]})
    return DatasetSimilarity(table=table, matrix=pd.DataFrame(fd, index=names, columns=names),
                             stats=stats, replicates=reps)


def uniqueness(matrix: pd.DataFrame) -> pd.DataFrame:
    """Uniqueness of each dataset = its mean FD to all other datasets, most unique first."""
    fd = matrix.to_numpy(dtype=np.float64)
    m = fd.shape[0]
    if m < 2:
        raise ValueError("uniqueness needs at least 2 datasets")
    score = (fd.sum(axis=1) - np.diag(fd)) / (m - 1)
    out = pd.DataFrame({"dataset": list(matrix.index), "uniqueness": score})
    return out.sort_values("uniqueness", ascending=False, kind="stable").reset_index(drop=True)


def high_overlap_pairs(table: pd.DataFrame, *, quantile: float = 0.1,
                       threshold: float | None = None) -> pd.DataFrame:
    """The lowest-FD pairs: ``fd <= threshold`` if given, else ``fd <=`` the ``quantile`` of all pairs."""
    if threshold is None:
        if not 0.0 < quantile <= 1.0:
            raise ValueError(f"quantile must be in (0, 1], got {quantile}")
        threshold = float(np.quantile(table["fd"], quantile))
    out = table[table["fd"] <= threshold].sort_values("fd", kind="stable").reset_index(drop=True)
    return out.assign(threshold=threshold)


def cluster_order(matrix: pd.DataFrame, *, method: str = "average"):
    """Hierarchical clustering of the FD matrix: ``(order of datasets, scipy linkage)``."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    fd = matrix.to_numpy(dtype=np.float64)
    if fd.shape[0] < 3:
        return list(matrix.index), None
    z = linkage(squareform(fd, checks=False), method=method, optimal_ordering=True)
    return [matrix.index[i] for i in leaves_list(z)], z


def known_pair_ranks(matrix: pd.DataFrame, pairs: Sequence[tuple[str, str]],
                     *, overlap_threshold: float | None = None) -> pd.DataFrame:
    """Where known related datasets (subset, parent) land among all pairwise FDs.

    Per pair: ``fd``, ``rank`` (1 = lowest of ``n_pairs``), ``percentile``, whether the parent is
    the subset's nearest dataset by FD, and (given a threshold) whether the pair is high-overlap.
    Pairs naming a dataset absent from ``matrix`` get ``present = False`` and NaNs.
    """
    names = list(matrix.index)
    fd = matrix.to_numpy(dtype=np.float64)
    iu = np.triu_indices(len(names), 1)
    all_fd = np.sort(fd[iu])
    rows = []
    for sub, parent in pairs:
        if sub not in names or parent not in names:
            rows.append(dict(subset=sub, parent=parent, present=False, fd=np.nan, rank=np.nan,
                             n_pairs=all_fd.size, percentile=np.nan, parent_is_nearest=False,
                             high_overlap=False))
            continue
        i, j = names.index(sub), names.index(parent)
        value = fd[i, j]
        others = np.delete(fd[i], i)
        rank = int(np.searchsorted(all_fd, value, side="left")) + 1
        rows.append(dict(subset=sub, parent=parent, present=True, fd=value, rank=rank,
                         n_pairs=all_fd.size, percentile=100.0 * rank / all_fd.size,
                         parent_is_nearest=bool(value <= others.min()),
                         high_overlap=bool(overlap_threshold is not None and value <= overlap_threshold)))
    return pd.DataFrame(rows)
