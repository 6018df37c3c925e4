"""Harmonisation of source fields into the catalog's common vocabulary.

All mappings are data files under ``skinmap/data/tables/`` (edit them, not this code):

- ``body_sites.csv``: raw body-site term -> controlled ``body_site`` and coarse ``body_region``;
- ``age_rules.yml``: missing tokens, valid range, decade groups, range policy, units;
- ``countries.csv``: country -> continent.

Diagnosis labels are coded to ICD-10 by :mod:`skinmap.data.icd10`; the dataset registry and the
demographic baselines (facts about datasets, not harmonisation rules) are in :mod:`skinmap.data.registry`.

:func:`harmonize_frame` turns a loader's *raw* frame (source values in catalog-named columns) into
catalog columns, recording every value it could not use in an :class:`~skinmap.data.issues.IssueLog`.
"""

from __future__ import annotations

import functools
import math
import re

import numpy as np
import pandas as pd
import yaml

from skinmap.data.icd10 import map_icd10
from skinmap.data.issues import IssueLog
from skinmap.data.schema import FST_GROUPS, MODALITIES, conform, fst_group
from skinmap.data.tables import lookup_each, table_frame, table_key, table_text

__all__ = [
    "age_group",
    "body_region",
    "continent_of",
    "harmonize_frame",
    "normalize_age",
    "normalize_body_site",
    "normalize_fst",
    "normalize_fst_group",
    "normalize_sex",
]


@functools.lru_cache(maxsize=None)
def _age_rules() -> dict:
    return yaml.safe_load(table_text("age_rules.yml"))


# ---------------------------------------------------------------- body site
@functools.lru_cache(maxsize=None)
def _body_sites() -> pd.DataFrame:
    df = table_frame("body_sites.csv")
    df["key"] = [table_key(x) for x in df["raw"]]
    return df.drop_duplicates("key").set_index("key")


def normalize_body_site(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Controlled body site for each raw value and a mask of values not in the vocabulary.

    Missing tokens (``unknown``, ``other``, empty) give NA without being flagged.
    """
    table = _body_sites()
    site_of = dict(zip(table.index, table["body_site"]))

    def one(raw):
        key = table_key(raw)
        if key is None or key in _missing_tokens():
            return None, False
        if key in site_of:
            return site_of[key] or None, False
        return None, True

    pairs = lookup_each(values, one)
    sites, unknown = [p[0] for p in pairs], [p[1] for p in pairs]
    return (pd.Series(sites, index=values.index, dtype="string"),
            pd.Series(unknown, index=values.index, dtype=bool))


def body_region(sites: pd.Series) -> pd.Series:
    """Coarse region (head/neck, trunk, upper/lower extremity, acral, genital) of body sites.

    Controlled sites map through ``tables/body_sites.csv``; a raw term of that table (e.g. an
    imputed ``back``) maps through its row; anything else is NA."""
    table = _body_sites()
    region_of = {table_key(k): r for k, r in zip(table.index, table["body_region"]) if r}
    region_of.update({table_key(s): r for s, r in zip(table["body_site"], table["body_region"]) if s and r})
    return pd.Series(lookup_each(sites, lambda s: region_of.get(table_key(s)) if isinstance(s, str) else None),
                     index=sites.index, dtype="string")


# ---------------------------------------------------------------- age
@functools.lru_cache(maxsize=None)
def _missing_tokens() -> frozenset[str]:
    return frozenset(str(t).strip().lower() for t in _age_rules()["missing_tokens"])


def age_group(age: float | None) -> str | None:
    """Decade label of an age in years (``"60-69"``; ``"90+"`` at the open top).

    None if missing, and None for an age outside the table's valid range (a negative age from a
    regression, say): such a value is not a person's age and gets no group.
    """
    if age is None or age is pd.NA or (isinstance(age, float) and math.isnan(age)):
        return None
    rules = _age_rules()
    lo_ok, hi_ok = rules["valid_range"]
    if not lo_ok <= float(age) <= hi_ok:
        return None
    width, top = int(rules["group_width"]), int(rules["open_top"])
    if age >= top:
        return f"{top}+"
    lo = int(age // width) * width
    return f"{lo}-{lo + width - 1}"


_NUM = r"(\d+(?:\.\d+)?)"
_RANGE = re.compile(rf"^{_NUM}\s*(?:-|–|to)\s*{_NUM}$")
_DECADE = re.compile(r"^(\d+)0'?s$")
_UNIT = re.compile(rf"^{_NUM}\s*([a-z/]+)\.?$")


def _parse_age(raw: object) -> tuple[float | None, str | None]:
    """(age in years or None, issue kind or None) for one raw value."""
    rules = _age_rules()
    lo_ok, hi_ok = rules["valid_range"]
    if raw is None or raw is pd.NA or (isinstance(raw, float) and math.isnan(raw)):
        return None, None
    if isinstance(raw, (int, float, np.integer, np.floating)) and not isinstance(raw, bool):
        value = float(raw)
        if value == -1:
            return None, None
        return (value, None) if lo_ok <= value <= hi_ok else (None, "unparsed_age")
    text = str(raw).strip().lower()
    if text in _missing_tokens():
        return None, None
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is not None:
        if value == -1:
            return None, None
        return (value, None) if lo_ok <= value <= hi_ok else (None, "unparsed_age")
    range_policy = rules["ranges"]
    m = _RANGE.match(text)
    if m is None and (d := _DECADE.match(text)):
        lo = float(d.group(1)) * 10
        m_lo, m_hi = lo, lo + 9
    elif m is not None:
        m_lo, m_hi = float(m.group(1)), float(m.group(2))
    else:
        m_lo = m_hi = None
    if m_lo is not None:
        if m_hi < m_lo or (m_hi - m_lo) > float(range_policy["max_width"]) or not (lo_ok <= m_lo and m_hi <= hi_ok):
            return None, "unparsed_age"
        return (m_lo + m_hi) / 2.0, range_policy["report_kind"]
    u = _UNIT.match(text)
    if u:
        number, unit = float(u.group(1)), u.group(2)
        units = rules["units"]
        factor = (1 / 12 if unit in units["months"] else 7 / 365.25 if unit in units["weeks"]
                  else 1.0 if unit in units["years"] else None)
        if factor is not None and lo_ok <= number * factor <= hi_ok:
            return number * factor, None
    return None, "unparsed_age"


def normalize_age(values: pd.Series) -> pd.DataFrame:
    """``age`` (Float64 years), ``age_group`` (decade) and ``issue`` (kind or NA) per raw value.

    Rules (``tables/age_rules.yml``): numbers are years; missing tokens and ``-1`` are NA; a range
    ``"45-50"`` becomes its midpoint and is reported as ``age_range``; units like ``"18 months"``
    are converted; anything else, or an age outside the valid range, is NA and ``unparsed_age``.
    """
    parsed = lookup_each(values, _parse_age)
    ages = pd.array([a for a, _ in parsed], dtype="Float64")
    return pd.DataFrame(
        {
            "age": ages,
            "age_group": pd.array(lookup_each(pd.Series([a for a, _ in parsed], dtype="object"), age_group),
                                  dtype="string"),
            "issue": pd.array([k for _, k in parsed], dtype="string"),
        },
        index=values.index,
    )


# ---------------------------------------------------------------- sex, FST, origin
_SEX = {"male": "male", "m": "male", "man": "male", "female": "female", "f": "female", "woman": "female"}


def normalize_sex(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``male``/``female``/NA per value and a mask of values that were not understood."""
    def one(raw):
        key = table_key(raw)
        if key is None or key in _missing_tokens():
            return None, False
        return (_SEX[key], False) if key in _SEX else (None, True)

    pairs = lookup_each(values, one)
    out, bad = [p[0] for p in pairs], [p[1] for p in pairs]
    return pd.Series(out, index=values.index, dtype="string"), pd.Series(bad, index=values.index, dtype=bool)


