"""PASSION (Gottfrois et al. 2024): the subject table (``label.csv``) and ``<subject_id>_<n>`` images.

Columns as distributed: ``subject_id, country, age, sex, fitzpatrick, body_loc, impetig,
conditions_PASSION`` (optionally more, e.g. ``diagnosis``); splits in ``PASSION_split.csv``
(``subject_id`` and ``Split``). The table is recognised by its header (``subject_id`` and
``conditions_PASSION``). One catalog row per image file ``<subject_id>_<n>.<ext>`` found below the
table's folder, carrying the subject's metadata; without images, one metadata-only row per subject
(``image_id = subject_id``). The diagnosis is ``conditions_PASSION``; origin is the row's country.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from skinmap.data.issues import IssueLog
from skinmap.data.loaders.base import FileIndex, finish, open_table, prepare, table_with_header
from skinmap.data.schema import empty_catalog

DATASET = "PASSION"
SIGNATURE = ("subject_id", "conditions_PASSION")
COUNTRY_NAMES = {"madagascar": "Madagascar", "guinea": "Guinea", "malawi": "Malawi", "tanzania": "Tanzania"}


def _table(index: FileIndex) -> Path | None:
    return table_with_header(index, ["label.csv", "PASSION_label.csv", "passion_label.csv"], SIGNATURE)


def find(index: FileIndex) -> bool:
    return _table(index) is not None


def load(root, issues: IssueLog | None = None, index: FileIndex | None = None, *, probe: bool = True,
         decode: bool = False) -> pd.DataFrame:
    index, issues = prepare(root, issues, index)
    table = _table(index)
    df = open_table(table, index, issues, DATASET, "no PASSION label.csv found",
                    required=("subject_id", "conditions_PASSION"),
                    optional=("country", "age", "sex", "fitzpatrick", "body_loc"))
    if df is None:
        return empty_catalog()
    split_file = table.parent / "PASSION_split.csv"
    if split_file.is_file():
        splits = pd.read_csv(split_file, dtype=str)
        split_col = next((c for c in splits.columns if c.lower() == "split"), None)
        if split_col is not None and "subject_id" in splits.columns:
            df = df.merge(splits[["subject_id", split_col]].rename(columns={split_col: "_split"}), on="subject_id",
                          how="left")
    if "_split" not in df.columns:
        df["_split"] = pd.NA
    images: dict[str, list[Path]] = {}
    for f in index.files_under(table.parent):
        subject, sep, _ = f.stem.rpartition("_")
        if sep:
            images.setdefault(subject, []).append(f)
    rows = []
    for rec in df.to_dict("records"):
        files = sorted(images.get(str(rec["subject_id"]), []))
        for f in files or [None]:
            rows.append({
                "image_id": f.stem if f is not None else rec["subject_id"], "path": f if f is not None else pd.NA,
                "_listed_file": f"{rec['subject_id']}_*", "patient_id": rec["subject_id"],
                "diagnosis": rec["conditions_PASSION"], "age": rec["age"], "sex": rec["sex"],
                "fst": rec["fitzpatrick"], "body_site": rec["body_loc"],
                "origin_country": COUNTRY_NAMES.get(str(rec["country"]).strip().lower(), rec["country"]),
                "split": str(rec["_split"]).lower() if pd.notna(rec["_split"]) else pd.NA,
                "source_file": rec["source_file"], "source_row": rec["source_row"]})
    raw = pd.DataFrame(rows)
    return finish(raw, DATASET, issues, probe=probe, decode=decode, report_absent=False)
