"""Harmonisation of source fields into the catalog's common vocabulary.

All mappings are data files under ``skinmap/data/tables/`` (edit them, not this code):

- ``registry.csv``: one row per dataset (release year, modality, origin, licence, citation, id
  namespace used by identifier de-duplication, loader module);
- ``icd10_labels.csv``: source label -> manual ICD-10 code, block and chapter (the paper's ICD-10
  annotation, used only for analysis). A row with an empty code means "reviewed, no single code"
  (e.g. ``benign``); labels with no row at all are *unmapped* and are listed in the report;
- ``body_sites.csv``: raw body-site term -> controlled ``body_site`` and coarse ``body_region``;
- ``age_rules.yml``: missing tokens, valid range, decade groups, range policy, units;
- ``countries.csv``: country -> continent;
- ``demographic_baselines.csv``: the paper's global dermatology-visit baselines.

:func:`harmonize_frame` turns a loader's *raw* frame (source values in catalog-named columns) into
catalog columns, recording every value it could not use in an :class:`~skinmap.data.issues.IssueLog`.
"""

from __future__ import annotations

import functools
import math
import re
from importlib import resources

import numpy as np
import pandas as pd
import yaml

from skinmap.data.issues import IssueLog
from skinmap.data.schema import FST_GROUPS, conform

__all__ = [
    "age_group",
    "body_region",
    "continent_of",
    "demographic_baselines",
    "fst_to_group",
    "harmonize_frame",
    "icd10_table",
    "map_icd10",
    "condition_names",
    "normalize_age",
    "normalize_body_site",
    "normalize_fst",
    "normalize_label",
    "normalize_sex",
    "registry",
    "registry_entry",
]


def _per_unique(values: pd.Series, fn) -> list:
    """``[fn(v) for v in values]`` computed once per distinct value (tables have few distinct values)."""
    obj = values.astype("object").where(values.notna(), None)
    cache: dict = {}
    out = []
    for v in obj:
        if v not in cache:
            cache[v] = fn(v)
        out.append(cache[v])
    return out


def _table_text(name: str) -> str:
    return resources.files("skinmap.data").joinpath("tables", name).read_text(encoding="utf-8")


def _read_table(name: str) -> pd.DataFrame:
    import io

    return pd.read_csv(io.StringIO(_table_text(name)), dtype="string", keep_default_na=False)


@functools.lru_cache(maxsize=None)
def _age_rules() -> dict:
    return yaml.safe_load(_table_text("age_rules.yml"))


@functools.lru_cache(maxsize=None)
def _registry() -> pd.DataFrame:
    reg = _read_table("registry.csv").replace("", pd.NA)
    reg["release_year"] = reg["release_year"].astype("Int64")
    reg["paper_images"] = pd.to_numeric(reg["paper_images"]).astype("Int64")
    return reg


def registry() -> pd.DataFrame:
    """The dataset registry (a copy): name, year, modality, origin, licence, citation, loader."""
    return _registry().copy()


def registry_entry(dataset: str) -> dict:
    """One registry row as a dict (``KeyError`` naming the dataset when it is not registered)."""
    reg = _registry()
    hit = reg[reg["dataset"] == dataset]
    if hit.empty:
        raise KeyError(f"dataset {dataset!r} is not in tables/registry.csv")
    return {k: (None if pd.isna(v) else v) for k, v in hit.iloc[0].to_dict().items()}


def demographic_baselines() -> pd.DataFrame:
    """Global dermatology-visit baselines (share in [0, 1]) with their citation."""
    df = _read_table("demographic_baselines.csv")
    df["share"] = df["share"].astype("float64")
    return df


# ---------------------------------------------------------------- labels -> ICD-10
_WS = re.compile(r"[\s_\-]+")
_WS_ONLY = re.compile(r"[\s_]+")


def _key(value: object) -> str | None:
    """Lower-case, ``_`` and runs of spaces to one space (hyphens kept: ``-1`` stays ``-1``)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    text = _WS_ONLY.sub(" ", str(value)).strip().lower()
    return text or None


def normalize_label(label: object) -> str | None:
    """Lower-case; ``_``, ``-`` and runs of spaces to one space; stripped; missing -> None."""
    if label is None or (isinstance(label, float) and math.isnan(label)) or label is pd.NA:
        return None
    text = _WS.sub(" ", str(label)).strip().lower()
    return text or None


@functools.lru_cache(maxsize=None)
def _icd10() -> pd.DataFrame:
    df = _read_table("icd10_labels.csv")
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

    rows = _per_unique(labels, one)
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

    return pd.Series(_per_unique(labels, one), index=labels.index, dtype="string")


# ---------------------------------------------------------------- body site
@functools.lru_cache(maxsize=None)
def _body_sites() -> pd.DataFrame:
    df = _read_table("body_sites.csv")
    df["key"] = [_key(x) for x in df["raw"]]
    return df.drop_duplicates("key").set_index("key")


def normalize_body_site(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Controlled body site for each raw value and a mask of values not in the vocabulary.

    Missing tokens (``unknown``, ``other``, empty) give NA without being flagged.
    """
    table = _body_sites()
    site_of = dict(zip(table.index, table["body_site"]))

    def one(raw):
        key = _key(raw)
        if key is None or key in _missing_tokens():
            return None, False
        if key in site_of:
            return site_of[key] or None, False
        return None, True

    pairs = _per_unique(values, one)
    sites, unknown = [p[0] for p in pairs], [p[1] for p in pairs]
    return (pd.Series(sites, index=values.index, dtype="string"),
            pd.Series(unknown, index=values.index, dtype=bool))


