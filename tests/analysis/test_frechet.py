"""Fréchet distance (eqs. 7-8) against closed forms, scipy.linalg.sqrtm and planted structure."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from skinmap.analysis.frechet import (
    GaussianStats,
    frechet_distance,
    gaussian_stats,
    pairwise_frechet,
    trace_sqrt_product,
)
from skinmap.analysis.similarity import (
    FRECHET_COLUMNS,
    cluster_order,
    dataset_similarity,
    high_overlap_pairs,
    known_pair_ranks,
    uniqueness,
)
from skinmap.analysis import frechet as frechet_module


def _spd(rng, d, cond=10.0):
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (q * np.geomspace(1.0, 1.0 / cond, d)) @ q.T


def test_diagonal_closed_form(rng):
    # Commuting (diagonal) covariances: FD = |mu_a - mu_b|^2 + sum (sqrt a_i - sqrt b_i)^2,
    # including zero variances (singular covariances, where sqrtm is unreliable).
    d = 12
    a, b = rng.uniform(0.1, 2, d), rng.uniform(0.1, 2, d)
    a[:3] = 0.0
    b[2:5] = 0.0
    ma, mb = rng.standard_normal(d), rng.standard_normal(d)
    expected = np.sum((ma - mb) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(GaussianStats.from_moments(ma, np.diag(a)), GaussianStats.from_moments(mb, np.diag(b)))
    assert got == pytest.approx(expected, rel=1e-10)
    # rotating both Gaussians together leaves FD unchanged (now non-diagonal)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    got_rot = frechet_distance(GaussianStats.from_moments(q @ ma, q @ np.diag(a) @ q.T),
                               GaussianStats.from_moments(q @ mb, q @ np.diag(b) @ q.T))
    assert got_rot == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize("d", [2, 17, 64])
def test_matches_scipy_sqrtm(rng, d):
    sa, sb = _spd(rng, d), _spd(rng, d, cond=30)
    ma, mb = 0.3 * rng.standard_normal(d), 0.3 * rng.standard_normal(d)
    ref = np.sum((ma - mb) ** 2) + np.trace(sa) + np.trace(sb) - 2 * np.trace(linalg.sqrtm(sa @ sb)).real
    got = frechet_distance(GaussianStats.from_moments(ma, sa), GaussianStats.from_moments(mb, sb))
    assert got == pytest.approx(ref, rel=1e-6)
    assert frechet_distance(GaussianStats.from_moments(mb, sb), GaussianStats.from_moments(ma, sa)) == pytest.approx(got, rel=1e-9)
    assert frechet_distance(GaussianStats.from_moments(ma, sa), GaussianStats.from_moments(ma, sa)) == pytest.approx(0, abs=1e-9)


def test_one_dimensional_closed_form():
    # 1-D Gaussians: FD = (mu_a - mu_b)^2 + (sigma_a - sigma_b)^2
    got = frechet_distance(GaussianStats.from_moments([1.0], [[4.0]]), GaussianStats.from_moments([-2.0], [[0.25]]))
    assert got == pytest.approx(9.0 + 1.5**2)


def test_stats_estimators(rng):
    from sklearn.covariance import LedoitWolf

    x = rng.standard_normal((40, 8)) * np.arange(1, 9)
    s = gaussian_stats(x, covariance="empirical", normalize=False)
    np.testing.assert_allclose(s.cov, np.cov(x, rowvar=False, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(s.factor @ s.factor.T, s.cov, atol=1e-10)
    lw = gaussian_stats(x, covariance="ledoit_wolf", normalize=False)
    np.testing.assert_allclose(lw.cov, LedoitWolf().fit(x).covariance_ * 40 / 39, rtol=1e-10)
    assert 0 < lw.shrinkage < 1 and lw.estimator == "ledoit_wolf"
    assert gaussian_stats(x, covariance="auto", normalize=False).estimator == "empirical"
    # bootstrap weights = repeated rows, with chunked sums (chunk smaller than n)
    counts = np.random.default_rng(3).integers(0, 4, size=40)
    rep = np.repeat(x, counts, axis=0)
    wst = gaussian_stats(x, covariance="empirical", normalize=False, counts=counts, chunk_rows=7)
    np.testing.assert_allclose(wst.mean, rep.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(wst.cov, np.cov(rep, rowvar=False, ddof=1), rtol=1e-10)
    assert wst.n == counts.sum()
    with pytest.raises(ValueError, match="at least 2 rows"):
        gaussian_stats(x[:1])
    with pytest.raises(ValueError, match="counts"):
        gaussian_stats(x, counts=-np.ones(40))
    with pytest.raises(ValueError, match="covariance must be"):
        gaussian_stats(x, covariance="oas")


def test_fewer_samples_than_dimensions_is_finite(rng):
    d = 50
    a, b = rng.standard_normal((6, d)), rng.standard_normal((9, d)) + 0.2
    for cov in ("empirical", "ledoit_wolf", "auto"):
        sa, sb = gaussian_stats(a, covariance=cov), gaussian_stats(b, covariance=cov)
        fd = frechet_distance(sa, sb)
        assert isinstance(fd, float) and np.isfinite(fd) and fd >= 0
    assert gaussian_stats(a, covariance="auto").estimator == "ledoit_wolf"
    assert gaussian_stats(a, covariance="empirical").factor.shape[1] <= 5  # rank n - 1


def _sqrtm_fd(ma, sa, mb, sb):
    """The usual FD (pytorch-fid): a general matrix square root of the product."""
    return np.sum((ma - mb) ** 2) + np.trace(sa) + np.trace(sb) - 2 * np.trace(linalg.sqrtm(sa @ sb)).real


def _eigh_trace_sqrt(sa, sb):
    """Independent Tr (S_a S_b)^{1/2}: eigenvalues of S_a^{1/2} S_b S_a^{1/2}, S_a^{1/2} by eigh."""
    w, v = linalg.eigh(sa)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    return np.sqrt(np.clip(linalg.eigvalsh(root @ sb @ root), 0, None)).sum()


def test_cholesky_and_eigen_paths_match_sqrtm(rng):
    d = 40
    sa, sb = _spd(rng, d, cond=100), _spd(rng, d, cond=50)
    ma, mb = 0.2 * rng.standard_normal(d), 0.2 * rng.standard_normal(d)
    ref = _sqrtm_fd(ma, sa, mb, sb)
    chol_a, chol_b = GaussianStats.from_moments(ma, sa), GaussianStats.from_moments(mb, sb)
    eig_a = GaussianStats.from_moments(ma, sa, factorization="eigen")
    eig_b = GaussianStats.from_moments(mb, sb, factorization="eigen")
    assert chol_a.cholesky and chol_b.cholesky and not eig_a.cholesky and not eig_b.cholesky
    assert chol_a.rank == eig_a.rank == d
    np.testing.assert_allclose(chol_a.factor, np.linalg.cholesky(sa), rtol=1e-10, atol=1e-14)
    for a, b in [(chol_a, chol_b), (eig_a, eig_b), (chol_a, eig_b), (eig_a, chol_b)]:
        assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)
        assert frechet_distance(a, b) == pytest.approx(frechet_distance(eig_a, eig_b), rel=1e-9)
    assert frechet_distance(chol_a, chol_a) == pytest.approx(0, abs=1e-9)
    with pytest.raises(ValueError, match="factorization"):
        GaussianStats.from_moments(ma, sa, factorization="svd")


@pytest.mark.parametrize("rank_b", [3, 11])
def test_rank_deficient_against_pd(rng, monkeypatch, rank_b):
    # A positive definite S_a against a singular S_b of rank 3 (low rank: the k x k Gram is
    # cheaper) or 11 of 12 (nearly full: dsygst with S_a's Cholesky factor is cheaper). Both
    # must give the commuting closed form, whichever factor is passed first.
    d = 12
    a, b = rng.uniform(0.1, 2, d), rng.uniform(0.1, 2, d)
    b[rank_b:] = 0.0
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    ma, mb = rng.standard_normal(d), rng.standard_normal(d)
    expected = np.sum((ma - mb) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    sa, sb = GaussianStats.from_moments(q @ ma, (q * a) @ q.T), GaussianStats.from_moments(q @ mb, (q * b) @ q.T)
    assert sa.cholesky and not sb.cholesky and sb.rank == rank_b
    calls = []
    real_dsygst = frechet_module.lapack.dsygst
    monkeypatch.setattr(frechet_module.lapack, "dsygst", lambda *x, **k: calls.append(1) or real_dsygst(*x, **k))
    for first, second in [(sa, sb), (sb, sa)]:
        got = frechet_distance(first, second)
        assert isinstance(got, float) and np.isfinite(got) and got >= 0
        assert got == pytest.approx(expected, rel=1e-8)
    assert len(calls) == (2 if rank_b == 11 else 0)


def test_singular_empirical_covariances(rng):
    # Fewer images than dimensions, no shrinkage: both covariances singular (rank n - 1), the
    # Cholesky attempt is rejected and the eigen factors are used; real, finite, >= 0 and equal to
    # an independent eigen-based computation (sqrtm is unreliable on singular products).
    d = 30
    x, y = rng.standard_normal((8, d)), rng.standard_normal((12, d)) + 0.3
    sa, sb = gaussian_stats(x, covariance="empirical"), gaussian_stats(y, covariance="empirical")
    assert not sa.cholesky and not sb.cholesky and (sa.rank, sb.rank) == (7, 11)
    expected = np.sum((sa.mean - sb.mean) ** 2) + sa.trace + sb.trace - 2 * _eigh_trace_sqrt(sa.cov, sb.cov)
    got = frechet_distance(sa, sb)
    assert isinstance(got, float) and np.isfinite(got) and got >= 0
    assert got == pytest.approx(expected, rel=1e-8)
    assert trace_sqrt_product(sa, sb) == pytest.approx(trace_sqrt_product(sb, sa), rel=1e-10)


def test_ledoit_wolf_few_samples_matches_sqrtm(rng):
    # n < d with Ledoit-Wolf shrinkage: positive definite, so the Cholesky path, and well enough
    # conditioned for sqrtm to serve as the reference.
    d = 48
    x, y = rng.standard_normal((20, d)), rng.standard_normal((35, d)) * np.linspace(0.5, 1.5, d) + 0.1
    sa, sb = gaussian_stats(x, covariance="auto"), gaussian_stats(y, covariance="auto")
    assert sa.estimator == sb.estimator == "ledoit_wolf" and sa.cholesky and sb.cholesky
    ref = _sqrtm_fd(sa.mean, sa.cov, sb.mean, sb.cov)
    assert frechet_distance(sa, sb) == pytest.approx(ref, rel=1e-6)
    eig_a = GaussianStats.from_moments(sa.mean, sa.cov, factorization="eigen")
    eig_b = GaussianStats.from_moments(sb.mean, sb.cov, factorization="eigen")
    assert frechet_distance(eig_a, eig_b) == pytest.approx(frechet_distance(sa, sb), rel=1e-9)


def test_pairwise_threads_match_sequential(rng):
    # A mix of positive definite and singular covariances; the thread pool must change nothing.
    d = 24
    stats = [GaussianStats.from_moments(rng.standard_normal(d), _spd(rng, d, cond=20)) for _ in range(3)]
    stats += [gaussian_stats(rng.standard_normal((n, d)), covariance="empirical") for n in (6, 15)]
    one = pairwise_frechet(stats, n_jobs=1)
    np.testing.assert_array_equal(pairwise_frechet(stats, n_jobs=3), one)
    np.testing.assert_array_equal(one, one.T)
    assert (np.diag(one) == 0).all()
    for i in range(len(stats)):
        for j in range(i + 1, len(stats)):
            # (only BLAS's thread count differs outside pairwise_frechet: last-bit differences)
            assert one[i, j] == pytest.approx(frechet_distance(stats[i], stats[j]), rel=1e-12)
    with pytest.raises(ValueError, match="n_jobs"):
        pairwise_frechet(stats, n_jobs=0)


@pytest.fixture
def planted(rng):
    d = 16
    centre = rng.standard_normal(d)
    parent = centre + 0.5 * rng.standard_normal((400, d))
    subset = parent[rng.choice(400, 150, replace=False)]
    sibling = centre + 0.5 * rng.standard_normal((300, d)) + 0.6 * rng.standard_normal(d)
    far = -centre + 0.3 * rng.standard_normal((200, d))
    return {"parent": parent, "subset": subset, "sibling": sibling, "far": far}


def test_planted_similarity(planted):
    res = dataset_similarity(planted, n_bootstrap=30, seed=1, progress=False)
    assert list(res.table.columns) == list(FRECHET_COLUMNS)
    assert len(res.table) == 6 and res.table[["fd", "ci_low", "ci_high"]].notna().all().all()
    assert (res.table["ci_low"] <= res.table["ci_high"]).all()
    lowest = res.table.sort_values("fd").iloc[0]
    assert {lowest["dataset_a"], lowest["dataset_b"]} == {"parent", "subset"}
    far_pairs = res.table[(res.table["dataset_a"] == "far") | (res.table["dataset_b"] == "far")]
    assert ((far_pairs["ci_low"] <= far_pairs["fd"]) & (far_pairs["fd"] <= far_pairs["ci_high"])).all()
    u = uniqueness(res.matrix)
    assert u.iloc[0]["dataset"] == "far"
    expected_far = np.mean([res.matrix.loc["far", k] for k in ("parent", "subset", "sibling")])
    assert u.iloc[0]["uniqueness"] == pytest.approx(expected_far)
    hi = high_overlap_pairs(res.table, quantile=1 / 6)
    assert len(hi) == 1 and {hi.iloc[0]["dataset_a"], hi.iloc[0]["dataset_b"]} == {"parent", "subset"}
    known = known_pair_ranks(res.matrix, [("subset", "parent"), ("subset", "missing")],
                             overlap_threshold=hi["threshold"].iloc[0])
    assert known.iloc[0]["rank"] == 1 and known.iloc[0]["parent_is_nearest"] and known.iloc[0]["high_overlap"]
    assert not known.iloc[1]["present"]
    order, link = cluster_order(res.matrix)
    assert sorted(order) == sorted(planted) and link is not None
    assert "far" in (order[0], order[-1])  # the outlier joins the tree last, so sits at an end
    assert abs(order.index("parent") - order.index("subset")) == 1


def test_pca_reduction_is_rotation_invariant(planted):
    # Projecting onto all principal axes is a translation + rotation: FD must not change.
    full = dataset_similarity(planted, covariance="empirical", n_bootstrap=0, progress=False)
    pca = dataset_similarity(planted, covariance="empirical", pca_components=16, n_bootstrap=0, progress=False)
    np.testing.assert_allclose(pca.table["fd"], full.table["fd"], rtol=1e-8)
    assert (pca.stats["dim"] == 16).all()
    with pytest.raises(ValueError, match="pca_components"):
        dataset_similarity(planted, pca_components=999, n_bootstrap=0, progress=False)


def test_bad_groups(planted):
    with pytest.raises(ValueError, match="too few images.*tiny"):
        dataset_similarity({**planted, "tiny": planted["far"][:1]}, n_bootstrap=0, progress=False)
    with pytest.raises(ValueError, match="at least 2 datasets"):
        dataset_similarity({"a": planted["far"]}, progress=False)
    with pytest.raises(ValueError, match="dimension"):
        frechet_distance(GaussianStats.from_moments([0.0], [[1.0]]), GaussianStats.from_moments([0, 0], np.eye(2)))
