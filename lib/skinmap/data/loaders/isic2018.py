"""ISIC 2018 Task 3 (Codella et al. 2019): one-hot ground truths + ``*_Input`` image folders.

Files as distributed: ``ISIC2018_Task3_{Training,Validation,Test}_GroundTruth.csv`` with columns
``image, MEL, NV, BCC, AKIEC, BKL, DF, VASC`` (one-hot ``1.0``/``0.0``) and images in
``ISIC2018_Task3_{Training,Validation,Test}_Input/``. The diagnosis is the class column holding 1
(verbatim, e.g. ``MEL``). The training part is HAM10000 under the same ids, so identifier
de-duplication merges it with the HAM10000 loader's rows. Images present without a ground-truth
row are kept as unlabelled rows.
"""

from __future__ import annotations

import pandas as pd

from skinmap.data.issues import IssueLog
from skinmap.data.loaders.base import (FileIndex, attach_images, finish, image_lookup, one_hot_label, prepare,
                                       read_table)
from skinmap.data.schema import empty_catalog

DATASET = "ISIC2018"
SPLITS = {"train": "Training", "validation": "Validation", "test": "Test"}
CLASSES = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")


def _table(split: str) -> str:
    return f"ISIC2018_Task3_{SPLITS[split]}_GroundTruth.csv"


def _images(split: str) -> str:
    return f"ISIC2018_Task3_{SPLITS[split]}_Input"


def find(index: FileIndex) -> bool:
    return any(index.first(_table(s)) for s in SPLITS) or any(index.dirs_named(_images(s)) for s in ("validation", "test"))


def load(root, issues: IssueLog | None = None, index: FileIndex | None = None, *, probe: bool = True,
         decode: bool = False) -> pd.DataFrame:
    index, issues = prepare(root, issues, index)
    frames = []
    for split in SPLITS:
        table = index.first(_table(split))
        dirs = index.dirs_named(_images(split))
        lookup = image_lookup(index, dirs)
        if table is not None:
            df = read_table(table, DATASET, issues, required=("image", *CLASSES))
            if df is None:
                continue
            raw = pd.DataFrame({"image_id": df["image"], "diagnosis": one_hot_label(df, CLASSES), "split": split,
                                "source_file": df["source_file"], "source_row": df["source_row"]})
            listed = set(raw["image_id"])
        elif dirs:
            raw, listed = pd.DataFrame(columns=["image_id"]), set()
        else:
            continue
        extra = sorted(k for k in lookup if k not in listed and k.startswith("ISIC_"))
        if extra:  # images on disk without a ground-truth row: unlabelled rows, sourced from their folder
            raw = pd.concat([raw, pd.DataFrame({"image_id": extra, "split": split,
                                                "source_file": [str(lookup[k].parent) for k in extra]})],
                            ignore_index=True)
        frames.append(attach_images(raw, lookup))
    if not frames:
        issues.add("missing_file", DATASET, str(index.root), message=f"{DATASET}: no Task 3 table or image folder found")
        return empty_catalog()
    return finish(pd.concat(frames, ignore_index=True), DATASET, issues, probe=probe, decode=decode)