_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6}
_FST = re.compile(r"^(?:fst|fitzpatrick|type)?\s*([1-6]|i{1,3}|iv|vi?)(?:\.0+)?$")


def normalize_fst(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Fitzpatrick type 1-6 (Int64) per value (``3``, ``3.0``, ``"FST3"``, ``"III"``), and a mask of
    values not understood. ``-1``, ``0`` and missing tokens are NA without a flag."""
    def one(raw):
        key = table_key(raw)
        if key is None or key in _missing_tokens() or key in {"0", "0.0", "-1.0"}:
            return None, False
        m = _FST.match(key.replace(" ", ""))
        if m:
            token = m.group(1)
            return (int(token) if token.isdigit() else _ROMAN[token]), False
        return None, True

    pairs = lookup_each(values, one)
    out, bad = [p[0] for p in pairs], [p[1] for p in pairs]
    return pd.Series(pd.array(out, dtype="Int64"), index=values.index), pd.Series(bad, index=values.index, dtype=bool)


def normalize_fst_group(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """A source's own FST group in the catalog's spelling (:data:`~skinmap.data.schema.FST_GROUPS`,
    compared case-insensitively, spaces ignored: ``"iii - iv"`` -> ``"III-IV"``), and a mask of
    values that are not one of the three groups. Missing tokens are NA without a flag."""
    spelled = {g.lower(): g for g in FST_GROUPS}

    def one(raw):
        key = table_key(raw)
        if key is None or key in _missing_tokens():
            return None, False
        group = spelled.get(key.replace(" ", ""))
        return group, group is None

    pairs = lookup_each(values, one)
    out, bad = [p[0] for p in pairs], [p[1] for p in pairs]
    return pd.Series(out, index=values.index, dtype="string"), pd.Series(bad, index=values.index, dtype=bool)


@functools.lru_cache(maxsize=None)
def _continents() -> dict[str, str]:
    df = table_frame("countries.csv")
    return {table_key(c): k for c, k in zip(df["country"], df["continent"])}


def continent_of(countries: pd.Series) -> pd.Series:
    """Continent of each country name (NA when missing or not in ``tables/countries.csv``)."""
    table = _continents()
    return pd.Series([table.get(table_key(c)) if isinstance(c, str) else None for c in countries],
                     index=countries.index, dtype="string")


# ---------------------------------------------------------------- frame
def _modality(values: pd.Series, dataset: str, raw: pd.DataFrame) -> pd.Series:
    """Per-row modality in the catalog's spelling (case-insensitive); any other value is a
    ``ValueError`` naming the dataset, file and row (the catalog builder skips that dataset)."""
    canonical = {m.lower(): m for m in MODALITIES}
    out = pd.Series([canonical.get(str(v).strip().lower()) if pd.notna(v) else None for v in values],
                    index=values.index, dtype="string")
    bad = values.notna() & out.isna()
    if bad.any():
        i = bad.idxmax()
        where = (f" in {raw.at[i, 'source_file']} row {raw.at[i, 'source_row']}"
                 if {"source_file", "source_row"} <= set(raw.columns) else "")
        raise ValueError(f"{dataset}: modality {values[i]!r}{where} is not one of {MODALITIES} "
                         f"({int(bad.sum())} row(s))")
    return out


_RAW_COLUMNS = ("image_id", "path", "lesion_id", "patient_id", "split", "diagnosis", "fst", "fst_group",
                "age", "sex", "body_site", "origin_country", "origin_continent", "modality",
                "release_year", "source_file", "source_row", "width", "height")


def harmonize_frame(raw: pd.DataFrame, dataset: str, entry: dict, issues: IssueLog) -> pd.DataFrame:
    """Raw loader frame -> catalog frame (schema of :mod:`skinmap.data.schema`, caption empty).

    ``raw`` holds source values in catalog-named columns (any subset of ``_RAW_COLUMNS``);
    ``entry`` is the dataset's registry row (fills release year, modality and origin where the
    rows do not carry them). Every value that cannot be harmonised is recorded in ``issues``
    under its dataset/file/row and becomes NA (labels are kept; only their ICD fields are NA).
    """
    raw = raw.reset_index(drop=True)
    n = len(raw)

    def col(name):
        return raw[name] if name in raw.columns else pd.Series([None] * n, index=raw.index, dtype="object")

    out = pd.DataFrame(index=raw.index)
    out["dataset"] = dataset
    out["image_id"] = col("image_id").astype("string").str.strip()
    out["uid"] = dataset + "/" + out["image_id"]
    for name in ("path", "lesion_id", "patient_id", "split", "source_file", "width", "height", "source_row"):
        out[name] = col(name)
    out["diagnosis"] = col("diagnosis").astype("string").str.strip()
    icd = map_icd10(out["diagnosis"], dataset)
    out = out.join(icd.drop(columns="unmapped"))
    if icd["unmapped"].any():
        issues.add_rows("unknown_label", dataset, raw[icd["unmapped"]], column="diagnosis",
                        values=out.loc[icd["unmapped"], "diagnosis"])

    fst, bad = normalize_fst(col("fst"))
    out["fst"] = fst
    if bad.any():
        issues.add_rows("unparsed_fst", dataset, raw[bad], column="fst", values=col("fst")[bad])
    group = fst_group(fst)
    if "fst_group" in raw.columns:  # a source that records only the group (DDI, generic tables)
        given, bad = normalize_fst_group(raw["fst_group"])
        if bad.any():
            issues.add_rows("unparsed_fst", dataset, raw[bad], column="fst_group", values=raw["fst_group"][bad])
        group = group.fillna(given)
    out["fst_group"] = group

    ages = normalize_age(col("age"))
    out["age"], out["age_group"] = ages["age"], ages["age_group"]
    for kind in ("age_range", "unparsed_age"):
        mask = (ages["issue"] == kind).fillna(False).astype(bool)
        if mask.any():
            issues.add_rows(kind, dataset, raw[mask], column="age", values=col("age")[mask])

    sex, bad = normalize_sex(col("sex"))
    out["sex"] = sex
    if bad.any():
        issues.add_rows("unparsed_sex", dataset, raw[bad], column="sex", values=col("sex")[bad])

    site, unknown = normalize_body_site(col("body_site"))
    out["body_site"] = site
    if unknown.any():
        issues.add_rows("unknown_body_site", dataset, raw[unknown], column="body_site",
                        values=col("body_site")[unknown])

    country = col("origin_country").astype("string")
    if entry.get("origin_country"):
        country = country.fillna(entry["origin_country"])
    out["origin_country"] = country
    continent = col("origin_continent").astype("string").fillna(continent_of(country))
    if entry.get("origin_continent"):
        continent = continent.fillna(entry["origin_continent"])
    out["origin_continent"] = continent

    modality = _modality(col("modality").astype("string"), dataset, raw)
    out["modality"] = modality.fillna(entry.get("modality")) if entry.get("modality") else modality
    year = pd.to_numeric(col("release_year"), errors="coerce").astype("Int64")
    out["release_year"] = year.fillna(entry["release_year"]) if entry.get("release_year") is not None else year
    return conform(out)
