"""The catalog schema: one row per image, every dataset harmonised to the same columns.

``CATALOG_SCHEMA`` is the single source of truth for column names, order and dtypes. Missing is
``pd.NA`` in every column (pandas' nullable ``string``/``Int64``/``Float64`` dtypes), never a guessed
value. Parquet round-trips these dtypes; :func:`read_catalog` restores them if a file was written
by another tool.

Columns (issue 3, CONVENTIONS "Run-directory contracts"):

==================  ========  ==============================================================
column              dtype     meaning
==================  ========  ==============================================================
uid                 string    unique ``"<dataset>/<image_id>"``
dataset             string    dataset name as in the registry (``HAM10000``, ``ISIC2019``...)
image_id            string    the provider's image identifier
path                string    absolute path of the image file, NA for metadata-only rows
lesion_id           string    provider lesion id
patient_id          string    provider patient id
release_year        Int64     year the dataset was released
modality            string    ``dermoscopy`` / ``clinical`` / ``TBP``
split               string    split as the source defines it (``train``, ``test``...)
diagnosis           string    the source label, verbatim
icd10_code          string    manual ICD-10 code of the label (analysis only)
icd10_block         string    ICD-10 block, e.g. ``C43-C44``
icd10_chapter       string    ICD-10 chapter, e.g. ``II Neoplasms``
fst                 Int64     Fitzpatrick skin type 1-6
fst_group           string    ``I-II`` / ``III-IV`` / ``V-VI`` (also when only the group is known)
age                 Float64   age in years (range midpoint when the source gives a range)
age_group           string    decade like ``60-69`` (``90+`` for 90 and over)
sex                 string    ``male`` / ``female``
body_site           string    controlled vocabulary (``tables/body_sites.csv``)
origin_country      string    country of the patient or the collecting site
origin_continent    string    continent of ``origin_country``
caption             string    template caption (``skinmap.data.captions``)
width, height       Int64     pixels, read from the image header
source_file         string    table the row came from (absolute path)
source_row          Int64     1-based data row number in ``source_file`` (header excluded)
also_in             string    ``;``-joined uids of duplicates removed by identifier de-duplication
==================  ========  ==============================================================
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

__all__ = [
    "CATALOG_SCHEMA",
    "CATALOG_COLUMNS",
    "FST_GROUPS",
    "MODALITIES",
    "conform",
    "fst_group",
    "empty_catalog",
    "read_catalog",
    "validate_catalog",
]

CATALOG_SCHEMA: dict[str, str] = {
    "uid": "string",
    "dataset": "string",
    "image_id": "string",
    "path": "string",
    "lesion_id": "string",
    "patient_id": "string",
    "release_year": "Int64",
    "modality": "string",
    "split": "string",
    "diagnosis": "string",
    "icd10_code": "string",
    "icd10_block": "string",
    "icd10_chapter": "string",
    "fst": "Int64",
    "fst_group": "string",
    "age": "Float64",
    "age_group": "string",
    "sex": "string",
    "body_site": "string",
    "origin_country": "string",
    "origin_continent": "string",
    "caption": "string",
    "width": "Int64",
    "height": "Int64",
    "source_file": "string",
    "source_row": "Int64",
    "also_in": "string",
}
CATALOG_COLUMNS: tuple[str, ...] = tuple(CATALOG_SCHEMA)
MODALITIES: tuple[str, ...] = ("dermoscopy", "clinical", "TBP")
SEXES: tuple[str, ...] = ("male", "female")
#: The paper's three Fitzpatrick groups, each two adjacent types (1-2, 3-4, 5-6).
FST_GROUPS: tuple[str, ...] = ("I-II", "III-IV", "V-VI")
_GROUP_OF_TYPE = {1: FST_GROUPS[0], 2: FST_GROUPS[0], 3: FST_GROUPS[1], 4: FST_GROUPS[1],
                  5: FST_GROUPS[2], 6: FST_GROUPS[2]}


def fst_group(fst) -> pd.Series:
    """Fitzpatrick type 1-6 -> ``"I-II"`` / ``"III-IV"`` / ``"V-VI"`` (:data:`FST_GROUPS`).

    Parameters
    ----------
    fst : array-like or Series
        Fitzpatrick types as numbers (``3``, ``3.0``, ``"3"``); missing values (None, NA, NaN) allowed.

    Returns
    -------
    Series of dtype ``string`` (the input's index when ``fst`` is a Series); missing stays NA.

    Raises
    ------
    ValueError
        For any other value (``7``, ``2.5``, ``"x"``): silently dropping it would remove the image from
        every group.
    """
    raw = fst if isinstance(fst, pd.Series) else pd.Series(fst, dtype="object")
    values = pd.to_numeric(raw, errors="coerce").astype("Float64")
    valid = values.isin(list(_GROUP_OF_TYPE)).fillna(False).astype(bool)
    bad = raw.notna() & ~valid
    if bad.any():
        shown = sorted({str(v) for v in raw[bad]})[:5]
        raise ValueError(f"FST must be 1-6 or missing; {int(bad.sum())} row(s) hold values outside 1-6: {shown}")
    groups = [_GROUP_OF_TYPE[int(v)] if ok else None for v, ok in zip(values.fillna(0), valid)]
    return pd.Series(groups, index=raw.index, dtype="string")


def _as_dtype(values: pd.Series, dtype: str) -> pd.Series:
    """Cast one column to its nullable dtype; empty strings and NaN become ``pd.NA``."""
    if dtype == "string":
        out = values.astype("object").where(pd.notna(values), None).astype("string")
        return out.str.strip().replace("", pd.NA)
    if dtype == "Int64":
        numeric = pd.to_numeric(values, errors="coerce")
        if not isinstance(numeric.dtype, pd.Int64Dtype):
            arr = numeric.to_numpy(dtype="float64", na_value=np.nan)
            if np.any(np.isfinite(arr) & (arr != np.round(arr))):
                raise ValueError(f"non-integer values in integer column: {arr[arr != np.round(arr)][:5]}")
            numeric = pd.array(np.where(np.isfinite(arr), arr, np.nan), dtype="Float64").astype("Int64")
        return pd.Series(numeric, index=values.index, dtype="Int64")
    if dtype == "Float64":
        numeric = pd.to_numeric(values, errors="coerce").astype("Float64")
        numeric = numeric.where(~numeric.isna() & np.isfinite(numeric.fillna(0.0)), pd.NA)
        return pd.Series(numeric, index=values.index, dtype="Float64")
    raise ValueError(f"unsupported dtype {dtype!r}")


def empty_catalog(n: int = 0) -> pd.DataFrame:
    """A catalog frame of ``n`` all-missing rows with the schema's columns and dtypes."""
    return pd.DataFrame(
        {col: pd.Series(pd.array([pd.NA] * n, dtype=dt)) for col, dt in CATALOG_SCHEMA.items()}
    )


def conform(df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` with exactly the catalog columns, in order, with the schema's dtypes.

    Missing columns are added as all-NA; unknown columns are dropped; the index is reset.
    """
    df = df.reset_index(drop=True)
    out = {}
    for col, dtype in CATALOG_SCHEMA.items():
        if col in df.columns:
            out[col] = _as_dtype(df[col], dtype)
        else:
            out[col] = pd.Series(pd.array([pd.NA] * len(df), dtype=dtype))
    return pd.DataFrame(out)


def validate_catalog(df: pd.DataFrame) -> None:
    """Raise ``ValueError`` naming the first violated rule of the catalog contract."""
    missing = [c for c in CATALOG_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"catalog lacks columns {missing}")
    for col, dtype in CATALOG_SCHEMA.items():
        if str(df[col].dtype) != dtype:
            raise ValueError(f"catalog column {col!r} has dtype {df[col].dtype}, expected {dtype}")
    if df["uid"].isna().any():
        raise ValueError("catalog has rows without uid")
    dup = df["uid"][df["uid"].duplicated()]
    if len(dup):
        raise ValueError(f"catalog uids are not unique, e.g. {dup.iloc[0]!r} ({len(dup)} repeats)")
    bad_mod = set(df["modality"].dropna()) - set(MODALITIES)
    if bad_mod:
        raise ValueError(f"unknown modality values {sorted(bad_mod)}")
    fst = df["fst"].dropna()
    if len(fst) and (fst.min() < 1 or fst.max() > 6):
        raise ValueError("fst outside 1-6")
    bad_sex = set(df["sex"].dropna()) - set(SEXES)
    if bad_sex:
        raise ValueError(f"unknown sex values {sorted(bad_sex)}")


def read_catalog(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``catalog.parquet`` and make sure every column has the schema's nullable dtype."""
    return conform(pd.read_parquet(path))
