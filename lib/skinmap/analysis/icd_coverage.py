"""ICD-10 coverage over release years: cumulative coverage by FST group and orphan codes.

These work on catalog rows (metadata only, no embeddings), so images without pixels count too.

* :func:`cumulative_icd_coverage`: the number of distinct ICD-10 codes (or blocks) observed in
  images released up to each year, per Fitzpatrick group (I-II, III-IV, V-VI): does the corpus
  cover the disease spectrum for dark skin as it does for light skin, and does that gap close?
* :func:`orphan_codes`: codes that appear in exactly one collection window (a release year, or a
  block of ``window_years`` years) and never again: the paper's Supplementary Table 7. A code seen
  only in the last window cannot yet be "never replenished"; it is flagged ``censored``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from skinmap.config import check_range
from skinmap.data.schema import FST_GROUPS, fst_group

__all__ = ["WINDOW_YEARS_BOUNDS", "cumulative_icd_coverage", "orphan_codes"]

#: Allowed widths of a collection window in years (the novelty chapter's ``orphan_window_years``).
WINDOW_YEARS_BOUNDS = {"ge": 1, "le": 50}


def _check_columns(catalog: pd.DataFrame, columns) -> None:
    missing = [c for c in columns if c not in catalog.columns]
    if missing:
        raise KeyError(f"catalog lacks column(s) {missing}; has {list(catalog.columns)}")


def cumulative_icd_coverage(
    catalog: pd.DataFrame,
    *,
    level: str = "icd10_code",
    year_col: str = "release_year",
    fst_col: str = "fst",
) -> pd.DataFrame:
    """Distinct codes seen in images released up to each year, per FST group.

    Returns long ``year, fst_group, n_images, n_codes, fraction`` with groups ``I-II``, ``III-IV``,
    ``V-VI``, ``unknown`` (FST missing) and ``all``; ``fraction`` = ``n_codes`` over the number of
    distinct codes in the whole catalog. Rows without a year or a code are left out.
    """
    _check_columns(catalog, [level, year_col, fst_col])
    df = pd.DataFrame({
        "year": pd.to_numeric(catalog[year_col], errors="coerce"),
        "code": catalog[level].astype("string"),
        "group": fst_group(catalog[fst_col]).fillna("unknown").to_numpy(),
    }).dropna(subset=["year", "code"])
    df["year"] = df["year"].astype(int)
    total = df["code"].nunique()
    years = sorted(df["year"].unique())
    rows = []
    for group in (*FST_GROUPS, "unknown", "all"):
        sub = df if group == "all" else df[df["group"] == group]
        first_seen = sub.groupby("code")["year"].min()
        per_year = sub.groupby("year").size()
        for year in years:
            rows.append(dict(year=year, fst_group=group, n_images=int(per_year[per_year.index <= year].sum()),
                             n_codes=int((first_seen <= year).sum())))
    out = pd.DataFrame(rows, columns=["year", "fst_group", "n_images", "n_codes"])
    out["fraction"] = out["n_codes"] / total if total else np.nan
    return out


def orphan_codes(
    catalog: pd.DataFrame,
    *,
    level: str = "icd10_code",
    window_years: int = 1,
    year_col: str = "release_year",
    include_censored: bool = False,
) -> pd.DataFrame:
    """Codes present in exactly one collection window and in no later one (Supp. Table 7).

    Windows are consecutive blocks of ``window_years`` years starting at the first release year.
    Returns ``code, icd10_block, icd10_chapter, window, n_images, datasets, censored`` (the block and
    chapter columns only when the catalog has them), most images first. Codes whose single window
    is the last one are ``censored`` and dropped unless ``include_censored``.
    """
    check_range("window_years", window_years, **WINDOW_YEARS_BOUNDS)
    _check_columns(catalog, [level, year_col, "dataset"])
    extra = [c for c in ("icd10_block", "icd10_chapter") if c in catalog.columns and c != level]
    df = catalog[[level, year_col, "dataset", *extra]].copy()
    df["year"] = pd.to_numeric(df[year_col], errors="coerce")
    df = df.dropna(subset=["year", level])
    if df.empty:
        return pd.DataFrame(columns=["code", *extra, "window", "n_images", "datasets", "censored"])
    first = int(df["year"].min())
    df["w"] = ((df["year"].astype(int) - first) // window_years).astype(int)
    last_w = int(df["w"].max())
    grouped = df.groupby(level)
    n_windows = grouped["w"].nunique()
    orphans = n_windows[n_windows == 1].index
    rows = []
    for code in orphans:
        sub = grouped.get_group(code)
        w = int(sub["w"].iloc[0])
        start = first + w * window_years
        label = str(start) if window_years == 1 else f"{start}-{start + window_years - 1}"
        row = {"code": code}
        for c in extra:
            mode = sub[c].dropna().mode()
            row[c] = mode.iloc[0] if len(mode) else pd.NA
        row.update(window=label, n_images=len(sub), datasets=", ".join(sorted(sub["dataset"].astype(str).unique())),
                   censored=w == last_w)
        rows.append(row)
    out = pd.DataFrame(rows, columns=["code", *extra, "window", "n_images", "datasets", "censored"])
    if not include_censored:
        out = out[~out["censored"].astype(bool)]
    return out.sort_values(["n_images", "code"], ascending=[False, True], kind="stable").reset_index(drop=True)