def body_region(sites: pd.Series) -> pd.Series:
    """Coarse region (head/neck, trunk, upper/lower extremity, acral, genital) of body sites.

    Controlled sites map through ``tables/body_sites.csv``; a raw term of that table (e.g. an
    imputed ``back``) maps through its row; anything else is NA."""
    table = _body_sites()
    region_of = {_key(k): r for k, r in zip(table.index, table["body_region"]) if r}
    region_of.update({_key(s): r for s, r in zip(table["body_site"], table["body_region"]) if s and r})
    return pd.Series(_per_unique(sites, lambda s: region_of.get(_key(s)) if isinstance(s, str) else None),
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
    parsed = _per_unique(values, _parse_age)
    ages = pd.array([a for a, _ in parsed], dtype="Float64")
    return pd.DataFrame(
        {
            "age": ages,
            "age_group": pd.array(_per_unique(pd.Series([a for a, _ in parsed], dtype="object"), age_group),
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
        key = _key(raw)
        if key is None or key in _missing_tokens():
            return None, False
        return (_SEX[key], False) if key in _SEX else (None, True)

    pairs = _per_unique(values, one)
    out, bad = [p[0] for p in pairs], [p[1] for p in pairs]
    return pd.Series(out, index=values.index, dtype="string"), pd.Series(bad, index=values.index, dtype=bool)


_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6}
_FST = re.compile(r"^(?:fst|fitzpatrick|type)?\s*([1-6]|i{1,3}|iv|vi?)(?:\.0+)?$")


def normalize_fst(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Fitzpatrick type 1-6 (Int64) per value (``3``, ``3.0``, ``"FST3"``, ``"III"``), and a mask of
    values not understood. ``-1``, ``0`` and missing tokens are NA without a flag."""
    def one(raw):
        key = _key(raw)
        if key is None or key in _missing_tokens() or key in {"0", "0.0", "-1.0"}:
            return None, False
        m = _FST.match(key.replace(" ", ""))
        if m:
            token = m.group(1)
            return (int(token) if token.isdigit() else _ROMAN[token]), False
        return None, True

    pairs = _per_unique(values, one)
    out, bad = [p[0] for p in pairs], [p[1] for p in pairs]
    return pd.Series(pd.array(out, dtype="Int64"), index=values.index), pd.Series(bad, index=values.index, dtype=bool)


def fst_to_group(fst: pd.Series) -> pd.Series:
    """FST 1-6 -> ``I-II`` / ``III-IV`` / ``V-VI`` (NA stays NA)."""
    groups = {1: FST_GROUPS[0], 2: FST_GROUPS[0], 3: FST_GROUPS[1], 4: FST_GROUPS[1], 5: FST_GROUPS[2], 6: FST_GROUPS[2]}
    return pd.Series([groups.get(int(v)) if pd.notna(v) else None for v in fst], index=fst.index, dtype="string")


@functools.lru_cache(maxsize=None)
def _continents() -> dict[str, str]:
    df = _read_table("countries.csv")
    return {_key(c): k for c, k in zip(df["country"], df["continent"])}


def continent_of(countries: pd.Series) -> pd.Series:
    """Continent of each country name (NA when missing or not in ``tables/countries.csv``)."""
    table = _continents()
    return pd.Series([table.get(_key(c)) if isinstance(c, str) else None for c in countries],
                     index=countries.index, dtype="string")


# ---------------------------------------------------------------- frame
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
    group = fst_to_group(fst)
    if "fst_group" in raw.columns:
        group = group.fillna(raw["fst_group"].astype("string"))
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

    modality = col("modality").astype("string")
    out["modality"] = modality.fillna(entry.get("modality")) if entry.get("modality") else modality
    year = pd.to_numeric(col("release_year"), errors="coerce").astype("Int64")
    out["release_year"] = year.fillna(entry["release_year"]) if entry.get("release_year") is not None else year
    return conform(out)
