"""Dataset similarity by the Fréchet distance between Gaussian fits (paper eqs. 7-8).

Each dataset ``a`` is summarised by the mean ``mu_a`` and covariance ``S_a`` (divisor ``n - 1``) of
its l2-normalised embeddings (eq. 7). Two datasets are compared by (eq. 8)

    FD(a, b) = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}).

Low FD = homologous datasets (subsets, re-releases, shared lineage). This module is the
distance itself; :mod:`skinmap.analysis.similarity` compares whole datasets with it (bootstrap
intervals, uniqueness, clustering).

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
scikit-learn's Ledoit-Wolf coefficient (:func:`gaussian_stats` reports the estimator and the
shrinkage used).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import linalg
from scipy.linalg import blas, lapack
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from skinmap.analysis.knn import l2_normalize

__all__ = [
    "Covariance",
    "GaussianStats",
    "gaussian_stats",
    "trace_sqrt_product",
    "frechet_distance",
    "pairwise_frechet",
    "fit_gaussians",
    "DatasetMoments",
    "label_codes",
    "streamed_moments",
    "row_chunks",
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


def fit_gaussians(xs: Sequence[np.ndarray], *, covariance: Covariance = "empirical", normalize: bool = True,
                  counts: Sequence[np.ndarray | None] | None = None) -> list[GaussianStats]:
    """:func:`gaussian_stats` of several datasets of one dimension (``counts``: one entry per dataset).

    Small dimensions run with one BLAS thread (see :data:`SINGLE_THREAD_BELOW_DIM`).
    """
    counts = [None] * len(xs) if counts is None else counts
    with _blas_threads(xs[0].shape[1] if len(xs) else 0):
        return [gaussian_stats(x, covariance=covariance, normalize=normalize, counts=c) for x, c in zip(xs, counts)]


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


# ------------------------------------------------------------------ streamed moments over row labels


def row_chunks(n_rows: int, chunk_rows: int) -> list[slice]:
    """Consecutive row slices of at most ``chunk_rows`` rows covering ``range(n_rows)``."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    return [slice(i, min(i + chunk_rows, n_rows)) for i in range(0, n_rows, chunk_rows)]


def label_codes(labels, names: Sequence[str]) -> np.ndarray:
    """Per row, the position of its label in ``names`` (-1 for a label not in ``names``), int32."""
    import pandas as pd

    return pd.Index(list(names)).get_indexer(pd.Series(np.asarray(labels)).astype(str)).astype(np.int32)


