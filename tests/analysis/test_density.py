import numpy as np
import pytest
from scipy.stats import multivariate_normal

from skinmap.analysis.density import density_regions, fit_density, representative_samples


def _blobs(rng):
    """A tight crowded blob, a loose blob and three far outliers (rows 300-302)."""
    dense = rng.normal(0, 0.02, (200, 5)) + [5, 0, 0, 0, 0]
    loose = rng.normal(0, 0.3, (100, 5)) + [0, 5, 0, 0, 0]
    outliers = np.array([[0, 0, 5, 0, 0], [0, 0, 0, 5, 0], [0, 0, 0, 0, 5.0]])
    return np.r_[dense, loose, outliers]


def test_single_gaussian_log_density_matches_scipy(rng):
    x = rng.normal(size=(500, 3)) @ np.diag([1.0, 2.0, 0.5]) + [0, 0, 40]
    fit = fit_density(x, n_components=1, projection_dim=None)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    mean, cov = xn.mean(0), np.cov(xn.T, bias=True) + 1e-5 * np.eye(3)
    np.testing.assert_allclose(fit.log_density, multivariate_normal(mean, cov).logpdf(xn), atol=1e-3)


def test_regions_follow_percentiles():
    ld = np.arange(1000.0)
    reg = density_regions(ld)
    assert (reg == "sparse").sum() == 25 and (reg == "hypersaturated").sum() == 25
    assert reg[0] == "sparse" and reg[-1] == "hypersaturated" and reg[500] == "typical"
    with pytest.raises(ValueError):
        density_regions(ld, low_pct=60, high_pct=40)


def test_outliers_are_sparse_and_dense_blob_is_densest(rng):
    x = _blobs(rng)
    fit = fit_density(x, n_components=2, projection_dim=4, seed=0)
    reg = density_regions(fit.log_density, low_pct=0.9)  # 0.9% of 303 rows: below the 3rd
    assert set(np.flatnonzero(reg == "sparse")) == {300, 301, 302}
    reps = representative_samples(fit, n_samples=5, min_size=1)
    assert (reps["densest"] < 200).all()
    assert set(reps["sparsest"]) <= {300, 301, 302} | set(range(200, 300))
    assert np.all(np.diff(fit.log_density[reps["densest"]]) <= 0)


def test_bad_covariance_type(rng):
    with pytest.raises(ValueError, match="covariance"):
        fit_density(rng.normal(size=(10, 3)), covariance_type="nope")


def test_nan_log_densities_are_an_error_not_typical():
    ld = np.arange(100.0)
    ld[17] = np.nan
    with pytest.raises(ValueError, match=r"1 log-densities are NaN or infinite \(first: row 17\)"):
        density_regions(ld)
    with pytest.raises(ValueError, match="NaN or infinite"):
        density_regions(np.full(10, np.nan))


def _planted(rng, n):
    """A planted mixture: a crowded cluster (10 %), a broad one, sparse scatter (2 %) in 6 of 12 axes.

    The other 6 axes hold little variance, so a 6-d PCA keeps a well-defined subspace.
    """
    d = 12
    centres = np.eye(d)[:3] * 4.0
    k = rng.choice(3, n, p=[0.10, 0.88, 0.02])
    spread = np.array([0.05, 0.6, 3.0])[k][:, None]
    noise = spread * rng.normal(size=(n, d))
    noise[:, 6:] = 0.01 * rng.normal(size=(n, d - 6))
    return centres[k] + noise + 20.0 * np.eye(d)[11], k


def test_subsample_fit_matches_a_full_fit_on_held_out_rows(rng, tmp_path):
    x, k = _planted(rng, 30_000)
    path = tmp_path / "x.npy"
    np.save(path, x.astype(np.float32))
    mm = np.load(path, mmap_mode="r")
    full = fit_density(mm, n_components=4, projection_dim=6, seed=0)
    sub = fit_density(mm, n_components=4, projection_dim=6, seed=0, fit_size=3_000, chunk_rows=4_096)
    held = np.setdiff1d(np.arange(len(x)), np.sort(np.random.default_rng(0).choice(len(x), 3_000, replace=False)))
    diff = sub.log_density[held] - full.log_density[held]
    spread = full.log_density[held].std()
    assert np.median(np.abs(diff)) < 0.05 * spread
    assert np.corrcoef(sub.log_density[held], full.log_density[held])[0, 1] > 0.98
    # the regions recover the planted areas: the crowded cluster is hypersaturated, the scatter sparse
    regions = density_regions(sub.log_density)
    assert (k[regions == "hypersaturated"] == 0).mean() > 0.95
    assert (k[regions == "sparse"] == 2).mean() > 0.7  # the scatter is 2 % of rows, the region 2.5 %
    assert (regions[k == 2] == "sparse").mean() > 0.95
