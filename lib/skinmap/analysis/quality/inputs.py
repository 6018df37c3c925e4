"""The synthetic atlas's planted duplicates as a table (the chapter's ground truth for the
duplicate analyses).

Reading the run directory lives in :mod:`skinmap.runs` (``load_vectors``, ``embedding_sources``);
the critique's DermaMNIST tables in :mod:`skinmap.data.dermamnist`.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["ground_truth_pairs"]


def ground_truth_pairs(truth: dict) -> pd.DataFrame:
    """Planted duplicate pairs of the synthetic atlas as ``a, b, transform`` ("exact" for exact ones)."""
    rows = [{"a": a, "b": b, "transform": "exact"} for a, b in truth.get("exact_duplicates", [])]
    rows += [{"a": d["a"], "b": d["b"], "transform": d.get("transform", "unknown")} for d in truth.get("near_duplicates", [])]
    return pd.DataFrame(rows, columns=["a", "b", "transform"])
