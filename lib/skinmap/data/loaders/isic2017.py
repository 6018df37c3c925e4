"""ISIC 2017 Part 3 (Codella et al. 2018): ground truth, metadata and ``*_Data`` image folders.

Files as distributed per split (``Training``, ``Validation``, ``Test_v2``):
``ISIC-2017_<split>_Part3_GroundTruth.csv`` (``image_id, melanoma, seborrheic_keratosis``, 0/1),
``ISIC-2017_<split>_Data_metadata.csv`` (``image_id, age_approximate, sex``; officially inside the
image folder) and images in ``ISIC-2017_<split>_Data/`` (superpixel PNGs ignored). The diagnosis is
``melanoma``, ``seborrheic keratosis`` or ``nevus`` (the challenge's third class). When only a
melanoma-vs-rest table is present (``ISIC-2017_<split>_Classes.csv``, ``image_id, melanoma``, a
re-uploader's derivative) the label is ``melanoma`` / ``not melanoma``. Images without any table row
are kept as unlabelled rows.
"""

from __future__ import annotations

import pandas as pd

from skinmap.data.issues import IssueLog
from skinmap.data.loaders.base import FileIndex, finish, image_lookup, prepare, read_table
from skinmap.data.schema import empty_catalog

DATASET = "ISIC2017"
SPLITS = {"train": "Training", "validation": "Validation", "test": "Test_v2"}


def find(index: FileIndex) -> bool:
    return any(index.first(f"ISIC-2017_{p}_Part3_GroundTruth.csv", f"ISIC-2017_{p}_Data_metadata.csv",
                           f"ISIC-2017_{p}_Classes.csv") or index.dirs_named(f"ISIC-2017_{p}_Data")
               for p in SPLITS.values())


def _labels(index: FileIndex, issues: IssueLog, part: str) -> pd.DataFrame | None:
    official = index.first(f"ISIC-2017_{part}_Part3_GroundTruth.csv")
    if official is not None:
        df = read_table(official, DATASET, issues, required=("image_id", "melanoma", "seborrheic_keratosis"))
        if df is not None:
            mel = pd.to_numeric(df["melanoma"], errors="coerce") >= 0.5
            sk = pd.to_numeric(df["seborrheic_keratosis"], errors="coerce") >= 0.5
            df["diagnosis"] = ["melanoma" if m else "seborrheic keratosis" if s else "nevus" for m, s in zip(mel, sk)]
            return df[["image_id", "diagnosis", "source_file", "source_row"]]
    derived = index.first(f"ISIC-2017_{part}_Classes.csv")
    if derived is not None:
        df = read_table(derived, DATASET, issues, required=("image_id", "melanoma"))
        if df is not None:
            mel = pd.to_numeric(df["melanoma"], errors="coerce")
            df["diagnosis"] = ["melanoma" if m >= 0.5 else "not melanoma" if m == m else None for m in mel]
            return df[["image_id", "diagnosis", "source_file", "source_row"]]
    return None


def load(root, issues: IssueLog | None = None, index: FileIndex | None = None, *, probe: bool = True,
         decode: bool = False) -> pd.DataFrame:
    index, issues = prepare(root, issues, index)
    frames = []
    for split, part in SPLITS.items():
        labels = _labels(index, issues, part)
        meta_file = index.first(f"ISIC-2017_{part}_Data_metadata.csv")
        meta = (read_table(meta_file, DATASET, issues, required=("image_id",), optional=("age_approximate", "sex"))
                if meta_file is not None else None)
        lookup = {k: v for k, v in image_lookup(index, index.dirs_named(f"ISIC-2017_{part}_Data")).items()
                  if not k.endswith("_superpixels")}
        ids = pd.Index([])
        for table in (labels, meta):
            if table is not None:
                ids = ids.union(pd.Index(table["image_id"]))
        ids = ids.union(pd.Index(sorted(lookup)))
        if len(ids) == 0:
            continue
        raw = pd.DataFrame({"image_id": ids.astype(str)})
        if labels is not None:
            raw = raw.merge(labels, on="image_id", how="left")
        if meta is not None:
            raw = raw.merge(meta.rename(columns={"source_file": "meta_file", "source_row": "meta_row"}),
                            on="image_id", how="left")
            if "source_file" in raw.columns:
                raw["source_file"] = raw["source_file"].fillna(raw["meta_file"])
                raw["source_row"] = raw["source_row"].fillna(raw["meta_row"])
            else:
                raw["source_file"], raw["source_row"] = raw["meta_file"], raw["meta_row"]
        for col in ("diagnosis", "age_approximate", "sex", "source_file", "source_row"):
            if col not in raw.columns:
                raw[col] = pd.NA
        raw["path"] = [lookup.get(k, pd.NA) for k in raw["image_id"]]
        folder = str(next(iter(lookup.values())).parent) if lookup else pd.NA
        raw["source_file"] = raw["source_file"].fillna(folder)
        frames.append(pd.DataFrame({
            "image_id": raw["image_id"], "path": raw["path"], "_listed_file": raw["image_id"],
            "diagnosis": raw["diagnosis"], "age": raw["age_approximate"], "sex": raw["sex"], "split": split,
            "source_file": raw["source_file"], "source_row": raw["source_row"]}))
    if not frames:
        issues.add("missing_file", DATASET, str(index.root), message=f"{DATASET}: no ISIC-2017 table or folder found")
        return empty_catalog()
    raw = pd.concat(frames, ignore_index=True)
    return finish(raw, DATASET, issues, probe=probe, decode=decode, report_absent=bool(raw["path"].notna().any()))
