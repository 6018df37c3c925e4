"""Demographic audit tables against hand-counted expectations."""

from __future__ import annotations

import pandas as pd
import pytest

from skinmap.data import demographics as demo
from skinmap.data.schema import conform


@pytest.fixture
def catalog():
    return conform(pd.DataFrame({
        "uid": [f"D/{i}" for i in range(8)], "dataset": ["D"] * 8, "modality": ["clinical"] * 4 + ["dermoscopy"] * 4,
        "fst": [1, 2, 5, 6, None, None, 3, None], "fst_group": [None, None, None, None, "V-VI", None, None, None],
        "age": [5, 12, 30, 45, None, 70, 17, None], "sex": ["male", "female", None, "male", "female", None, "male", "male"],
        "body_site": ["face", "hand", "back", None, "foot", "scalp", None, "chest"],
        "origin_continent": ["Africa", "Africa", "Europe", None, None, "Europe", "Africa", None],
    }))


def test_audit_fields_and_distribution(catalog):
    audit = demo.audit_frame(catalog)
    assert audit["fst_group"].tolist()[:5] == ["I-II", "I-II", "V-VI", "V-VI", "V-VI"]  # row 4: group-only
    assert audit["paediatric"].fillna("-").tolist() == ["0-17", "0-17", "18+", "18+", "-", "18+", "0-17", "-"]
    assert audit["body_region"].tolist()[:3] == ["head/neck", "upper extremity", "trunk"]
    dist = demo.distribution(audit, "sex").set_index("sex")
    assert dist["n"].to_dict() == {"female": 2, "male": 4} and (dist["n_observed"] == 6).all()


def test_baseline_comparison_by_hand(catalog):
    cmp = demo.baseline_comparison(demo.audit_frame(catalog)).set_index("category")
    # FST groups observed in 6 rows: I-II x2, III-IV x1, V-VI x3
    assert cmp.loc["III-VI", "observed_share"] == pytest.approx(4 / 6)
    assert cmp.loc["V-VI", "observed_share"] == pytest.approx(3 / 6)
    assert cmp.loc["V-VI", "ratio"] == pytest.approx((3 / 6) / 0.438)
    assert cmp.loc["0-17", "observed_share"] == pytest.approx(3 / 6) and cmp.loc["0-17", "n_observed"] == 6


def test_intersection_counts_jointly_observed_rows(catalog):
    table, n = demo.intersection(demo.audit_frame(catalog), "sex", "paediatric")
    assert n == 4 and table.loc["male", "0-17"] == 2 and table.loc["female", "0-17"] == 1


def test_imputed_values_fill_only_missing_fields(catalog):
    imputed = pd.DataFrame({"uid": ["D/4", "D/5", "D/0"], "fst_imputed": [2.0, 6.0, 4.0],
                            "fst_is_imputed": [True, True, False], "sex_imputed": ["male", "female", "female"],
                            "sex_is_imputed": [True, True, True]})
    filled, counts = demo.with_imputed(catalog, imputed)
    assert filled.loc[4, "fst"] == 2 and filled.loc[5, "fst"] == 6 and filled.loc[0, "fst"] == 1  # observed kept
    assert filled.loc[5, "sex"] == "female" and filled.loc[0, "sex"] == "male"
    assert counts == {"fst": 2, "sex": 1}
    assert catalog.loc[4, "fst"] is pd.NA  # the input is not modified
