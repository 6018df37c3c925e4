"""Yearly novelty at scale: IVF engine, sampled null and novelty_error against exact computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skinmap.analysis.knn import SearchConfig
from skinmap.analysis.novelty import NOVELTY_ERROR_COLUMNS, NoveltyConfig, novelty_error, yearly_novelty
from skinmap.config import knob_bounds, knob_default


@pytest.fixture(scope="module")
def planted():
    """Year 2010: a mixture; 2011: fresh draws of the same mixture (ratio ~1); 2012: a new region (> 1)."""
    rng = np.random.default_rng(7)
    d, n_clusters = 64, 12
    scale = 0.5  # = sqrt(16 / d): the geometry of 16-d unit-variance clusters, in 64-d

    def draw(n):
        return scale * (centres[rng.integers(0, n_clusters, n)] + rng.standard_normal((n, d)))

    centres = 3.0 * rng.standard_normal((n_clusters, d))
    novel_centre = 3.0 * rng.standard_normal(d)
    novel = scale * (novel_centre + rng.standard_normal((800, d)))
    z = np.vstack([draw(3000), draw(800), novel]).astype(np.float32)
    years = np.r_[np.full(3000, 2010), np.full(800, 2011), np.full(800, 2012)]
    return z, years


@pytest.fixture(scope="module")
def exact(planted):
    z, years = planted
    return yearly_novelty(z, years, n_neighbors=10, n_bootstrap=100, progress=False)


def test_search_knobs_are_delegated():
    for name in ("search_method", "ivf_nlist", "ivf_nprobe", "ivf_train_size", "ivf_min_rows", "ivf_pca_components",
                 "ivf_refine_factor"):
        assert knob_default(NoveltyConfig, name) == knob_default(SearchConfig, name)
        assert knob_bounds(NoveltyConfig, name) == knob_bounds(SearchConfig, name)
    with pytest.raises(ValueError, match="search_method"):
        NoveltyConfig(search_method="hnsw")
    with pytest.raises(ValueError, match="null_sample_size"):
        NoveltyConfig(null_sample_size=-1)
    cfg = NoveltyConfig(search_method="ivf", ivf_nprobe=4, seed=3)
    assert cfg.search_config == SearchConfig(search_method="ivf", ivf_nprobe=4, seed=3)


def test_planted_answers_and_ivf_agrees_with_exact(planted, exact):
    z, years = planted
    t = exact.table.set_index("year")
    assert abs(t.loc[2011, "ratio"] - 1.0) < 0.05
    assert t.loc[2012, "ratio"] > 1.5
    ivf = yearly_novelty(z, years, n_neighbors=10, n_bootstrap=100, search_method="ivf", progress=False)
    a = ivf.table.set_index("year")
    for col in ("nu", "nu_null", "ratio"):
        rel = (a.loc[[2011, 2012], col] / t.loc[[2011, 2012], col] - 1).abs()
        assert (rel < 0.01).all(), (col, rel.to_dict())
    # the same cross-year duplicates (none planted here) and defined per-sample scores
    assert len(ivf.cross_year_duplicates) == len(exact.cross_year_duplicates)
    assert np.isfinite(ivf.per_sample[years > 2010]).all()


def test_small_histories_are_searched_exactly(planted, exact):
    """ivf_min_rows: years whose history holds fewer rows are brute force (2011: 3,000 rows < 3,500),
    the later year goes through the IVF lists (probing 1 of 64 here, so it is not exact)."""
    z, years = planted
    res = yearly_novelty(z, years, n_neighbors=10, n_bootstrap=100, search_method="ivf", ivf_nlist=64,
                         ivf_nprobe=1, ivf_min_rows=3500, progress=False)
    a, t = res.table.set_index("year"), exact.table.set_index("year")
    np.testing.assert_allclose(a.loc[2011, ["nu", "nu_null"]].to_numpy(float),
                               t.loc[2011, ["nu", "nu_null"]].to_numpy(float), rtol=1e-5)
    assert a.loc[2012, "nu"] > t.loc[2012, "nu"] * (1 + 1e-4)  # IVF with one probed list over-estimates


def test_pca_candidates_exact_when_complete_and_flagged_when_too_few(planted, exact):
    """The paper-scale engine (IVF candidates in principal axes, exact re-ranking). Keeping every axis
    and probing every list is brute force; 16 axes of clusters whose spread fills 64 dimensions lose
    the within-cluster ranking, and novelty_error (exact k-NN on a sample) reports it."""
    z, years = planted
    full = yearly_novelty(z, years, n_neighbors=10, n_bootstrap=100, search_method="ivf", ivf_nlist=16,
                          ivf_nprobe=16, ivf_pca_components=64, ivf_refine_factor=4, progress=False)
    pd.testing.assert_frame_equal(full.table, exact.table, rtol=1e-4)
    few = yearly_novelty(z, years, n_neighbors=10, n_bootstrap=100, search_method="ivf", ivf_nlist=16,
                         ivf_nprobe=16, ivf_pca_components=16, progress=False)
    err = novelty_error(z, years, few, n_queries=300, seed=0).set_index("year")
    assert err.loc[2011, "recall_at_k"] < 0.9
    assert err.loc[2011, "rel_error"] > 0.01


def test_ivf_visiting_every_list_is_exact(planted, exact):
    z, years = planted
    res = yearly_novelty(z, years, n_neighbors=10, n_bootstrap=100, search_method="ivf", ivf_nlist=16,
                         ivf_nprobe=16, progress=False)
    pd.testing.assert_frame_equal(res.table, exact.table, rtol=1e-5)
    np.testing.assert_allclose(res.per_sample, exact.per_sample, rtol=1e-5)


def test_sampled_null_centre_close_to_exact_null(planted, exact):
    z, years = planted
    res = yearly_novelty(z, years, n_neighbors=10, n_bootstrap=100, null_sample_size=1500, progress=False)
    t, s = exact.table.set_index("year"), res.table.set_index("year")
    np.testing.assert_array_equal(s["nu"], t["nu"])  # the sample only touches the null
    rel = (s.loc[[2011, 2012], "nu_null"] / t.loc[[2011, 2012], "nu_null"] - 1).abs()
    assert (rel < 0.01).all(), rel.to_dict()
    # and within the centre's reported sampling error
    se = pd.Series(res.null_centre_se).loc[[2011, 2012]] / t.loc[[2011, 2012], "nu_null"]
    assert (se > 0).all() and (rel < 4 * se).all(), (rel.to_dict(), se.to_dict())


def test_reported_null_centre_se_matches_its_spread_over_seeds():
    """The centre's sampling error sd/sqrt(m) (times the finite-population factor) is what the
    centre actually scatters by across seeds."""
    rng = np.random.default_rng(3)
    z = rng.standard_normal((1700, 8)).astype(np.float32)
    years = np.r_[np.full(1500, 1), np.full(200, 2)]
    centres, ses = [], []
    for seed in range(30):
        res = yearly_novelty(z, years, n_neighbors=5, n_bootstrap=40, null_sample_size=100, seed=seed,
                             progress=False)
        centres.append(res.table.set_index("year").loc[2, "nu_null"])
        ses.append(res.null_centre_se[2])
    spread = np.std(centres, ddof=1)
    assert 0.6 < spread / np.mean(ses) < 1.5


def test_novelty_error_is_zero_for_the_exact_path(planted, exact):
    z, years = planted
    err = novelty_error(z, years, exact, n_queries=300, seed=1)
    assert list(err.columns) == list(NOVELTY_ERROR_COLUMNS)
    assert err["year"].tolist() == [2011, 2012]
    np.testing.assert_allclose(err["rel_error"], 0.0, atol=1e-6)
    np.testing.assert_allclose(err["recall_at_k"], 1.0)
    assert (err["n_queries"] == 300).all()
    # the full exact null against a 300-point exact estimate of it: within its own sampling error
    assert (err["null_rel_error"].abs() < 4 * err["null_rel_se"]).all()


def test_novelty_error_matches_a_brute_force_numpy_check(planted, exact):
    """nu_exact of novelty_error equals an independent numpy computation on the same sampled rows."""
    z, years = planted
    res = yearly_novelty(z, years, n_neighbors=10, n_bootstrap=20, search_method="ivf", ivf_nlist=64,
                         ivf_nprobe=1, progress=False)
    err = novelty_error(z, years, res, n_queries=200, seed=2, chunk_size=700).set_index("year")
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    for t in (2011, 2012):
        # nu_approx is the result's own mean on the rows; reconstruct the rows from it
        hist = zn[years < t].astype(np.float64)
        d_all = np.sort(1 - zn[years == t].astype(np.float64) @ hist.T, axis=1)[:, :10].mean(axis=1)
        lo, hi = d_all.min(), d_all.max()
        assert lo <= err.loc[t, "nu_exact"] <= hi
        assert err.loc[t, "nu_exact"] == pytest.approx(d_all.mean(), rel=0.05)  # a 200-row sample of it
        assert err.loc[t, "nu_approx"] >= err.loc[t, "nu_exact"] - 1e-6  # IVF can only miss neighbours
    assert (err["recall_at_k"] < 1).any()  # nprobe=1 of 64 lists is visibly approximate


def test_memmap_input_gives_identical_novelty(planted, tmp_path):
    z, years = planted
    np.save(tmp_path / "z.npy", z)
    mm = np.load(tmp_path / "z.npy", mmap_mode="r")
    kw = dict(n_neighbors=5, n_bootstrap=20, search_method="ivf", null_sample_size=500, progress=False)
    a, b = yearly_novelty(z, years, **kw), yearly_novelty(mm, years, **kw)
    pd.testing.assert_frame_equal(a.table, b.table)
    np.testing.assert_array_equal(a.per_sample, b.per_sample)


def test_null_monte_carlo_se_matches_the_spread_over_bootstrap_seeds(planted):
    """novelty_error's null_mc_rel_se (sd of the B replicates / sqrt(B)) against the spread of nu_null over
    20 bootstrap seeds of the exact computation (where only the bootstrap draws change)."""
    z, years = planted
    centres, mc = [], []
    for seed in range(20):
        res = yearly_novelty(z, years, n_neighbors=10, n_bootstrap=50, seed=seed, progress=False)
        centres.append(res.table.set_index("year").loc[2011, "nu_null"])
        err = novelty_error(z, years, res, n_queries=50, seed=0).set_index("year")
        mc.append(err.loc[2011, "null_mc_rel_se"] * err.loc[2011, "nu_null"])
    ratio = np.std(centres, ddof=1) / np.mean(mc)
    assert 0.6 < ratio < 1.6, ratio
