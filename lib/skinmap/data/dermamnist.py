"""The critique's released DermaMNIST tables (external files, not run-directory exports).

DermaMNIST re-partitions HAM10000; its released split table and the list of newly discovered
duplicate pairs are read here so that the quality chapter can measure the lesion leakage of that
partition and correct it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["load_dermamnist", "read_duplicate_pairs"]


def load_dermamnist(split_csv: str | Path, metadata_csv: str | Path) -> pd.DataFrame:
    """DermaMNIST's partition of each HAM10000 image joined with its HAM10000 metadata.

    Parameters
    ----------
    split_csv : path-like
        The released split table (``split``, ``index``, ``image_id``); CRLF or LF line ends.
    metadata_csv : path-like
        HAM10000's metadata table (``lesion_id``, ``image_id``, ``dx``, ...).

    Returns
    -------
    DataFrame
        One row per split row with its metadata columns.

    Raises
    ------
    ValueError
        When a split row finds no metadata row (the message lists the first missing ids).
    """
    splits = pd.read_csv(split_csv, dtype={"split": "string", "image_id": "string"})
    meta = pd.read_csv(metadata_csv, dtype={"lesion_id": "string", "image_id": "string", "dx": "string"})
    for col in ("split", "image_id"):
        splits[col] = splits[col].str.strip()
    df = splits.merge(meta, on="image_id", how="left", validate="one_to_one")
    missing = df.loc[df["lesion_id"].isna(), "image_id"]
    if len(missing):
        raise ValueError(f"{len(missing)} DermaMNIST image(s) lack HAM10000 metadata, e.g. {list(missing[:3])}")
    return df


def read_duplicate_pairs(path: str | Path) -> list[tuple[str, str]]:
    """Confirmed duplicate pairs ``(from_img, to_img)`` with any file extension removed."""
    df = pd.read_csv(path, dtype=str)
    strip = lambda s: s.str.strip().str.replace(r"\.(jpe?g|png)$", "", regex=True)  # noqa: E731
    return list(zip(strip(df["from_img"]), strip(df["to_img"])))
