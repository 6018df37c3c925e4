"""Chapter-level probe helpers on a small catalog: members, imputation columns, coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skinmap.analysis import imputation, probes


def make_catalog(rng, n=240, d=20, scale=1.0):
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[:, :2] *= scale  # signal directions; scale > 1 puts them among the top principal components
    fst = np.digitize(X[:, 0] / scale, [-1.0, -0.3, 0.3, 1.0, 1.6]) + 1
    hidden = rng.random(n) < 0.3
    cat = pd.DataFrame({
        "uid": [f"ds{i % 2}/{i}" for i in range(n + 5)],
        "dataset": [f"ds{i % 2}" for i in range(n + 5)],
        "path": [f"/x/{i}.png" for i in range(n)] + [pd.NA] * 5,  # 5 metadata-only rows
        "lesion_id": [f"l{i // 2}" for i in range(n + 5)],
        "fst": pd.array(list(np.where(hidden, pd.NA, fst)) + [pd.NA, 3, pd.NA, 2, pd.NA], dtype="Int64"),
        "age": list(np.where(hidden, np.nan, 40 + 10 * X[:, 1] / scale)) + [np.nan] * 5,
    })
    return cat, X, fst, hidden


def test_impute_catalog_and_coverage(rng):
    cat, X, fst, hidden = make_catalog(rng)
    uids = cat["uid"][: len(X)]
    imputed, notes = imputation.impute_catalog(cat, X, uids, ["fst", "age", "nonexistent"])
    assert notes == ["nonexistent: not a catalog column; not imputed"]
    assert imputed["uid"].tolist() == cat["uid"].tolist()
    assert set(imputed.columns) == {"uid", "fst_imputed", "fst_imputed_prob", "fst_is_imputed",
                                    "age_imputed", "age_imputed_lo", "age_imputed_hi", "age_is_imputed"}
    # metadata-only rows: never imputed, observed values kept
    tail = imputed.tail(5)
    assert not tail["fst_is_imputed"].any() and tail["fst_imputed"].tolist()[1] == 3
    assert imputed["fst_is_imputed"].sum() == hidden.sum()
    cov = imputation.coverage_table(cat, imputed, ["fst", "age"]).set_index(["field", "scope"])
    n_all = len(cat)
    observed_all = cat["fst"].notna().sum()
    assert cov.loc[("fst", "all rows"), "observed_pct"] == pytest.approx(100 * observed_all / n_all)
    assert cov.loc[("fst", "all rows"), "expansion_pp"] == pytest.approx(100 * hidden.sum() / n_all)
    assert cov.loc[("fst", "rows with images"), "with_imputed_pct"] == pytest.approx(100.0)
    truth = dict(zip(cat["uid"][: len(X)], fst))
    agree = imputation.imputation_agreement(imputed["uid"], imputed["fst_imputed"], imputed["fst_is_imputed"], truth)
    assert agree["n"] == hidden.sum() and agree["within_one"] > 0.8


def test_evaluate_probes_with_wide_member_pca(rng):
    cat, X, fst, hidden = make_catalog(rng, n=400, d=300, scale=4.0)
    meta = cat.iloc[:400].reset_index(drop=True)
    meta["fst"] = pd.array(fst, dtype="Int64")
    rep = probes.evaluate_probes(meta, {"fused": X}, ["fst_group", "age", "missing_col"],
                                 n_bootstrap=50, max_dims=16, progress=False)
    assert "missing_col" in rep.notes[0]
    s = rep.scores.set_index(["attribute", "model"])
    assert s.loc[("fst_group", "fused"), "value"] > s.loc[("fst_group", "random"), "ci_high"]
    assert s.loc[("age", "fused"), "value"] > 0.5  # age = 40 + 10 x1, partly hidden
    assert rep.evaluations["fst_group"].best_params["fused"]["C"] in (0.01, 0.1, 1.0)


def test_imputed_continuous_values_stay_within_observed_range(rng):
    """A probe trained on adults must not impute negative ages for an out-of-range cohort."""
    n, d = 200, 5
    X = rng.normal(size=(n, d))
    age = 40 + 10 * X[:, 0]
    hidden = np.zeros(n, dtype=bool)
    hidden[:20] = True
    X[:20, 0] = -12.0  # far outside the training range: the raw linear prediction is about -80
    y = pd.Series(np.where(hidden, np.nan, age))
    out = imputation.impute_field("age", y, "continuous", X, np.arange(n))
    observed = age[~hidden]
    imputed = out.loc[hidden, "age_imputed"].to_numpy()
    assert imputed.min() >= observed.min() - 1e-9
    assert (out.loc[hidden, "age_imputed_lo"] >= observed.min() - 1e-9).all()
    assert (out.loc[hidden, "age_imputed_hi"] <= observed.max() + 1e-9).all()