@dataclass(frozen=True)
class DatasetMoments:
    """Eq. 7 for several datasets from one pass over their rows.

    ``n``: (m,) rows per dataset; ``mean``: (m, d); ``cov``: (m, d, d) with divisor ``n - 1``
    (NaN for a dataset with fewer than 2 rows). Rows in the order of ``names``.
    """

    names: tuple[str, ...]
    n: np.ndarray
    mean: np.ndarray
    cov: np.ndarray

    def stats(self, i: int, **kwargs) -> GaussianStats:
        """:meth:`GaussianStats.from_moments` of dataset ``i`` (empirical covariance)."""
        return GaussianStats.from_moments(self.mean[i], self.cov[i], n=int(self.n[i]), estimator="empirical",
                                          **kwargs)

    def pooled(self, *, balanced: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Centre and second-moment matrix of all datasets pooled, ``(d,)`` and ``(d, d)``.

        ``balanced=False``: every row counts once (the covariance of all rows pooled, divisor
        ``N - 1``; what a PCA of the pooled rows diagonalises). ``balanced=True``: every dataset
        counts equally, ``C = mean_a [(n_a - 1)/n_a S_a + (mu_a - c)(mu_a - c)^T]`` about the mean
        of the dataset means ``c`` (within plus between datasets).
        """
        n = self.n.astype(np.float64)
        if balanced:
            centre = self.mean.mean(axis=0)
            dev = self.mean - centre
            second = np.tensordot((n - 1) / n, self.cov, axes=1) + dev.T @ dev
            return centre, second / len(n)
        centre = (n @ self.mean) / n.sum()
        dev = self.mean - centre
        second = np.tensordot(n - 1, self.cov, axes=1) + (dev * n[:, None]).T @ dev
        return centre, second / (n.sum() - 1)


def streamed_moments(x: np.ndarray, codes: np.ndarray, n_datasets: int, *, names: Sequence[str] | None = None,
                     normalize: bool = True, chunk_rows: int = 32768, progress: bool = False) -> DatasetMoments:
    """Eq. 7 (mean, covariance with divisor ``n - 1``) of every dataset in one pass over ``x``.

    Parameters
    ----------
    x : array-like of shape (n, d)
        All rows, e.g. an ``np.load(..., mmap_mode="r")`` memmap: it is read ``chunk_rows`` rows at
        a time and never copied whole.
    codes : ndarray of shape (n,)
        Dataset of each row as a position in ``0..n_datasets-1`` (see :func:`label_codes`); rows
        with a negative code are skipped.
    n_datasets : int
        Number of datasets ``m``.
    names : sequence of str, optional
        Dataset names (default ``"0".."m-1"``).
    normalize : bool
        l2-normalise each row first (as :func:`gaussian_stats` does, in float32).

    Sums accumulate in float64 about a per-dataset shift (the mean of that dataset's rows in the
    first chunk that has any), so the one-pass covariance does not lose digits to the mean; the
    centred products are ``dsyrk`` rank-k updates (half a matrix product). Memory:
    O(chunk_rows x d + m x d^2).
    """
    codes = np.asarray(codes)
    rows, d = x.shape
    if codes.shape != (rows,):
        raise ValueError(f"codes must have one entry per row ({rows}), got shape {codes.shape}")
    m = int(n_datasets)
    names = tuple(str(i) for i in range(m)) if names is None else tuple(names)
    if len(names) != m:
        raise ValueError(f"{len(names)} names for {m} datasets")
    count = np.zeros(m, dtype=np.int64)
    shift = np.zeros((m, d))
    seen = np.zeros(m, dtype=bool)
    s1 = np.zeros((m, d))
    s2 = np.zeros((m, d, d))
    for part in tqdm(row_chunks(rows, chunk_rows), desc="dataset moments", unit="chunk", disable=not progress):
        c = codes[part]
        keep = c >= 0
        if not keep.any():
            continue
        block = np.asarray(x[part])
        block = l2_normalize(block) if normalize else block
        order = np.argsort(c, kind="stable")
        order = order[keep[order]]
        cs = c[order]
        starts = np.flatnonzero(np.r_[True, cs[1:] != cs[:-1]])
        for lo, hi in zip(starts, np.r_[starts[1:], len(cs)]):
            a = int(cs[lo])
            sub = np.asarray(block[order[lo:hi]], dtype=np.float64)
            if not seen[a]:
                shift[a], seen[a] = sub.mean(axis=0), True
            sub -= shift[a]
            count[a] += hi - lo
            s1[a] += sub.sum(axis=0)
            # sub.T is a Fortran (d, r) view, s2[a].T a Fortran (d, d) one: dsyrk adds sub.T @ sub to
            # the upper triangle of s2[a].T, i.e. the lower triangle of s2[a], in place
            s2[a] = blas.dsyrk(1.0, sub.T, beta=1.0, c=s2[a].T, trans=0, lower=0, overwrite_c=1).T
    mean = np.full((m, d), np.nan)
    cov = np.full((m, d, d), np.nan)
    for a in range(m):
        if count[a] == 0:
            continue
        dm = s1[a] / count[a]
        mean[a] = shift[a] + dm
        if count[a] >= 2:
            lower = np.tril(s2[a])
            full = lower + np.tril(lower, -1).T
            cov[a] = (full - count[a] * np.outer(dm, dm)) / (count[a] - 1)
    return DatasetMoments(names=names, n=count, mean=mean, cov=cov)
