"""Streamed dataset Gaussians and all-pairs FD from (rows, labels) (issue 19), against numpy / scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import linalg

from skinmap.analysis.frechet import label_codes, streamed_moments
from skinmap.analysis.similarity import (SimilarityConfig, SizeFairConfig, _all_pairs_frechet_rows,
                                         dataset_similarity, dataset_similarity_rows, frechet_exactness,
                                         similarity_report, size_fair_similarity, size_fair_similarity_rows)


def _sqrtm_fd(a: np.ndarray, b: np.ndarray) -> float:
    """Eq. 8 from numpy moments and scipy's general matrix square root (the textbook formula)."""
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    diff = a.mean(axis=0) - b.mean(axis=0)
    return float(diff @ diff + np.trace(sa) + np.trace(sb) - 2.0 * np.trace(np.real(linalg.sqrtm(sa @ sb))))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def atlas(tmp_path):
    """Five datasets in d = 16 shuffled into one memmapped array; 'copy' is a near-copy of 'D3'.

    Variances fall geometrically over the axes, as in embeddings (a few axes carry most of it).
    """
    rng = np.random.default_rng(3)
    d = 16
    scale = np.geomspace(1.0, 0.05, d)
    groups = {f"D{i}": (rng.normal(size=(n, d)) + rng.normal(size=d)) * scale + 3 * scale[0] * np.eye(d)[0]
              for i, n in enumerate([300, 120, 80, 900])}
    groups["copy"] = groups["D3"][rng.choice(900, 500, replace=False)] + 0.01 * rng.normal(size=(500, d))
    names = list(groups)
    x = np.concatenate([groups[k] for k in names]).astype(np.float32)
    labels = np.repeat(names, [len(groups[k]) for k in names])
    order = rng.permutation(len(x))
    path = tmp_path / "fused.npy"
    np.save(path, x[order])
    return np.load(path, mmap_mode="r"), labels[order]


def test_streamed_moments_equal_numpy(atlas):
    x, labels = atlas
    names = ["D0", "D1", "copy"]  # D2 and D3 rows are skipped
    codes = label_codes(labels, names)
    mom = streamed_moments(x, codes, len(names), names=names, chunk_rows=37)
    for a, name in enumerate(names):
        rows = _unit(np.asarray(x[labels == name])).astype(np.float64)
        assert mom.n[a] == len(rows)
        np.testing.assert_allclose(mom.mean[a], rows.mean(axis=0), rtol=0, atol=1e-14)
        np.testing.assert_allclose(mom.cov[a], np.cov(rows, rowvar=False), rtol=0, atol=1e-14)
    # pooled: the covariance of all kept rows together
    kept = _unit(np.asarray(x[codes >= 0])).astype(np.float64)
    centre, pooled = mom.pooled()
    np.testing.assert_allclose(centre, kept.mean(axis=0), atol=1e-14)
    np.testing.assert_allclose(pooled, np.cov(kept, rowvar=False), atol=1e-14)


def test_all_pairs_fd_equals_sqrtm_and_finds_the_near_copy(atlas):
    x, labels = atlas
    sim = dataset_similarity_rows(x, labels, n_bootstrap=0, covariance="empirical", progress=False)
    names = list(sim.matrix.index)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ref = _sqrtm_fd(_unit(np.asarray(x[labels == a])).astype(np.float64),
                            _unit(np.asarray(x[labels == b])).astype(np.float64))
            assert sim.matrix.loc[a, b] == pytest.approx(ref, rel=1e-7, abs=1e-10)
    smallest = sim.table.loc[sim.table["fd"].idxmin()]
    assert {smallest["dataset_a"], smallest["dataset_b"]} == {"D3", "copy"}
    check = frechet_exactness(x, labels, sim.matrix, n_pairs=3)
    assert (check["relative_error"] < 1e-7).all()


