"""Demographic audit tables (methods.md Sec. 4): distributions, global baselines, intersections.

Every table counts only rows where the field is *observed* (NA rows are excluded, never guessed),
and says how many rows that is. When the imputation chapter has written
``imputation/imputed.parquet`` (columns ``uid``, ``<field>_imputed``, ``<field>_is_imputed`` and a
confidence column, for fields ``fst, age, sex, body_site, origin_continent``), the same tables are
computed on observed-or-imputed values so both can be shown side by side.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from skinmap.data.harmonize import age_group, body_region
from skinmap.data.registry import demographic_baselines
from skinmap.data.schema import FST_GROUPS, fst_group

__all__ = [
    "AUDIT_FIELDS",
    "IMPUTED_FIELDS",
    "audit_frame",
    "baseline_comparison",
    "distribution",
    "intersection",
    "with_imputed",
]

IMPUTED_FIELDS = ("fst", "age", "sex", "body_site", "origin_continent")
# audit field -> catalog column it is derived from
AUDIT_FIELDS = {
    "fst": "fst",
    "fst_group": "fst",
    "age_group": "age",
    "paediatric": "age",
    "sex": "sex",
    "origin_continent": "origin_continent",
    "body_region": "body_site",
    "modality": "modality",
}
PAEDIATRIC_MAX_AGE = 17


def audit_frame(catalog: pd.DataFrame) -> pd.DataFrame:
    """One row per catalog row with the categorical audit fields (NA where unobserved).

    ``fst`` as a string ``"1"``-``"6"``; ``fst_group`` also where only the group is known;
    ``age_group`` decades; ``paediatric`` ``"0-17"``/``"18+"``; ``body_region`` the coarse region.
    """
    fst = catalog["fst"].astype("Int64")
    group = fst_group(fst)
    if "fst_group" in catalog.columns:
        group = group.fillna(catalog["fst_group"].astype("string"))
    age = pd.to_numeric(catalog["age"], errors="coerce").astype("Float64")
    out = pd.DataFrame({
        "uid": catalog["uid"].astype("string"),
        "fst": fst.astype("string"),
        "fst_group": group,
        "age_group": pd.Series([age_group(a) if pd.notna(a) else None for a in age], index=catalog.index,
                               dtype="string"),
        "paediatric": pd.Series([("0-17" if a <= PAEDIATRIC_MAX_AGE else "18+") if pd.notna(a) else None
                                 for a in age], index=catalog.index, dtype="string"),
        "sex": catalog["sex"].astype("string"),
        "origin_continent": catalog["origin_continent"].astype("string"),
        "body_region": body_region(catalog["body_site"].astype("string")),
        "modality": catalog["modality"].astype("string"),
        "dataset": catalog["dataset"].astype("string"),
    }, index=catalog.index)
    return out


def _order(values: pd.Index, field: str) -> list:
    values = [v for v in values if pd.notna(v)]
    if field == "fst_group":
        return [g for g in FST_GROUPS if g in values]
    if field == "age_group":
        return sorted(values, key=lambda g: int(str(g).split("-")[0].rstrip("+")))
    return sorted(values, key=str)


def distribution(audit: pd.DataFrame, field: str) -> pd.DataFrame:
    """Counts and shares of ``field`` among rows where it is observed (``n_observed`` column)."""
    observed = audit[field].dropna()
    counts = observed.value_counts()
    counts = counts.reindex(_order(counts.index, field))
    return pd.DataFrame({field: counts.index.astype(str), "n": counts.to_numpy(dtype=int),
                         "share": counts.to_numpy(dtype=float) / max(len(observed), 1),
                         "n_observed": len(observed)})


def baseline_comparison(audit: pd.DataFrame, baselines: pd.DataFrame | None = None) -> pd.DataFrame:
    """Observed shares against the global dermatology-visit baselines (``tables/demographic_baselines.csv``).

    FST III-VI and V-VI are shares of rows with an observed FST group; 0-17 is the share of rows with
    an observed age. ``ratio`` = observed / baseline (1 = matches the global visit mix).
    """
    baselines = demographic_baselines() if baselines is None else baselines
    rows = []
    for b in baselines.itertuples():
        if b.metric == "fst_group":
            observed = audit["fst_group"].dropna()
            wanted = {"III-VI": {"III-IV", "V-VI"}, "V-VI": {"V-VI"}}[b.category]
            share = float(observed.isin(wanted).mean()) if len(observed) else np.nan
        elif b.metric == "age":
            observed = audit["paediatric"].dropna()
            share = float((observed == b.category).mean()) if len(observed) else np.nan
        else:
            raise ValueError(f"unknown baseline metric {b.metric!r}")
        rows.append({"metric": b.metric, "category": b.category, "observed_share": share,
                     "baseline_share": float(b.share), "ratio": share / float(b.share) if len(observed) else np.nan,
                     "n_observed": len(observed), "source": b.source})
    return pd.DataFrame(rows)


def intersection(audit: pd.DataFrame, rows: str, cols: str) -> tuple[pd.DataFrame, int]:
    """Counts of ``rows`` x ``cols`` over rows where both are observed, and that number of rows."""
    both = audit[[rows, cols]].dropna()
    table = pd.crosstab(both[rows], both[cols])
    table = table.reindex(index=_order(table.index, rows), columns=_order(table.columns, cols))
    return table, len(both)


def with_imputed(catalog: pd.DataFrame, imputed: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The catalog with each imputable field filled by its imputed value where it was missing.

    Returns the filled catalog and, per field, how many rows were filled. Observed values are never
    replaced; imputed values are used only where ``<field>_is_imputed`` is true (or, if that column
    is absent, where the observed value is NA and an imputed value exists).
    """
    filled = catalog.copy()
    merged = catalog[["uid"]].merge(imputed, on="uid", how="left")
    merged.index = catalog.index
    counts: dict[str, int] = {}
    for field in IMPUTED_FIELDS:
        col = f"{field}_imputed"
        if col not in merged.columns:
            continue
        flag = merged.get(f"{field}_is_imputed")
        use = catalog[field].isna() & merged[col].notna()
        if flag is not None:
            use &= flag.fillna(False).astype(bool)
        values = merged.loc[use, col]
        if field == "fst":
            values = pd.to_numeric(values, errors="coerce").round()
        if field == "age":
            values = pd.to_numeric(values, errors="coerce")
        filled.loc[use, field] = values.to_numpy()
        counts[field] = int(use.sum())
    return filled, counts
