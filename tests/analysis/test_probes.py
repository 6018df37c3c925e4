"""Linear probes: planted linear structure is recovered, splits never leak, imputation is honest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, r2_score

from skinmap.analysis import imputation, probes
from skinmap.data import schema


def planted(rng, n=600, d=16, noise=0.5):
    """Vectors whose first two directions linearly encode age and FST; everything else noise."""
    X = rng.normal(size=(n, d)).astype(np.float32)
    age = 50 + 15 * X[:, 0] + noise * 15 * rng.normal(size=n)  # R² ceiling = 1 / (1 + noise²)
    fst = np.digitize(X[:, 1], [-1.2, -0.5, 0.0, 0.5, 1.2]) + 1  # six ordered bands
    sex = np.where(X[:, 2] > 0, "female", "male")
    lesion = np.arange(n) // 2  # two images per lesion
    return X, age, fst, sex, lesion


def test_fst_group_mapping():
    s = pd.Series([1, 2, 3, 4, 5, 6, pd.NA], dtype="Int64")
    assert schema.fst_group(s).tolist()[:6] == ["I-II", "I-II", "III-IV", "III-IV", "V-VI", "V-VI"]
    assert schema.fst_group(s).isna().tolist()[-1]
    with pytest.raises(ValueError, match="outside 1-6"):
        schema.fst_group(pd.Series([7]))


def test_leakage_groups_join_lesions_and_patients():
    cat = pd.DataFrame(
        {
            "dataset": ["A", "A", "A", "A", "B", "B"],
            "lesion_id": ["l1", "l1", "l2", pd.NA, "l1", pd.NA],
            "patient_id": [pd.NA, "p1", "p1", pd.NA, pd.NA, pd.NA],
        }
    )
    g = probes.leakage_groups(cat)
    # rows 0,1 share lesion l1; 1,2 share patient p1 -> one component; row 3 alone;
    # B's l1 is a different lesion (ids are per dataset); row 5 alone.
    assert g[0] == g[1] == g[2]
    assert len({g[0], g[3], g[4], g[5]}) == 4


def test_internal_split_keeps_groups_on_one_side(rng):
    y = rng.integers(0, 3, size=300).astype(str)
    groups = np.arange(300) // 3
    for kind in ("categorical", "continuous"):
        tr, te = probes.internal_split(y, groups, kind, test_fraction=0.25, seed=1)
        assert not set(groups[tr]) & set(groups[te])
        assert len(tr) + len(te) == 300
        assert 0.15 < len(te) / 300 < 0.35


def test_bootstrap_macro_f1_matches_sklearn_and_bruteforce(rng):
    t = rng.integers(0, 4, size=200).astype(str)
    p = np.where(rng.random(200) < 0.7, t, rng.integers(0, 4, size=200).astype(str))
    value, lo, hi = probes.bootstrap_macro_f1(t, p, n_bootstrap=1000, seed=3)
    assert value == pytest.approx(f1_score(t, p, average="macro"), abs=1e-12)
    # Each resample scored like sklearn (labels present in that resample only).
    for _ in range(20):
        idx = rng.integers(0, 200, size=200)
        labels = sorted(set(t[idx]) | set(p[idx]))
        codes = {c: i for i, c in enumerate(labels)}
        conf = np.zeros((len(labels), len(labels)), dtype=int)
        np.add.at(conf, ([codes[c] for c in t[idx]], [codes[c] for c in p[idx]]), 1)
        assert probes._macro_f1_from_confusion(conf) == pytest.approx(
            f1_score(t[idx], p[idx], average="macro")
        )
    # Interval agrees with a brute-force loop (plain per-class counting, checked against sklearn
    # above) using an independent random stream.
    def macro_f1_plain(a, b):
        labels = set(a) | set(b)
        f1 = [2 * np.sum((a == c) & (b == c)) / (np.sum(a == c) + np.sum(b == c)) for c in labels]
        return float(np.mean(f1))

    assert macro_f1_plain(t, p) == pytest.approx(f1_score(t, p, average="macro"))
    brute_rng = np.random.default_rng(99)
    brute = []
    for _ in range(2000):
        idx = brute_rng.integers(0, 200, size=200)
        brute.append(macro_f1_plain(t[idx], p[idx]))
    assert lo == pytest.approx(np.quantile(brute, 0.025), abs=0.02)
    assert hi == pytest.approx(np.quantile(brute, 0.975), abs=0.02)


def test_bootstrap_r2_value_and_interval(rng):
    t = rng.normal(size=300)
    p = t + 0.5 * rng.normal(size=300)
    value, lo, hi = probes.bootstrap_r2(t, p, n_bootstrap=1000, seed=0)
    assert value == pytest.approx(r2_score(t, p))
    assert lo < value < hi
    brute_rng = np.random.default_rng(7)
    brute = [r2_score(t[i], p[i]) for i in brute_rng.integers(0, 300, size=(2000, 300))]
    assert lo == pytest.approx(np.quantile(brute, 0.025), abs=0.03)
    assert hi == pytest.approx(np.quantile(brute, 0.975), abs=0.03)


def test_planted_structure_recovered_against_random_and_held_out(rng):
    X, age, fst, sex, lesion = planted(rng, n=800, noise=0.5)
    datasets = np.where(np.arange(800) < 650, "train_ds", "held_ds")
    groups = probes.leakage_groups(pd.DataFrame({"dataset": datasets, "lesion_id": lesion.astype(str)}))
    noise_space = rng.normal(size=X.shape).astype(np.float32)  # a member that carries no signal
    emb = {"fused": X, "noise_member": noise_space}
    ev = probes.evaluate_attribute(
        "age", pd.Series(age), "continuous", emb, groups, datasets,
        held_out_datasets=["held_ds"], n_bootstrap=200, seed=0,
    )
    s = ev.scores.set_index(["eval_set", "model"])
    ceiling = 1 / (1 + 0.5**2)  # population R² of the best linear predictor
    for eval_set in ("internal", "held_ds"):
        assert s.loc[(eval_set, "fused"), "value"] == pytest.approx(ceiling, abs=0.08)
        assert s.loc[(eval_set, "noise_member"), "value"] < 0.1
        assert abs(s.loc[(eval_set, "random"), "value"]) < 0.1
        assert s.loc[(eval_set, "fused"), "ci_low"] < s.loc[(eval_set, "fused"), "value"] < s.loc[(eval_set, "fused"), "ci_high"]
    assert set(ev.scores["metric"]) == {"r2"}

    ev = probes.evaluate_attribute(
        "sex", pd.Series(sex), "categorical", emb, groups, datasets,
        held_out_datasets=["held_ds"], n_bootstrap=200, seed=0,
    )
    s = ev.scores.set_index(["eval_set", "model"])
    assert s.loc[("held_ds", "fused"), "value"] > 0.9
    assert s.loc[("held_ds", "random"), "value"] < 0.65
    assert s.loc[("internal", "noise_member"), "value"] < 0.65


def test_fst_confusion_near_diagonal(rng):
    X, age, fst, sex, lesion = planted(rng, n=900)
    datasets = np.full(900, "d")
    ev = probes.evaluate_attribute(
        "fst", pd.Series(fst, dtype="Int64"), "categorical", {"fused": X}, lesion, datasets, n_bootstrap=100
    )
    y_true, y_pred = ev.predictions[("internal", "fused")]
    conf = probes.ordinal_confusion(y_true, y_pred, labels=[1, 2, 3, 4, 5, 6])
    assert conf.to_numpy().sum() == len(y_true)
    assert np.trace(conf.to_numpy()) == (np.asarray(y_true).astype(str) == np.asarray(y_pred).astype(str)).sum()
    assert probes.within_one_accuracy(y_true.astype(int), y_pred.astype(int)) > 0.95


def test_evaluate_attribute_skips_with_a_note(rng):
    X = rng.normal(size=(30, 4))
    y = pd.Series(["a"] * 30)
    ev = probes.evaluate_attribute("x", y, "categorical", {"fused": X}, np.arange(30), ["d"] * 30)
    assert ev.scores.empty and "skipped" in ev.notes[0]


def test_imputation_never_overwrites_and_intervals_cover(rng):
    X, age, fst, sex, lesion = planted(rng, n=1000, noise=0.3)
    hidden = rng.random(1000) < 0.4
    age_obs = pd.Series(np.where(hidden, np.nan, age))
    has_vec = np.ones(1000, dtype=bool)
    has_vec[:10] = False  # metadata-only rows: never imputed
    out = imputation.impute_field("age", age_obs, "continuous", X, lesion, has_vector=has_vec, interval_level=0.9)
    obs = age_obs.notna().to_numpy()
    np.testing.assert_array_equal(out["age_imputed"].to_numpy()[obs], age_obs.to_numpy()[obs])
    assert not out["age_is_imputed"][obs].any()
    assert not out["age_is_imputed"][:10].any() and out["age_imputed"][:10][~obs[:10]].isna().all()
    filled = out["age_is_imputed"].to_numpy()
    assert filled.sum() == (hidden & has_vec).sum()
    covered = (out["age_imputed_lo"] <= age) & (age <= out["age_imputed_hi"])
    assert 0.84 < covered[filled].mean() < 0.96  # split-conformal 90% on unseen truth
    assert out.loc[obs, "age_imputed_lo"].isna().all()

    fst_obs = pd.Series(np.where(hidden, pd.NA, fst), dtype="Int64")
    out = imputation.impute_field("fst", fst_obs, "categorical", X, lesion)
    assert str(out["fst_imputed"].dtype) == "Int64"
    assert (out["fst_imputed"][~hidden] == fst_obs[~hidden]).all()
    assert out["fst_imputed"][hidden].isin([1, 2, 3, 4, 5, 6]).all()
    prob = out["fst_imputed_prob"][hidden]
    assert ((prob > 1 / 6) & (prob <= 1)).all() and out["fst_imputed_prob"][~hidden].isna().all()
    assert (out["fst_imputed"][hidden] == fst[hidden]).mean() > 0.7


def test_coverage_expansion_hand_computed():
    observed = pd.Series([1, pd.NA, pd.NA, 4, pd.NA])
    flag = pd.Series([False, True, False, False, True])
    cov = imputation.coverage_expansion(observed, flag)
    assert cov["observed_pct"] == pytest.approx(40.0)
    assert cov["with_imputed_pct"] == pytest.approx(80.0)
    assert cov["expansion_pp"] == pytest.approx(40.0)
    with pytest.raises(ValueError, match="observed"):
        imputation.coverage_expansion(observed, pd.Series([True, False, False, False, False]))


def test_cluster_bootstrap_equals_row_bootstrap_of_collapsed_groups(rng):
    """Each group = 3 identical copies of a row: resampling groups of the tripled data must give
    the interval that resampling rows gives on the original data (metrics are scale-free)."""
    t = rng.integers(0, 3, size=150).astype(str)
    p = np.where(rng.random(150) < 0.6, t, rng.integers(0, 3, size=150).astype(str))
    groups = np.repeat(np.arange(150), 3)
    v1, lo1, hi1 = probes.bootstrap_macro_f1(t, p, n_bootstrap=1000, seed=5)
    v3, lo3, hi3 = probes.bootstrap_macro_f1(np.repeat(t, 3), np.repeat(p, 3), n_bootstrap=1000, seed=5, groups=groups)
    assert (v1, lo1, hi1) == pytest.approx((v3, lo3, hi3))
    # Resampling the tripled rows one by one instead is too narrow (pretends 450 independent images).
    _, lo_naive, hi_naive = probes.bootstrap_macro_f1(np.repeat(t, 3), np.repeat(p, 3), n_bootstrap=1000, seed=5)
    assert hi_naive - lo_naive < 0.75 * (hi3 - lo3)
    y = rng.normal(size=150)
    yhat = y + rng.normal(size=150)
    r1 = probes.bootstrap_r2(y, yhat, n_bootstrap=500, seed=2)
    r3 = probes.bootstrap_r2(np.repeat(y, 3), np.repeat(yhat, 3), n_bootstrap=500, seed=2, groups=groups)
    assert r1 == pytest.approx(r3)
