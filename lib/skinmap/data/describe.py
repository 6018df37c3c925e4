"""Descriptive tables of a catalog for the data chapter: sources, coverage, ICD composition.

Metadata coverage of field f in dataset d is the observed fraction
c(f, d) = |{i in d : x_if is not NA}| / |d|   (rows, not images: metadata-only rows count).
"""

from __future__ import annotations

import pandas as pd

from skinmap.data.catalog import COVERAGE_FIELDS

__all__ = ["coverage_table", "icd_chapter_by_year", "sources_table", "bad_input_table"]


def coverage_table(catalog: pd.DataFrame, fields: tuple[str, ...] = COVERAGE_FIELDS) -> pd.DataFrame:
    """Datasets x fields matrix of observed fractions (0-1), datasets in catalog order, plus an
    ``all`` row over the whole catalog."""
    order = list(dict.fromkeys(catalog["dataset"]))
    observed = catalog[list(fields)].notna()
    table = observed.groupby(catalog["dataset"]).mean().reindex(order)
    table.loc["all"] = observed.mean()
    table.index.name = "dataset"
    return table.astype(float)


def icd_chapter_by_year(catalog: pd.DataFrame, *, normalize: bool = False) -> pd.DataFrame:
    """Release years x ICD-10 chapters: row counts (or row fractions with ``normalize``);
    rows without a code are counted under ``no ICD code``."""
    chapter = catalog["icd10_chapter"].astype("object").where(catalog["icd10_chapter"].notna(), "no ICD code")
    year = catalog["release_year"].astype("Int64")
    table = pd.crosstab(year, chapter)
    table = table[sorted(table.columns, key=_chapter_order)]
    table.index.name = "release_year"
    if normalize:
        table = table.div(table.sum(axis=1), axis=0)
    return table


_ROMAN = {"I": 1, "V": 5, "X": 10}


def _chapter_order(name: str) -> tuple[int, str]:
    """Sort ICD-10 chapters by their Roman numeral ("II Neoplasms" -> 2); others last."""
    token = str(name).split(" ")[0]
    if not token or any(c not in _ROMAN for c in token):
        return (99, str(name))
    values = [_ROMAN[c] for c in token]
    return (sum(-v if i + 1 < len(values) and v < values[i + 1] else v for i, v in enumerate(values)), str(name))


def sources_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The sources table of the chapter from the per-dataset summary."""
    cols = [c for c in ("dataset", "release_year", "modality", "rows", "images", "metadata_only",
                        "removed_as_duplicate", "n_diagnoses", "origin", "license") if c in summary.columns]
    return summary[cols].reset_index(drop=True)


def bad_input_table(issues: pd.DataFrame) -> pd.DataFrame:
    """Datasets x issue kinds matrix of row counts (0 where none)."""
    if issues.empty:
        return pd.DataFrame()
    return pd.crosstab(issues["dataset"], issues["kind"])
