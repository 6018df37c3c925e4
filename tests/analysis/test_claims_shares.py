"""Shares in the paper's two views with the imputation's uncertainty (analysis.imputed_shares).

Checked against hand computations, closed forms and coverage on synthetic replications.
"""

import numpy as np
import pandas as pd
import pytest

from skinmap.analysis import imputed_shares as shares
from skinmap.analysis.icd_coverage import cumulative_icd_coverage


def test_categorical_probabilities_by_hand():
    observed = pd.Series(["a", None, "b", None, "a", None])
    imputed = pd.Series([None, "a", None, "b", None, None])
    prob = pd.Series([np.nan, 0.7, np.nan, 0.4, np.nan, np.nan])
    p = shares.categorical_probabilities(observed, imputed, prob, ["a", "b", "c"])
    np.testing.assert_allclose(p[0], [1, 0, 0])
    np.testing.assert_allclose(p[2], [0, 1, 0])
    # labelled frequencies a:2, b:1, c:0 -> the rest of row 1 goes to b; row 3's rest goes to a
    np.testing.assert_allclose(p[1], [0.7, 0.3, 0.0])
    np.testing.assert_allclose(p[3], [0.6, 0.4, 0.0])
    assert np.isnan(p[5]).all()
    # the labelled view ignores imputed values
    assert np.isnan(shares.categorical_probabilities(observed, None, None, ["a", "b", "c"])[1]).all()


def test_interval_bin_probabilities_by_hand():
    edges = [0, 18, 30, 50, 150]
    p = shares.interval_bin_probabilities(np.array([10.0, np.nan, np.nan, np.nan]),
                                          np.array([np.nan, 10.0, 40.0, np.nan]),
                                          np.array([np.nan, 30.0, 40.0, np.nan]), edges)
    np.testing.assert_allclose(p[0], [1, 0, 0, 0])
    np.testing.assert_allclose(p[1], [0.4, 0.6, 0, 0])  # uniform on [10, 30]: 8 of 20 years below 18
    np.testing.assert_allclose(p[2], [0, 0, 1, 0])      # a point interval
    assert np.isnan(p[3]).all()
    with pytest.raises(ValueError):
        shares.interval_bin_probabilities(np.zeros(1), np.zeros(1), np.zeros(1), [5, 1])


