"""Dataset similarity: all-pairs Fréchet distances with bootstrap intervals, uniqueness, clustering.

Built on :mod:`skinmap.analysis.frechet` (the distance of paper eqs. 7-8 between Gaussian fits).
Low FD = homologous datasets (subsets, re-releases, shared lineage); the *uniqueness* of a dataset
is its mean FD to all others. With fewer images than dimensions ``covariance="auto"`` shrinks a
dataset's covariance (Ledoit-Wolf); ``pca_components`` instead projects every dataset onto the
leading principal components of the pooled embeddings first. The estimator and shrinkage used per
dataset are reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from skinmap.analysis.frechet import Covariance, GaussianStats, fit_gaussians, pairwise_frechet
from skinmap.analysis.knn import l2_normalize
from skinmap.analysis.resampling import CI_BOUNDS, bootstrap_weights, percentile_interval
from skinmap.config import check_knobs, check_range, knob, with_knobs

__all__ = [
    "FRECHET_COLUMNS",
    "OVERLAP_QUANTILE_BOUNDS",
    "SimilarityConfig",
    "DatasetSimilarity",
    "dataset_similarity",
    "uniqueness",
    "high_overlap_pairs",
    "cluster_order",
    "known_pair_ranks",
]

FRECHET_COLUMNS = ("dataset_a", "dataset_b", "n_a", "n_b", "fd", "ci_low", "ci_high")
#: Allowed quantiles of the high-overlap rule (:func:`high_overlap_pairs`).
OVERLAP_QUANTILE_BOUNDS = {"gt": 0.0, "le": 1.0}


@dataclass(frozen=True)
class SimilarityConfig:
    """The knobs of :func:`dataset_similarity`, their defaults and ranges."""

    covariance: Covariance = knob(
        "auto", description="covariance estimator (eq. 7): 'auto' = Ledoit-Wolf shrinkage only for datasets with n <= d")
    pca_components: int | None = knob(
        None, ge=1, description="project onto this many pooled principal axes first; None = full dimension")
    n_bootstrap: int = knob(100, ge=0, le=100_000,
                            description="bootstrap replicates per FD (images resampled within datasets); 0 = no interval")
    ci: float = knob(0.95, **CI_BOUNDS, description="central quantile range of the FD intervals")
    seed: int = knob(0, ge=0, description="seed of the bootstrap (and of the PCA solver)")
    min_images: int = knob(2, ge=2, description="datasets with fewer embedded images cannot be compared")

    def __post_init__(self) -> None:
        check_knobs(self)


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


def _pca_projection(data: dict[str, np.ndarray], n_components: int, seed: int) -> dict[str, np.ndarray]:
    """Every dataset projected on the leading principal axes of all datasets pooled."""
    from sklearn.decomposition import PCA

    pooled = np.concatenate(list(data.values())).astype(np.float64)
    if not 1 <= n_components <= min(pooled.shape):
        raise ValueError(f"pca_components must be in [1, {min(pooled.shape)}], got {n_components}")
    pca = PCA(n_components=n_components, svd_solver="full", random_state=seed).fit(pooled)
    return {k: pca.transform(v.astype(np.float64)) for k, v in data.items()}


def dataset_similarity(
    groups: Mapping[str, np.ndarray],
    config: SimilarityConfig | None = None,
    *,
    progress: bool = True,
    **knobs,
) -> DatasetSimilarity:
    """All-pairs FD (eqs. 7-8) with percentile bootstrap CIs.

    Parameters
    ----------
    groups : mapping
        Dataset name -> its (n, d) embeddings (l2-normalised here).
    config : SimilarityConfig, optional
        The knobs; single knobs may also be given as keyword arguments.
    progress : bool
        Show progress bars.

    Each bootstrap replicate resamples the images of every dataset with replacement (as row
    multiplicities, :func:`skinmap.analysis.resampling.bootstrap_weights`), re-estimates every
    Gaussian with the same estimator and recomputes all pairs; the CI is the central ``ci``
    quantile range. ``pca_components`` (optional) projects onto the leading principal axes of
    all datasets pooled, fitted once on the original data. Datasets with fewer than
    ``min_images`` rows are a ``ValueError`` naming them.
    """
    cfg = with_knobs(SimilarityConfig, config, knobs)
    names = list(groups)
    if len(names) < 2:
        raise ValueError(f"need at least 2 datasets to compare, got {len(names)}")
    small = [f"{k} ({len(groups[k])})" for k in names if len(groups[k]) < max(cfg.min_images, 2)]
    if small:
        raise ValueError(f"datasets with too few images for a covariance: {', '.join(small)}")
    data = {k: l2_normalize(groups[k]) for k in names}  # float32; moments accumulate in float64
    if cfg.pca_components is not None:
        data = _pca_projection(data, cfg.pca_components, cfg.seed)
    xs = [data[k] for k in names]

    def fit_all(counts=None) -> list[GaussianStats]:
        return fit_gaussians(xs, covariance=cfg.covariance, normalize=False, counts=counts)

    point_stats = fit_all()
    fd = pairwise_frechet(point_stats, progress=progress)
    rng = np.random.default_rng(cfg.seed)
    reps = np.empty((cfg.n_bootstrap, len(names), len(names)))
    for b in tqdm(range(cfg.n_bootstrap), desc="Fréchet bootstrap", unit="rep", disable=not progress):
        # resample images within each dataset, dataset after dataset; as counts per row so nothing is copied
        draw = [next(bootstrap_weights(len(x), 1, rng))[0] for x in xs]
        reps[b] = pairwise_frechet(fit_all(draw))
    low, high = percentile_interval(reps, cfg.ci, axis=0)
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
        check_range("quantile", quantile, **OVERLAP_QUANTILE_BOUNDS)
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
