"""Diagnosis labels -> ICD-10: the paper's manual coding of every source label (analysis only).

``tables/icd10_labels.csv`` maps a source label (per dataset, or ``*`` for every dataset) to an
ICD-10 code, block and chapter, and optionally a readable ``condition`` name for captions. A row
with an empty code means "reviewed, no single code" (e.g. ``benign``); labels with no row at all
are *unmapped*: they keep their label and are listed in the data chapter's report.
"""

from __future__ import annotations

import functools

import pandas as pd

from skinmap.data.tables import lookup_each, table_frame, table_key

__all__ = ["normalize_label", "icd10_table", "map_icd10", "condition_names"]

def normalize_label(label: object) -> str | None:
    """Lower-case; ``_``, ``-`` and runs of spaces to one space; stripped; missing -> None."""
    return table_key(label, hyphens=False)


@functools.lru_cache(maxsize=None)
def _icd10() -> pd.DataFrame:
    df = table_frame("icd10_labels.csv")
    df["key"] = [normalize_label(x) for x in df["label"]]
    return df


def icd10_table() -> pd.DataFrame:
    """The label -> ICD-10 table (``dataset`` is ``*`` for labels shared by every dataset)."""
    return _icd10().drop(columns="key").copy()


def map_icd10(labels: pd.Series, dataset: str) -> pd.DataFrame:
    """ICD-10 code/block/chapter for each label; a dataset-specific row wins over a ``*`` row.

    Returns columns ``icd10_code``, ``icd10_block``, ``icd10_chapter`` (NA when unmapped or when
    the table says "no code") and booleans ``unmapped`` (no table row) .
    """
    table = _icd10()
    specific = table[table["dataset"] == dataset].drop_duplicates("key").set_index("key")
    generic = table[table["dataset"] == "*"].drop_duplicates("key").set_index("key")
    cols = ["icd10_code", "icd10_block", "icd10_chapter"]
    lookup = {k: tuple(v or None for v in row) for k, row in zip(generic.index, generic[cols].itertuples(index=False))}
    lookup.update({k: tuple(v or None for v in row) for k, row in zip(specific.index, specific[cols].itertuples(index=False))})

    def one(label):
        key = normalize_label(label)
        if key is None:
            return (None, None, None, False)
        return (*lookup[key], False) if key in lookup else (None, None, None, True)

    rows = lookup_each(labels, one)
    out = pd.DataFrame(rows, columns=["icd10_code", "icd10_block", "icd10_chapter", "unmapped"],
                       index=labels.index)
    for col in ("icd10_code", "icd10_block", "icd10_chapter"):
        out[col] = out[col].astype("string")
    out["unmapped"] = out["unmapped"].astype(bool)
    return out


def condition_names(labels: pd.Series, dataset: str) -> pd.Series:
    """Readable condition name of each source label for captions: the table's ``condition`` when
    given (abbreviations such as ``nv``), else the normalised label (``melanoma-in-situ`` ->
    ``melanoma in situ``); NA stays NA."""
    table = _icd10()
    names = {k: c for k, c, d in zip(table["key"], table["condition"], table["dataset"]) if c and d == "*"}
    names.update({k: c for k, c, d in zip(table["key"], table["condition"], table["dataset"]) if c and d == dataset})

    def one(label):
        key = normalize_label(label)
        return None if key is None else names.get(key, key)

    return pd.Series(lookup_each(labels, one), index=labels.index, dtype="string")