def test_rows_version_reproduces_the_grouped_one(atlas):
    # the chapter's groups are the datasets' rows in row order: same fits, same bootstrap draws
    x, labels = atlas
    names = sorted(set(labels))
    groups = {k: np.asarray(x[labels == k]) for k in names}
    cfg = SimilarityConfig(n_bootstrap=8, min_images=20, covariance="auto")
    old = dataset_similarity(groups, cfg, progress=False)
    new = dataset_similarity_rows(x, labels, cfg, progress=False)
    np.testing.assert_allclose(new.matrix.to_numpy(), old.matrix.to_numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(new.replicates, old.replicates, rtol=1e-9, atol=1e-12)
    pd.testing.assert_frame_equal(new.stats, old.stats)
    # with a projection too
    old = dataset_similarity(groups, cfg, pca_components=6, n_bootstrap=0, progress=False)
    new = dataset_similarity_rows(x, labels, cfg, pca_components=6, n_bootstrap=0, progress=False)
    np.testing.assert_allclose(new.matrix.to_numpy(), old.matrix.to_numpy(), rtol=1e-7, atol=1e-10)


def test_poisson_bootstrap_in_a_reduced_basis_matches_the_exact_spread(atlas):
    # Poisson weights in the full basis (k = d) and in 8 of 16 axes: the replicate spread of every
    # pair is that of the exact (multinomial, full-dimension) bootstrap within Monte Carlo noise
    x, labels = atlas
    exact = dataset_similarity_rows(x, labels, n_bootstrap=200, progress=False)
    for k in (16, 8):
        fast = dataset_similarity_rows(x, labels, n_bootstrap=200, bootstrap_components=k, progress=False)
        np.testing.assert_array_equal(fast.matrix.to_numpy(), exact.matrix.to_numpy())
        iu = np.triu_indices(len(exact.matrix), 1)
        sd_exact = exact.replicates[:, iu[0], iu[1]].std(axis=0)
        sd_fast = fast.replicates[:, iu[0], iu[1]].std(axis=0)
        ratio = sd_fast / sd_exact
        assert np.all((ratio > 0.7) & (ratio < 1.3)), (k, ratio)
        mid_exact = np.median(exact.replicates[:, iu[0], iu[1]], axis=0)
        mid_fast = np.median(fast.replicates[:, iu[0], iu[1]], axis=0)
        # centres: the k-axes replicates miss the residual axes' share of the bootstrap's upward bias
        # (measured here: at most 0.7 sd, on the near-copy pair at k = 8); two independent bootstraps of
        # B = 200 differ in their medians by about 0.13 sd (Monte Carlo), so k = d allows 3 of those
        assert np.all(np.abs(mid_fast - mid_exact) < (0.4 if k == 16 else 0.75) * sd_exact), k


def test_batched_size_fair_pairs_equal_sqrtm():
    rng = np.random.default_rng(0)
    for size in (5, 12, 30):  # fewer rows than dimensions, and more
        sub = rng.normal(size=(4, size, 10)) + rng.normal(size=(4, 1, 10))
        fd = _all_pairs_frechet_rows(sub)
        for i in range(4):
            for j in range(i + 1, 4):
                assert fd[i, j] == fd[j, i] == pytest.approx(_sqrtm_fd(sub[i], sub[j]), rel=1e-6, abs=1e-9)


def test_size_fair_rows_reproduces_the_grouped_one(atlas):
    x, labels = atlas
    names = sorted(set(labels))
    groups = {k: np.asarray(x[labels == k]) for k in names}
    cfg = SizeFairConfig(n_components=6, n_draws=3, n_subsamples=4)
    old_table, old = size_fair_similarity(groups, cfg, progress=False)
    new_table, new = size_fair_similarity_rows(x, labels, cfg, progress=False)
    for a, b in [(old.fd, new.fd), (old.ci_low, new.ci_low), (old.replicates, new.replicates)]:
        np.testing.assert_allclose(b, a, rtol=1e-7, atol=1e-10)
    report = similarity_report(x, labels, SimilarityConfig(n_bootstrap=0), cfg, progress=False)
    np.testing.assert_allclose(report.size_fair.fd, old.fd, rtol=1e-7, atol=1e-10)
    assert report.uniqueness["dataset"].iloc[-1] in ("D3", "copy") or report.uniqueness["uniqueness"].is_monotonic_decreasing
