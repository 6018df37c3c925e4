"""Derm7pt (Kawahara et al. 2019): ``meta/meta.csv``, split index files and ``images/``.

Columns as distributed: ``case_num, diagnosis, seven_point_score, pigment_network, streaks,
pigmentation, regression_structures, dots_and_globules, blue_whitish_veil, vascular_structures,
level_of_diagnostic_difficulty, elevation, location, sex, management, clinic, derm`` (``clinic`` and
``derm`` are image paths relative to ``images/``). Each case gives two catalog rows, one clinical
(``<case_num>_clinic``) and one dermoscopic (``<case_num>_derm``), sharing ``lesion_id = case_num``.
Splits come from ``meta/{train,valid,test}_indexes.csv`` (column ``indexes``: 0-based rows of
``meta.csv``). The table is recognised by its header (``seven_point_score``, ``clinic``, ``derm``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from skinmap.data.issues import IssueLog
from skinmap.data.loaders.base import FileIndex, finish, open_table, prepare, table_with_header
from skinmap.data.schema import empty_catalog

DATASET = "Derm7pt"
SIGNATURE = ("seven_point_score", "clinic", "derm")
SPLIT_FILES = {"train": "train_indexes.csv", "validation": "valid_indexes.csv", "test": "test_indexes.csv"}


def _table(index: FileIndex) -> Path | None:
    return table_with_header(index, ["meta.csv"], SIGNATURE)


def find(index: FileIndex) -> bool:
    return _table(index) is not None


def load(root, issues: IssueLog | None = None, index: FileIndex | None = None, *, probe: bool = True,
         decode: bool = False) -> pd.DataFrame:
    index, issues = prepare(root, issues, index)
    table = _table(index)
    df = open_table(table, index, issues, DATASET, "no Derm7pt meta.csv found",
                    required=("case_num", "diagnosis", "clinic", "derm"),
                    optional=("location", "sex"))
    if df is None:
        return empty_catalog()
    split = pd.Series(pd.NA, index=df.index, dtype="object")
    for name, fname in SPLIT_FILES.items():
        path = table.parent / fname
        if path.is_file():
            rows = pd.to_numeric(pd.read_csv(path)["indexes"], errors="coerce").dropna().astype(int)
            split.iloc[rows[rows < len(df)].to_numpy()] = name
    image_root = table.parent.parent / "images"
    frames = []
    for kind, modality in (("clinic", "clinical"), ("derm", "dermoscopy")):
        rel = df[kind]
        paths = [(image_root / r) if isinstance(r, str) and (image_root / r).is_file() else pd.NA for r in rel]
        frames.append(pd.DataFrame({
            "image_id": df["case_num"].astype(str) + f"_{kind}", "lesion_id": df["case_num"], "modality": modality,
            "diagnosis": df["diagnosis"], "body_site": df["location"], "sex": df["sex"], "split": split,
            "path": paths, "_listed_file": rel, "source_file": df["source_file"], "source_row": df["source_row"]}))
    raw = pd.concat(frames, ignore_index=True)
    return finish(raw, DATASET, issues, probe=probe, decode=decode, report_absent=bool(raw["path"].notna().any()))