def test_view_probabilities_aligns_by_uid():
    catalog = pd.DataFrame({"uid": ["u1", "u2", "u3"], "fst": pd.array([2, pd.NA, pd.NA], dtype="Int64")})
    imputed = pd.DataFrame({"uid": ["u3", "u2", "u1"], "fst_imputed": [5.0, 1.0, 2.0],
                            "fst_imputed_prob": [1.0, 1.0, np.nan], "fst_is_imputed": [True, False, False]})
    p = shares.view_probabilities(catalog, imputed, "fst", "imputed", classes=[1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(p[0], np.eye(6)[1])
    assert np.isnan(p[1]).all()  # not flagged imputed: no value
    np.testing.assert_allclose(p[2], np.eye(6)[4])
    lab = shares.view_probabilities(catalog, imputed, "fst", "labelled", classes=[1, 2, 3, 4, 5, 6])
    assert np.isfinite(lab).all(axis=1).tolist() == [True, False, False]


def test_share_draws_label_noise_matches_binomial_closed_form():
    n = 2000
    p = np.tile([0.3, 0.7], (n, 1))
    draws = shares.share_draws(p, n_draws=400, seed=1, resample_rows=False)
    assert draws[:, 0].mean() == pytest.approx(0.3, abs=0.005)
    assert draws[:, 0].std() == pytest.approx(np.sqrt(0.21 / n), rel=0.15)


def test_one_hot_rows_give_the_row_bootstrap():
    labels = np.r_[np.zeros(300, int), np.ones(700, int)]
    p = np.eye(2)[labels]
    out = shares.share_summary(p, {"a": [0]}, n_draws=500, ci=0.95, seed=0).iloc[0]
    half = 1.96 * np.sqrt(0.3 * 0.7 / 1000)
    assert out.share == pytest.approx(0.3)
    assert out.ci_low == pytest.approx(0.3 - half, abs=0.01)
    assert out.ci_high == pytest.approx(0.3 + half, abs=0.01)
    assert out.n_imputed == 0


def test_multiple_imputation_interval_covers_the_population_share():
    """Half the rows labelled, half imputed with calibrated probabilities: the interval covers E[p]."""
    rng = np.random.default_rng(0)
    a, b, n, reps = 2.0, 6.0, 400, 200
    truth = a / (a + b)
    covered = 0
    for rep in range(reps):
        p_true = rng.beta(a, b, n)
        y = rng.random(n) < p_true
        prob = np.column_stack([p_true, 1 - p_true])
        labelled = rng.random(n) < 0.5
        prob[labelled] = np.column_stack([y, ~y])[labelled].astype(float)
        out = shares.share_summary(prob, {"a": [0]}, n_draws=200, ci=0.95, seed=rep).iloc[0]
        covered += out.ci_low <= truth <= out.ci_high
    assert 0.90 <= covered / reps <= 0.99


def test_ignoring_imputation_uncertainty_undercovers():
    """Planted check that the label draws matter: modal imputation (argmax) is biased and misses E[p]."""
    rng = np.random.default_rng(1)
    n = 2000
    p_true = rng.beta(2.0, 6.0, n)
    modal = np.eye(2)[(p_true < 0.5).astype(int)]  # every row sent to its most probable class
    calibrated = np.column_stack([p_true, 1 - p_true])
    truth = 0.25
    m = shares.share_summary(modal, {"a": [0]}, n_draws=200, ci=0.95, seed=0).iloc[0]
    c = shares.share_summary(calibrated, {"a": [0]}, n_draws=200, ci=0.95, seed=0).iloc[0]
    assert not m.ci_low <= truth <= m.ci_high
    assert c.ci_low <= truth <= c.ci_high


def test_icd_coverage_labelled_view_equals_cumulative_coverage():
    catalog = pd.DataFrame({
        "icd10_code": ["A", "B", "C", "A", "D", "E"],
        "release_year": [2016, 2016, 2017, 2017, 2018, 2018],
        "fst": pd.array([1, 5, 2, pd.NA, 6, pd.NA], dtype="Int64"),
    })
    out = shares.icd_coverage_by_fst(catalog, None, n_draws=1, ci=0.95, seed=0).set_index(["year", "fst_group"])
    ref = cumulative_icd_coverage(catalog.assign(dataset="x")).set_index(["year", "fst_group"])
    for year in (2016, 2017, 2018):
        for group in ("I-II", "V-VI"):
            assert out.loc[(year, group), "fraction"] == pytest.approx(ref.loc[(year, group), "fraction"])
        assert out.loc[(year, shares.GAP_GROUP), "fraction"] == pytest.approx(
            ref.loc[(year, "I-II"), "fraction"] - ref.loc[(year, "V-VI"), "fraction"])
    # certain imputations (one-hot) fill the unlabelled rows exactly, so every draw is the same
    p = shares.categorical_probabilities(catalog["fst"], pd.Series([None, None, None, 6, None, 1]),
                                         pd.Series([np.nan, np.nan, np.nan, 1.0, np.nan, 1.0]), [1, 2, 3, 4, 5, 6])
    filled = catalog.assign(fst=pd.array([1, 5, 2, 6, 6, 1], dtype="Int64"))
    out = shares.icd_coverage_by_fst(catalog, p, n_draws=5, ci=0.95, seed=0).set_index(["year", "fst_group"])
    ref = cumulative_icd_coverage(filled.assign(dataset="x")).set_index(["year", "fst_group"])
    assert out.loc[(2018, "V-VI"), "fraction"] == pytest.approx(ref.loc[(2018, "V-VI"), "fraction"])
    assert out.loc[(2018, "V-VI"), "ci_low"] == out.loc[(2018, "V-VI"), "ci_high"]
