"""Cumulative ICD-10 coverage by FST group and orphan codes on hand-made catalogs."""

from __future__ import annotations

import pandas as pd
import pytest

from skinmap.analysis.icd_coverage import cumulative_icd_coverage, orphan_codes
from skinmap.data.schema import fst_group


@pytest.fixture
def catalog():
    rows = [
        # dataset, year, code, block, fst
        ("A", 2010, "C43", "C43-C44", 1),
        ("A", 2010, "L40", "L40-L45", 2),
        ("A", 2010, "D22", "D10-D36", 5),
        ("B", 2012, "C43", "C43-C44", 6),
        ("B", 2012, "L70", "L60-L75", 3),
        ("B", 2012, "L70", "L60-L75", None),
        ("C", 2014, "Q82", "Q80-Q89", 4),
        ("C", 2014, None, None, 1),
        ("D", None, "Z99", None, 1),
    ]
    df = pd.DataFrame(rows, columns=["dataset", "release_year", "icd10_code", "icd10_block", "fst"])
    df["release_year"] = df["release_year"].astype("Int64")
    df["fst"] = df["fst"].astype("Int64")
    df["icd10_chapter"] = df["icd10_code"].str[0]
    return df


def test_fst_group():
    got = fst_group(pd.Series([1, 2, 3, 4, 5, 6, pd.NA], dtype="Int64"))
    assert got.tolist()[:6] == ["I-II", "I-II", "III-IV", "III-IV", "V-VI", "V-VI"]
    assert pd.isna(got.iloc[6])
    with pytest.raises(ValueError, match="FST must be 1-6"):
        fst_group([1, 7])


def test_cumulative_coverage(catalog):
    cov = cumulative_icd_coverage(catalog).set_index(["year", "fst_group"])
    # total distinct codes with a year: C43, L40, D22, L70, Q82 = 5
    assert cov.loc[(2010, "I-II"), "n_codes"] == 2 and cov.loc[(2010, "I-II"), "fraction"] == pytest.approx(0.4)
    assert cov.loc[(2010, "V-VI"), "n_codes"] == 1
    assert cov.loc[(2012, "V-VI"), "n_codes"] == 2  # D22 then C43
    assert cov.loc[(2012, "III-IV"), "n_codes"] == 1 and cov.loc[(2014, "III-IV"), "n_codes"] == 2
    assert cov.loc[(2014, "I-II"), "n_codes"] == 2  # the 2014 FST-1 row has no code
    assert cov.loc[(2012, "unknown"), "n_codes"] == 1
    assert cov.loc[(2014, "all"), "n_codes"] == 5 and cov.loc[(2014, "all"), "n_images"] == 7
    # cumulative: never decreasing
    for _, g in cov.reset_index().groupby("fst_group"):
        assert g.sort_values("year")["n_codes"].is_monotonic_increasing


def test_orphans(catalog):
    orph = orphan_codes(catalog).set_index("code")
    # C43 in 2010 and 2012 -> not an orphan; L40, D22 (2010) and L70 (2012) are; Q82 only in the
    # last window -> censored and dropped by default
    assert set(orph.index) == {"L40", "D22", "L70"}
    assert orph.loc["L70", "n_images"] == 2 and orph.loc["L70", "datasets"] == "B"
    assert orph.loc["L70", "icd10_block"] == "L60-L75" and orph.loc["L70", "window"] == "2012"
    assert "Q82" in set(orphan_codes(catalog, include_censored=True)["code"])
    # 3-year windows: 2010-2012 and 2013-2015; C43 is now inside one window
    wide = orphan_codes(catalog, window_years=3).set_index("code")
    assert "C43" in wide.index and wide.loc["C43", "window"] == "2010-2012"
    with pytest.raises(ValueError, match="window_years"):
        orphan_codes(catalog, window_years=0)
    with pytest.raises(KeyError, match="icd10_code"):
        orphan_codes(catalog.drop(columns="icd10_code"))
