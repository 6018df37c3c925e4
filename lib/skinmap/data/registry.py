"""The dataset registry and the published baselines: reference facts about the datasets, not rules
for harmonising their values.

- ``tables/registry.csv``: one row per official dataset (release year, modality, origin, licence,
  citation, the id namespace used by identifier de-duplication, the loader module);
- ``tables/demographic_baselines.csv``: the paper's global dermatology-visit baselines.
"""

from __future__ import annotations

import functools

import pandas as pd

from skinmap.data.tables import table_frame

__all__ = ["registry", "registry_entry", "demographic_baselines"]


@functools.lru_cache(maxsize=None)
def _registry() -> pd.DataFrame:
    reg = table_frame("registry.csv").replace("", pd.NA)
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
    df = table_frame("demographic_baselines.csv")
    df["share"] = df["share"].astype("float64")
    return df
