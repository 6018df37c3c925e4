"""Dataset similarity by the Fréchet distance between Gaussian fits (paper eqs. 7-8).

Each dataset ``a`` is summarised by the mean ``mu_a`` and covariance ``S_a`` (divisor ``n - 1``) of
its l2-normalised embeddings (eq. 7). Two datasets are compared by (eq. 8)

    FD(a, b) = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}).

Low FD = homologous datasets (subsets, re-releases, shared lineage); the *uniqueness* of a
dataset is its mean FD to all others.

Trace term without a general matrix square root. ``S_a S_b`` is not symmetric, and the usual
``scipy.linalg.sqrtm(S_a @ S_b)`` (a complex Schur decomposition per pair) is slow and returns
complex or NaN values for singular covariances. Instead each covariance is eigendecomposed once,
``S = V diag(w) V^T``, and kept as a factor ``F = V diag(sqrt w)`` (``S = F F^T``; directions with
numerically zero variance dropped). ``(S_a S_b)^{1/2}`` is similar to the symmetric PSD matrix
``S_a^{1/2} S_b S_a^{1/2}``, whose eigenvalues are those of ``C C^T`` with ``C = F_a^T F_b``, so

    Tr (S_a S_b)^{1/2} = sum_i sqrt(lambda_i(C C^T)),

one matrix product, one symmetric rank-k update and one symmetric eigenvalue problem per pair.
Negative round-off eigenvalues are clipped at 0, so the result is always real and finite; FD
itself is clipped at 0 (it is a squared distance; only round-off can make it negative).

Few samples. With ``n <= d`` the empirical covariance is singular. ``covariance="ledoit_wolf"``
(or ``"auto"``, which uses it only for such datasets) shrinks it towards a scaled identity with
scikit-learn's Ledoit-Wolf coefficient; ``pca_components`` instead projects every dataset onto
the leading principal components of the pooled embeddings first. The estimator and shrinkage
used per dataset are reported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import linalg
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from skinmap.analysis.knn import l2_normalize

__all__ = [
    "FRECHET_COLUMNS",
    "GaussianStats",
    "gaussian_stats",
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

FRECHET_COLUMNS = ("dataset_a", "dataset_b", "n_a", "n_b", "fd", "ci_low", "ci_high")
Covariance = Literal["empirical", "ledoit_wolf", "auto"]


@dataclass(frozen=True)
class GaussianStats:
    """Mean, covariance and covariance factor ``F`` (``cov = F F^T``) of one dataset (eq. 7)."""

    mean: np.ndarray
    cov: np.ndarray
    factor: np.ndarray
    n: int
    estimator: str = "given"
    shrinkage: float = 0.0

    @property
    def trace(self) -> float:
        return float(np.trace(self.cov))

    @classmethod
    def from_moments(cls, mean, cov, *, n: int = 0, estimator: str = "given",
                     shrinkage: float = 0.0, rtol: float | None = None) -> GaussianStats:
        """Build from a mean and a symmetric PSD covariance (eigendecomposed once here).

        Eigenvalues below ``rtol * max eigenvalue`` (default ``d * machine eps``) are treated as
        exactly zero variance: they are round-off of a singular covariance.
        """
        mean = np.asarray(mean, dtype=np.float64)
        cov = np.asarray(cov, dtype=np.float64)
        d = mean.shape[0]
        if mean.ndim != 1 or cov.shape != (d, d):
            raise ValueError(f"mean must be (d,) and cov (d, d); got {mean.shape} and {cov.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(cov).all()):
            raise ValueError("mean and covariance must be finite")
        cov = (cov + cov.T) / 2.0
        w, v = linalg.eigh(cov, driver="evd")
        top = max(float(w[-1]), 0.0)
        tol = (d * np.finfo(np.float64).eps if rtol is None else rtol) * top
        keep = w > tol
        factor = np.ascontiguousarray(v[:, keep] * np.sqrt(w[keep]))
        return cls(mean=mean, cov=cov, factor=factor, n=int(n), estimator=estimator,
                   shrinkage=float(shrinkage))


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
    """``Tr (S_a S_b)^{1/2}`` from the eigenvalues of ``S_a^{1/2} S_b S_a^{1/2}`` (via factors)."""
    c = a.factor.T @ b.factor
    gram = c @ c.T if c.shape[0] <= c.shape[1] else c.T @ c  # the smaller side; same spectrum
    if gram.size == 0:
        return 0.0
    # eigenvalues only: tridiagonal reduction + root-free QR ("evd"); MRRR ("evr") measured slower
    lam = linalg.eigvalsh(gram, overwrite_a=True, check_finite=False, driver="evd")
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


def pairwise_frechet(stats: Sequence[GaussianStats], *, progress: bool = False) -> np.ndarray:
    """Symmetric (m, m) matrix of eq. 8 over all pairs (zero diagonal)."""
    m = len(stats)
    out = np.zeros((m, m))
    pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
    with _blas_threads(stats[0].mean.shape[0] if m else 0):
        for i, j in tqdm(pairs, desc="Fréchet pairs", unit="pair", disable=not progress):
            out[i, j] = out[j, i] = frechet_distance(stats[i], stats[j])
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
        "rank": [s.factor.shape[1] for s in point_stats]})
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
