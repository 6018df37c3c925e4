"""Density of the embedding space with a Gaussian mixture (paper section 7).

A Gaussian mixture model is fitted to a PCA projection of the (l2-normalised) embeddings: a
full-covariance GMM in 1,024 dimensions would need ~0.5 M parameters per component and far more
samples than most datasets have, while the leading principal components keep the geometry that
separates crowded from empty regions. Each sample's log-density under the mixture ranks it:
above the 97.5th percentile is *hypersaturated* (redundant: near-duplicates, over-sampled
classes), below the 2.5th is *sparse* (where quality failures such as off-topic images,
artefacts and occlusion surface). Log-densities are in the projected space (nats), so they
compare samples within one fit, not across fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

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
) -> DensityFit:
    """Fit a GMM to ``x`` (rows l2-normalised, then PCA to ``projection_dim``) and score it.

    ``projection_dim=None`` or ``>= d`` skips the projection. ``n_components`` is capped at the
    number of samples. Returns per-sample log-density (``score_samples``) and component labels.
    """
    xn = l2_normalize(x).astype(np.float64)
    n, d = xn.shape
    if n < 2:
        raise ValueError(f"need at least 2 samples for a density, got {n}")
    if covariance_type not in ("full", "tied", "diag", "spherical"):
        raise ValueError(f"unknown covariance_type {covariance_type!r}")
    pca = None
    if projection_dim is not None and projection_dim < min(n, d):
        pca = PCA(n_components=projection_dim, random_state=seed)
        xn = pca.fit_transform(xn)
    gmm = GaussianMixture(
        n_components=int(min(n_components, n)),
        covariance_type=covariance_type,
        reg_covar=reg_covar,
        random_state=seed,
        n_init=1,
    ).fit(xn)
    return DensityFit(gmm.score_samples(xn), gmm.predict(xn), pca, gmm)


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
