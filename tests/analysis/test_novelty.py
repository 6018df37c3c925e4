"""Yearly novelty (eqs. 1-6) against a brute-force numpy implementation of the equations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skinmap.analysis.novelty import (
    YEARLY_COLUMNS,
    novelty_vs_prevalence,
    ratio_interval,
    stratified_novelty,
    yearly_novelty,
)


def _unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(z, years, k, B, seed, ci=0.95):
    """Eqs. 1-6 literally: full distance matrices, self removed by identity, B re-scored draws."""
    z = _unit(z).astype(np.float64)
    out = {}
    valid_years = sorted({int(y) for y in years if y is not None and not pd.isna(y)})
    for t in valid_years:
        new = [i for i, y in enumerate(years) if not pd.isna(y) and y == t]
        # P_t in (year, input position) order, the documented order of the bootstrap draws.
        hist = sorted((i for i, y in enumerate(years) if not pd.isna(y) and y < t), key=lambda i: (years[i], i))
        if len(hist) < k + 1:
            continue
        d_new = 1.0 - z[new] @ z[hist].T  # eq. 2
        d_i = np.sort(d_new, axis=1)[:, :k].mean(axis=1)  # eq. 3
        nu = d_i.mean()  # eq. 4
        rng = np.random.default_rng([seed, t])
        reps = []
        for _ in range(B):  # eq. 5, re-scoring every drawn point from scratch
            draw = rng.integers(0, len(hist), size=len(new))
            scores = []
            for j in draw:
                dist = 1.0 - z[hist] @ z[hist[j]]
                dist[j] = np.inf  # exclude the point itself by identity; duplicates stay
                scores.append(np.sort(dist)[:k].mean())
            reps.append(np.mean(scores))
        reps = np.array(reps)
        lo, hi = np.quantile(reps, [(1 - ci) / 2, 1 - (1 - ci) / 2])
        out[t] = dict(nu=nu, nu_null=reps.mean(), ci_low=lo, ci_high=hi, ratio=nu / reps.mean(),
                      d_i=dict(zip(new, d_i)))
    return out


@pytest.fixture
def small(rng):
    n, d = 90, 6
    z = rng.standard_normal((n, d))
    years = rng.choice([2001, 2003, 2004, 2007], size=n, p=[0.3, 0.2, 0.3, 0.2]).astype(float)
    # planted exact duplicates: inside the history, and across years
    z[5] = z[4]; years[5] = years[4]
    z[7] = z[6]; years[6], years[7] = 2001, 2004
    years[10] = np.nan
    return z, years


def test_matches_brute_force(small):
    z, years = small
    k, B, seed = 3, 25, 11
    res = yearly_novelty(z, years, n_neighbors=k, n_bootstrap=B, seed=seed, progress=False)
    ref = brute_force(z, list(years), k, B, seed)
    assert list(res.table.columns) == list(YEARLY_COLUMNS)
    assert ref, "fixture should give at least one scored year"
    for t, r in ref.items():
        row = res.table.set_index("year").loc[t]
        for col in ("nu", "nu_null", "ci_low", "ci_high", "ratio"):
            assert row[col] == pytest.approx(r[col], abs=2e-6), (t, col)
        for i, d in r["d_i"].items():
            assert res.per_sample[i] == pytest.approx(d, abs=2e-6)
    assert res.n_missing_year == 1
    assert np.isnan(res.per_sample[10])
    first = res.table.iloc[0]
    assert first["year"] == 2001 and first["n_history"] == 0 and np.isnan(first["nu"])


def test_duplicate_is_a_neighbour_not_self(rng):
    # k = 1: a historical point with an exact twin has leave-self-out distance 0 (its twin),
    # which only happens if self is excluded by identity rather than by rank.
    z = rng.standard_normal((6, 4))
    z[1] = z[0]
    years = [2000] * 5 + [2001]
    res = yearly_novelty(z, years, n_neighbors=1, n_bootstrap=400, seed=0, progress=False)
    ref = brute_force(z, years, 1, 400, 0)
    assert res.table.iloc[1]["nu_null"] == pytest.approx(ref[2001]["nu_null"], abs=1e-6)
    hist = _unit(z[:5]).astype(np.float64)
    d = 1 - hist @ hist.T
    np.fill_diagonal(d, np.inf)
    assert d.min(axis=1)[0] == pytest.approx(0, abs=1e-6)  # sanity of the planted twin


def test_cross_year_duplicates_reported(small):
    z, years = small
    res = yearly_novelty(z, years, n_neighbors=3, n_bootstrap=5, progress=False)
    dup = res.cross_year_duplicates
    hit = dup[(dup["row"] == 7) & (dup["history_row"] == 6)]
    assert len(hit) == 1 and hit["year"].iloc[0] == 2004
    assert hit["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-5)
    # the within-history twin (rows 4, 5: same year) is not a cross-year duplicate
    assert not ((dup["row"] == 5) & (dup["history_row"] == 4)).any()


def test_small_history_edges(rng):
    z = rng.standard_normal((20, 3))
    years = [1] * 3 + [2] * 1 + [3] * 16
    res = yearly_novelty(z, years, n_neighbors=3, n_bootstrap=10, progress=False).table.set_index("year")
    assert np.isnan(res.loc[1, "nu"])  # no history
    assert res.loc[2, "n_history"] == 3 and not np.isnan(res.loc[2, "nu"])  # |P| == k: nu only
    assert np.isnan(res.loc[2, "nu_null"]) and np.isnan(res.loc[2, "ratio"])
    assert not np.isnan(res.loc[3, "ratio"])
    res = yearly_novelty(z, years, n_neighbors=5, n_bootstrap=10, progress=False).table.set_index("year")
    assert np.isnan(res.loc[2, "nu"])  # k larger than the pool
    with pytest.raises(ValueError, match="year 2: 3 historical"):
        yearly_novelty(z, years, n_neighbors=5, n_bootstrap=10, on_small_history="error", progress=False)
    with pytest.raises(ValueError, match="n_neighbors must be"):
        yearly_novelty(z, years, n_neighbors=0, progress=False)
    with pytest.raises(ValueError, match="entries"):
        yearly_novelty(z, years[:-1], n_neighbors=2, progress=False)


def test_planted_novel_and_resampled_years(rng):
    base = rng.standard_normal((600, 8)) + np.r_[3.0, np.zeros(7)]
    resampled = base[rng.integers(0, 600, 200)] + 0.05 * rng.standard_normal((200, 8))
    novel = rng.standard_normal((200, 8)) + np.r_[0, 0, 0, 3.0, 0, 0, 0, 0]
    z = np.vstack([base, resampled, novel])
    years = [2010] * 600 + [2011] * 200 + [2012] * 200
    t = yearly_novelty(z, years, n_neighbors=10, n_bootstrap=100, progress=False).table.set_index("year")
    assert t.loc[2011, "ratio"] < 1.0 and t.loc[2011, "nu"] < t.loc[2011, "ci_low"]
    assert t.loc[2012, "ratio"] > 1.5 and t.loc[2012, "nu"] > t.loc[2012, "ci_high"]


def test_stratified_and_prevalence():
    d = np.array([0.1, 0.3, np.nan, 0.5, 0.7, 0.2])
    years = [2000, 2000, 2000, 2001, 2001, 2001]
    block = ["A", "A", "A", "B", "B", None]
    s = stratified_novelty(d, years, block).set_index(["year", "stratum"])
    assert s.loc[(2000, "A"), "novelty"] == pytest.approx(0.2) and s.loc[(2000, "A"), "n"] == 2
    assert s.loc[(2001, "B"), "novelty"] == pytest.approx(0.6)
    p = novelty_vs_prevalence(d, block, block + ["B", "C"]).set_index("stratum")
    assert p.loc["B", "n_images"] == 3 and p.loc["B", "n_scored"] == 2
    assert p.loc["A", "novelty"] == pytest.approx(0.2)
    assert p.loc["C", "n_scored"] == 0 and np.isnan(p.loc["C", "novelty"])


def test_zero_null_has_defined_ratio():
    # every historical image has k = 1 exact twin: null 0; a new image elsewhere: ratio inf
    hist = np.repeat(np.eye(3), 2, axis=0)
    z = np.vstack([hist, [[1.0, 1.0, 0.0]]])
    t = yearly_novelty(z, [1] * 6 + [2], n_neighbors=1, n_bootstrap=10, progress=False).table.set_index("year")
    assert t.loc[2, "nu_null"] == pytest.approx(0.0, abs=1e-6)
    assert t.loc[2, "ratio"] == np.inf or t.loc[2, "ratio"] > 1e4  # float32 round-off may leave ~1e-8


def test_ratio_interval_holds_one_exactly_when_nu_is_inside_the_null_band(small):
    """Against the brute-force equations: 1 lies in [nu / ci_high, nu / ci_low] iff ci_low <= nu <= ci_high."""
    from skinmap.analysis.claims import verdict

    z, years = small
    k, B = 3, 30
    expected = brute_force(z, years, k, B, seed=0)
    table = yearly_novelty(z, years, n_neighbors=k, n_bootstrap=B, seed=0, progress=False).table
    out = ratio_interval(table).set_index("year")
    assert set(expected) <= set(out.index)
    for t, e in expected.items():
        inside = e["ci_low"] <= e["nu"] <= e["ci_high"]
        assert (verdict(1.0, (out.loc[t, "ratio_ci_low"], out.loc[t, "ratio_ci_high"])) == "agrees") == inside
        assert out.loc[t, "ratio_ci_low"] == pytest.approx(e["nu"] / e["ci_high"], rel=1e-4)
    undefined = table.loc[table["ratio"].isna(), "year"]
    assert out.loc[undefined, "ratio_ci_low"].isna().all()


def test_ratio_interval_on_planted_years(rng):
    base = rng.standard_normal((400, 8)) + np.r_[3.0, np.zeros(7)]
    novel = rng.standard_normal((150, 8)) + np.r_[0, 0, 0, 3.0, 0, 0, 0, 0]
    same = rng.standard_normal((150, 8)) + np.r_[3.0, np.zeros(7)]  # a fresh draw of the history's distribution
    z = np.vstack([base, same, novel])
    years = [2010] * 400 + [2011] * 150 + [2012] * 150
    t = ratio_interval(yearly_novelty(z, years, n_neighbors=10, n_bootstrap=100, progress=False).table).set_index("year")
    assert t.loc[2012, "ratio_ci_low"] > 1.0
    assert t.loc[2011, "ratio_ci_low"] < 1.5 and t.loc[2011, "ratio_ci_high"] > 0.8
