"""Fitzpatrick 17k's metadata table with every column (the catalog loader keeps only some).

The quality chapter audits Fitzpatrick17k from its table alone, as the critique did: label and
skin-type distributions and the dataset's own quality control (``qc``: a sample of images reviewed
by dermatologists, judged e.g. ``"1 Diagnostic"``, ``"3 Wrongly labelled"``). Not a registry
loader (:mod:`skinmap.data.loaders.fitzpatrick17k` is); this module only reads the table.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["COLUMNS", "read_fitzpatrick17k_table", "images_for_table"]

#: The table's columns as distributed (``url_alphanum`` and ``url`` are kept as text).
COLUMNS = ("md5hash", "fitzpatrick_scale", "fitzpatrick_centaur", "label", "nine_partition_label",
           "three_partition_label", "qc", "url", "url_alphanum")


def read_fitzpatrick17k_table(path: str | Path) -> pd.DataFrame:
    """The published ``fitzpatrick17k.csv`` with typed columns.

    Returns
    -------
    DataFrame with the distributed columns plus ``image_id`` (= ``md5hash``), ``fst`` and
    ``fst_centaur`` (``Int64``, the published ``-1`` = unknown as NA), ``diagnosis`` (= ``label``)
    and ``qc`` (string, NA = not reviewed). Rows keep the file's order.

    Raises
    ------
    ValueError
        When a required column (``md5hash``, ``label``, ``fitzpatrick_scale``) is missing.
    """
    df = pd.read_csv(path, dtype="string", keep_default_na=True)
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in ("md5hash", "label", "fitzpatrick_scale") if c not in df]
    if missing:
        raise ValueError(f"{Path(path).name}: missing column(s) {missing}; expected {list(COLUMNS)}")
    for col in ("md5hash", "label", "qc"):
        if col in df:
            df[col] = df[col].str.strip().replace("", pd.NA)

    def _fst(col: str) -> pd.Series:
        if col not in df:
            return pd.Series(pd.NA, index=df.index, dtype="Int64")
        v = pd.to_numeric(df[col], errors="coerce").astype("Int64")
        return v.where(v.between(1, 6))

    df["image_id"] = df["md5hash"]
    df["diagnosis"] = df["label"]
    df["fst"] = _fst("fitzpatrick_scale")
    df["fst_centaur"] = _fst("fitzpatrick_centaur")
    if "qc" not in df:
        df["qc"] = pd.Series(pd.NA, index=df.index, dtype="string")
    return df


def images_for_table(table: pd.DataFrame, image_dir: str | Path) -> pd.Series:
    """Path of each row's image ``<image_dir>/<md5hash>.jpg`` (the published layout), NA when absent."""
    folder = Path(image_dir)
    paths = [folder / f"{h}.jpg" if isinstance(h, str) else None for h in table["md5hash"]]
    return pd.Series([str(p) if p is not None and p.is_file() else pd.NA for p in paths], index=table.index,
                     dtype="string")
