"""ISIC 2019 (BCN20000 + HAM10000 + MSK): ground truth, metadata and ``*_Input`` image folders.

Files as distributed: ``ISIC_2019_Training_GroundTruth.csv`` (``image, MEL, NV, BCC, AK, BKL, DF,
VASC, SCC, UNK``, one-hot), ``ISIC_2019_Training_Metadata.csv`` (``image, age_approx,
anatom_site_general, lesion_id, sex``), images in ``ISIC_2019_Training_Input/``; the test part
``ISIC_2019_Test_Metadata.csv`` (+ ``ISIC_2019_Test_GroundTruth.csv`` when released) and
``ISIC_2019_Test_Input/``. Some training ids carry a ``_downsampled`` suffix (resized copies); the
suffix is removed from ``image_id`` so the archive identifier matches other releases, and kept for
finding the file.
"""

from __future__ import annotations

import pandas as pd

from skinmap.data.issues import IssueLog
from skinmap.data.loaders.base import FileIndex, finish, image_lookup, one_hot_label, prepare, read_table
from skinmap.data.schema import empty_catalog

DATASET = "ISIC2019"
CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
PARTS = {"train": "Training", "test": "Test"}


def find(index: FileIndex) -> bool:
    return any(index.first(f"ISIC_2019_{p}_GroundTruth.csv", f"ISIC_2019_{p}_Metadata.csv") for p in PARTS.values())


def _load_part(index: FileIndex, issues: IssueLog, split: str) -> pd.DataFrame | None:
    part = PARTS[split]
    gt_file = index.first(f"ISIC_2019_{part}_GroundTruth.csv")
    meta_file = index.first(f"ISIC_2019_{part}_Metadata.csv")
    if gt_file is None and meta_file is None:
        return None
    gt = read_table(gt_file, DATASET, issues, required=("image",)) if gt_file is not None else None
    meta = (read_table(meta_file, DATASET, issues, required=("image",),
                       optional=("age_approx", "anatom_site_general", "sex") + (("lesion_id",) if split == "train" else ()))
            if meta_file is not None else None)
    if gt is not None:
        classes = [c for c in CLASSES if c in gt.columns]
        labels = pd.DataFrame({"image": gt["image"], "diagnosis": one_hot_label(gt, classes),
                               "source_file": gt["source_file"], "source_row": gt["source_row"]})
    else:
        labels = None
    if meta is not None:
        meta = meta.rename(columns={"source_file": "meta_file", "source_row": "meta_row"})
        raw = meta if labels is None else labels.merge(meta, on="image", how="outer")
        if labels is None:
            raw = raw.rename(columns={"meta_file": "source_file", "meta_row": "source_row"})
        else:  # rows only in the metadata table are sourced from it
            raw["source_file"] = raw["source_file"].fillna(raw["meta_file"])
            raw["source_row"] = raw["source_row"].fillna(raw["meta_row"])
    else:
        raw = labels
    for col in ("diagnosis", "age_approx", "anatom_site_general", "sex", "lesion_id"):
        if col not in raw.columns:
            raw[col] = pd.NA
    lookup = image_lookup(index, index.dirs_named(f"ISIC_2019_{part}_Input"))
    return pd.DataFrame({
        "image_id": raw["image"].str.replace("_downsampled", "", regex=False),
        "path": [lookup.get(str(k), pd.NA) for k in raw["image"]],
        "_listed_file": raw["image"],
        "diagnosis": raw["diagnosis"], "age": raw["age_approx"], "body_site": raw["anatom_site_general"],
        "sex": raw["sex"], "lesion_id": raw["lesion_id"], "split": split,
        "source_file": raw["source_file"], "source_row": raw["source_row"],
    })


def load(root, issues: IssueLog | None = None, index: FileIndex | None = None, *, probe: bool = True,
         decode: bool = False) -> pd.DataFrame:
    index, issues = prepare(root, issues, index)
    frames = [f for f in (_load_part(index, issues, s) for s in PARTS) if f is not None]
    if not frames:
        issues.add("missing_file", DATASET, str(index.root), message=f"{DATASET}: no ISIC_2019 table found")
        return empty_catalog()
    raw = pd.concat(frames, ignore_index=True)
    any_images = raw["path"].notna().any()
    return finish(raw, DATASET, issues, probe=probe, decode=decode, report_absent=bool(any_images))
