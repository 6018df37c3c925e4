"""Density of the embedding space with a Gaussian mixture (paper section 7).

A Gaussian mixture model is fitted to a PCA projection of the (l2-normalised) embeddings: a
full-covariance GMM in 1,024 dimensions would need ~0.5 M parameters per component and far more
samples than most datasets have, while the leading principal components keep the geometry that
separates crowded from empty regions. Each sample's log-density under the mixture ranks it:
above the 97.5th percentile is *hypersaturated* (redundant: near-duplicates, over-sampled
classes), below the 2.5th is *sparse* (where quality failures such as off-topic images,
artefacts and occlusion surface). Log-densities are in the projected space (nats), so they
compare samples within one fit, not across fits.

At scale (issue 19) the projection and the mixture are fitted on a seeded subsample of
``fit_size`` rows and every row is then scored in chunks, so a 1.1M x 1,024 memmap is never
copied whole: the fitted Gaussians are the same estimator on fewer rows, and each row's
log-density is evaluated exactly under them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from scipy.special import logsumexp
from sklearn.mixture import GaussianMixture
from tqdm.auto import tqdm

from skinmap.analysis.knn import l2_normalize

__all__ = ["DensityFit", "fit_density", "density_regions", "representative_samples", "REGIONS"]

REGIONS = ("sparse", "typical", "hypersaturated")


@dataclass(frozen=True)
class DensityFit:
    """Per-sample log-density and mixture component, with the fitted models."""

    log_density: np.ndarray
    component: np.ndarray
    pca: PCA | None
    gmm: GaussianMixture

    def component_table(self) -> pd.DataFrame:
        """Per component: size, weight and mean log-density of its members (densest first)."""
        df = pd.DataFrame({"component": self.component, "log_density": self.log_density})
        tab = df.groupby("component")["log_density"].agg(size="size", mean_log_density="mean")
        tab["weight"] = self.gmm.weights_[tab.index]
        return tab.sort_values("mean_log_density", ascending=False).reset_index()


def fit_density(
    x: np.ndarray,
    *,
    n_components: int = 8,
    covariance_type: str = "full",
    projection_dim: int | None = 32,
    reg_covar: float = 1e-5,
    seed: int = 0,
    fit_size: int = 0,
    chunk_rows: int = 65536,
    progress: bool = False,
) -> DensityFit:
    """Fit a GMM to ``x`` (rows l2-normalised, then PCA to ``projection_dim``) and score every row.

    Parameters
    ----------
    x : array-like of shape (n, d)
        The embeddings; a memmap is read in chunks of ``chunk_rows`` rows.
    n_components : int
        Mixture components (capped at the number of fitted rows).
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance type of the components.
    projection_dim : int or None
        PCA dimension; ``None`` or ``>= d`` skips the projection.
    reg_covar : float
        Added to the components' covariance diagonals.
    seed : int
        Seed of the subsample, the PCA solver and the mixture's initialisation.
    fit_size : int
        Rows the PCA and the mixture are fitted on: a uniform subsample without replacement drawn
        with ``default_rng(seed)``; ``0`` (or ``>= n``) fits on every row.
    chunk_rows : int
        Rows scored at a time.
    progress : bool
        Progress bar over the scored chunks (stderr).

    Returns
    -------
    DensityFit
        Per-row log-density (``score_samples``, shape (n,)) and most likely component (``predict``).
    """
    n, d = x.shape
    if n < 2:
        raise ValueError(f"need at least 2 samples for a density, got {n}")
    if covariance_type not in ("full", "tied", "diag", "spherical"):
        raise ValueError(f"unknown covariance_type {covariance_type!r}")
    if fit_size < 0:
        raise ValueError(f"fit_size must be >= 0, got {fit_size}")
    subsample = 0 < fit_size < n
    if subsample:
        rows = np.sort(np.random.default_rng(seed).choice(n, fit_size, replace=False))
        xn = l2_normalize(np.asarray(x[rows])).astype(np.float64)
    else:
        xn = l2_normalize(x).astype(np.float64)
    m = len(xn)
    pca = None
    if projection_dim is not None and projection_dim < min(m, d):
        pca = PCA(n_components=projection_dim, random_state=seed)
        xn = pca.fit_transform(xn)
    gmm = GaussianMixture(
        n_components=int(min(n_components, m)),
        covariance_type=covariance_type,
        reg_covar=reg_covar,
        random_state=seed,
        n_init=1,
    ).fit(xn)
    log_density = np.empty(n)
    component = np.empty(n, dtype=np.int64)
    for start in tqdm(range(0, n, chunk_rows), desc="density scores", unit="chunk", disable=not progress):
        part = slice(start, min(start + chunk_rows, n))
        if subsample:
            y = l2_normalize(np.asarray(x[part])).astype(np.float64)
            y = pca.transform(y) if pca is not None else y
        else:
            y = xn[part]  # the rows the mixture was fitted on, as fitted
        # what score_samples (logsumexp) and predict (argmax) both compute, evaluated once
        weighted = gmm._estimate_weighted_log_prob(y)
        log_density[part] = logsumexp(weighted, axis=1)
        component[part] = weighted.argmax(axis=1)
    return DensityFit(log_density, component, pca, gmm)


def density_regions(
    log_density: np.ndarray, *, low_pct: float = 2.5, high_pct: float = 97.5
) -> np.ndarray:
    """Label each sample "sparse" (< ``low_pct`` percentile), "hypersaturated" (> ``high_pct``)
    or "typical" (paper section 7). Non-finite log-densities are an error."""
    if not 0 <= low_pct < high_pct <= 100:
        raise ValueError(f"need 0 <= low_pct < high_pct <= 100, got {low_pct}, {high_pct}")
    ld = np.asarray(log_density, dtype=np.float64)
    if not np.isfinite(ld).all():
        bad = np.flatnonzero(~np.isfinite(ld))
        raise ValueError(f"{bad.size} log-densities are NaN or infinite (first: row {bad[0]}); percentiles of "
                         "them would label every sample 'typical'")
    lo, hi = np.percentile(ld, [low_pct, high_pct])
    out = np.full(ld.shape, "typical", dtype=object)
    out[ld < lo] = "sparse"
    out[ld > hi] = "hypersaturated"
    return out


def representative_samples(
    fit: DensityFit, *, n_samples: int = 12, min_size: int = 5
) -> dict[str, np.ndarray]:
    """Rows typifying the densest and the sparsest mixture components.

    The densest component is the one (of at least ``min_size`` members, if any) with the highest
    mean member log-density; its ``n_samples`` highest-density members are returned under
    ``"densest"``. The sparsest component's lowest-density members come under ``"sparsest"``.
    """
    tab = fit.component_table()
    big = tab[tab["size"] >= min_size]
    tab = big if len(big) else tab
    dense_c = int(tab["component"].iloc[0])
    sparse_c = int(tab["component"].iloc[-1])
    ld = fit.log_density
    dense_rows = np.flatnonzero(fit.component == dense_c)
    sparse_rows = np.flatnonzero(fit.component == sparse_c)
    return {
        "densest": dense_rows[np.argsort(-ld[dense_rows], kind="stable")][:n_samples],
        "sparsest": sparse_rows[np.argsort(ld[sparse_rows], kind="stable")][:n_samples],
    }
