"""ISIC 2020 / SIIM-ISIC (Rotemberg et al. 2021): training ground truth and test metadata.

Files as distributed: ``ISIC_2020_Training_GroundTruth.csv`` (v1: ``image_name, patient_id, sex,
age_approx, anatom_site_general_challenge, diagnosis, benign_malignant, target``) or
``ISIC_2020_Training_GroundTruth_v2.csv`` (adds ``lesion_id``), images in
``ISIC_2020_Training_JPEG/`` (or ``train/`` next to the table); test: ``ISIC_2020_Test_Metadata.csv``
(``image, patient, sex, age_approx, anatom_site_general``) and ``ISIC_2020_Test_Input/``.
``diagnosis`` is kept verbatim; ``unknown`` (benign, unspecified) has no ICD-10 code.
"""

from __future__ import annotations

import pandas as pd

from skinmap.data.issues import IssueLog
from skinmap.data.loaders.base import FileIndex, attach_images, finish, image_lookup, prepare, read_table
from skinmap.data.schema import empty_catalog

DATASET = "ISIC2020"
TRAIN = ("ISIC_2020_Training_GroundTruth_v2.csv", "ISIC_2020_Training_GroundTruth.csv")
TEST = ("ISIC_2020_Test_Metadata.csv",)


def find(index: FileIndex) -> bool:
    return index.first(*TRAIN, *TEST) is not None


def load(root, issues: IssueLog | None = None, index: FileIndex | None = None, *, probe: bool = True,
         decode: bool = False) -> pd.DataFrame:
    index, issues = prepare(root, issues, index)
    frames = []
    train = index.first(*TRAIN)
    if train is not None:
        df = read_table(train, DATASET, issues, required=("image_name", "diagnosis"),
                        optional=("patient_id", "sex", "age_approx", "anatom_site_general_challenge"))
        if df is not None:
            dirs = index.dirs_named("ISIC_2020_Training_JPEG", "ISIC_2020_Training_Input")
            dirs += [d for d in index.dirs_named("train") if d.parent == train.parent or d.parent.name == "jpeg"]
            raw = pd.DataFrame({
                "image_id": df["image_name"], "patient_id": df["patient_id"],
                "lesion_id": df["lesion_id"] if "lesion_id" in df.columns else pd.NA, "sex": df["sex"],
                "age": df["age_approx"], "body_site": df["anatom_site_general_challenge"], "diagnosis": df["diagnosis"],
                "split": "train", "source_file": df["source_file"], "source_row": df["source_row"]})
            frames.append(attach_images(raw, image_lookup(index, dirs)))
    test = index.first(*TEST)
    if test is not None:
        df = read_table(test, DATASET, issues, required=("image",),
                        optional=("patient", "sex", "age_approx", "anatom_site_general"))
        if df is not None:
            raw = pd.DataFrame({
                "image_id": df["image"], "patient_id": df["patient"], "sex": df["sex"], "age": df["age_approx"],
                "body_site": df["anatom_site_general"], "split": "test", "source_file": df["source_file"],
                "source_row": df["source_row"]})
            frames.append(attach_images(raw, image_lookup(index, index.dirs_named("ISIC_2020_Test_Input"))))
    if not frames:
        issues.add("missing_file", DATASET, str(index.root), message=f"{DATASET}: no ISIC_2020 table found")
        return empty_catalog()
    raw = pd.concat(frames, ignore_index=True)
    return finish(raw, DATASET, issues, probe=probe, decode=decode, report_absent=bool(raw["path"].notna().any()))
