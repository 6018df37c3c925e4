"""Reference tables shipped as package data (edit the CSV/YAML files, not code):
``registry.csv`` and ``demographic_baselines.csv`` (read by :mod:`skinmap.data.registry`),
``icd10_labels.csv``, ``body_sites.csv``, ``age_rules.yml`` and ``countries.csv`` (read by
:mod:`skinmap.data.harmonize`)."""

from __future__ import annotations

import io
import math
import re
from importlib import resources

import pandas as pd

__all__ = ["table_text", "table_frame", "table_key", "lookup_each"]

_SPACES = re.compile(r"[\s_]+")
_SPACES_AND_HYPHENS = re.compile(r"[\s_\-]+")


def table_text(name: str) -> str:
    """The text of one bundled table (UTF-8)."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def table_frame(name: str) -> pd.DataFrame:
    """One bundled CSV table with every column as ``string`` (empty cells are ``""``, not NA)."""
    return pd.read_csv(io.StringIO(table_text(name)), dtype="string", keep_default_na=False)


def table_key(value: object, *, hyphens: bool = True) -> str | None:
    """How a raw value is matched against a table: lower-case, ``_`` and runs of white space to one
    space, stripped; with ``hyphens=False`` hyphens count as spaces too (``melanoma-in-situ``);
    missing (None, NA, NaN, empty) -> None."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    text = (_SPACES if hyphens else _SPACES_AND_HYPHENS).sub(" ", str(value)).strip().lower()
    return text or None


def lookup_each(values: pd.Series, fn) -> list:
    """``[fn(v) for v in values]`` computed once per distinct value (missing values become None).

    Source columns have few distinct values (labels, body sites, ages), so every table lookup of the
    harmonisation goes through here."""
    obj = values.astype("object").where(values.notna(), None)
    cache: dict = {}
    out = []
    for v in obj:
        if v not in cache:
            cache[v] = fn(v)
        out.append(cache[v])
    return out
