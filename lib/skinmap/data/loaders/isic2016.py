"""ISIC 2016 Part 3 (Gutman et al. 2016): header-less ground truths + ``*_Data`` image folders.

Files as distributed: ``ISBI2016_ISIC_Part3_Training_GroundTruth.csv`` (no header; ``image_id,
benign|malignant``), ``ISBI2016_ISIC_Part3_Test_GroundTruth.csv`` (no header; ``image_id, 0.0|1.0``
for malignant), images in ``ISBI2016_ISIC_Part3_{Training,Test}_Data/``. The diagnosis is
``benign`` / ``malignant`` (no single ICD-10 code); there is no other metadata.
"""

from __future__ import annotations

import pandas as pd

from skinmap.data.issues import IssueLog
from skinmap.data.loaders.base import FileIndex, attach_images, finish, image_lookup, prepare, read_table
from skinmap.data.schema import empty_catalog

DATASET = "ISIC2016"
SPLITS = {"train": "Training", "test": "Test"}


def find(index: FileIndex) -> bool:
    return any(index.first(f"ISBI2016_ISIC_Part3_{p}_GroundTruth.csv") for p in SPLITS.values())


def _label(value) -> str | None:
    text = str(value).strip().lower()
    if text in ("benign", "malignant"):
        return text
    try:
        return "malignant" if float(text) >= 0.5 else "benign"
    except ValueError:
        return text or None


def load(root, issues: IssueLog | None = None, index: FileIndex | None = None, *, probe: bool = True,
         decode: bool = False) -> pd.DataFrame:
    index, issues = prepare(root, issues, index)
    frames = []
    for split, part in SPLITS.items():
        table = index.first(f"ISBI2016_ISIC_Part3_{part}_GroundTruth.csv")
        if table is None:
            continue
        df = read_table(table, DATASET, issues, required=("image_id", "label"), header=None, names=["image_id", "label"])
        if df is None:
            continue
        raw = pd.DataFrame({"image_id": df["image_id"], "diagnosis": [_label(v) for v in df["label"]], "split": split,
                            "source_file": df["source_file"], "source_row": df["source_row"]})
        frames.append(attach_images(raw, image_lookup(index, index.dirs_named(f"ISBI2016_ISIC_Part3_{part}_Data"))))
    if not frames:
        issues.add("missing_file", DATASET, str(index.root), message=f"{DATASET}: no ISBI2016 Part 3 table found")
        return empty_catalog()
    raw = pd.concat(frames, ignore_index=True)
    return finish(raw, DATASET, issues, probe=probe, decode=decode, report_absent=bool(raw["path"].notna().any()))
