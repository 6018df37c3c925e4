"""Loaders on the real mini-atlas (read in place): counts checked against its README."""

from __future__ import annotations

import pandas as pd
import pytest

from skinmap.data.catalog import build_catalog
from skinmap.data.issues import IssueLog
from skinmap.data.loaders import official_loader
from skinmap.data.loaders.base import FileIndex
from skinmap.data.schema import validate_catalog

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def index(shared_data_root):
    return FileIndex(shared_data_root)


def _load(index, name, probe=False):
    issues = IssueLog()
    df = official_loader(name).load(index.root, issues, index, probe=probe)
    validate_catalog(df)
    return df, issues


def test_ham10000(index):
    df, issues = _load(index, "HAM10000")
    assert len(df) == 10_015 and df["path"].notna().sum() == 5_984
    assert df["lesion_id"].nunique() == 7_470
    present = df.loc[df["path"].notna(), "diagnosis"].value_counts().to_dict()
    assert present == {"nv": 4323, "bkl": 583, "mel": 491, "bcc": 264, "akiec": 183, "vasc": 80, "df": 60}
    assert (issues.to_frame()["kind"] == "image_absent").sum() == 10_015 - 5_984
    assert df["icd10_code"].notna().all() and set(df["modality"]) == {"dermoscopy"}
    assert df.loc[df["source_row"] == 1, "image_id"].item() == "ISIC_0027419"


def test_isic2018_task3_test(index):
    df, _ = _load(index, "ISIC2018")
    assert len(df) == 1_512 and df["path"].notna().all() and set(df["split"]) == {"test"}
    assert df["diagnosis"].value_counts().to_dict() == {"NV": 909, "BKL": 217, "MEL": 171, "BCC": 93, "DF": 44,
                                                        "AKIEC": 43, "VASC": 35}
    assert df[["age", "sex", "body_site"]].isna().all().all()


def test_isic2017(index):
    df, _ = _load(index, "ISIC2017")
    assert df["split"].value_counts().to_dict() == {"train": 2000, "test": 600, "validation": 150}
    assert df["path"].notna().all()
    labels = df.groupby("split")["diagnosis"].apply(lambda s: (s == "melanoma").sum()).to_dict()
    assert labels == {"test": 0, "train": 374, "validation": 30}
    assert df.loc[df["split"] == "test", ["diagnosis", "age", "sex"]].isna().all().all()


def test_ph2_double_bar_crlf(index):
    df, _ = _load(index, "PH2", probe=True)
    assert len(df) == 200 and df["path"].notna().all()
    assert df["diagnosis"].value_counts().to_dict() == {"common nevus": 80, "atypical nevus": 80, "melanoma": 40}
    # re-encoded to max side 256 (README); heights 186-193 as read directly from the files
    assert (df["width"] == 256).all() and df["height"].between(186, 193).all()


def test_fitzpatrick17k(index):
    df, _ = _load(index, "Fitzpatrick17k")
    assert len(df) == 16_577 and df["path"].isna().all()
    fst = df["fst"].value_counts(dropna=False).to_dict()
    assert {k: fst[k] for k in range(1, 7)} == {1: 2947, 2: 4808, 3: 3308, 4: 2781, 5: 1533, 6: 635}
    assert df["fst"].isna().sum() == 565
    assert df["diagnosis"].nunique() == 114 and df["icd10_code"].notna().all()


def test_pad_ufes_20(index):
    df, _ = _load(index, "PAD-UFES-20")
    assert len(df) == 2_298 and df["patient_id"].nunique() == 1_373 and df["lesion_id"].nunique() == 1_641
    assert df["diagnosis"].value_counts().to_dict() == {"BCC": 845, "ACK": 730, "NEV": 244, "SEK": 235, "SCC": 192,
                                                        "MEL": 52}
    assert set(df["origin_country"]) == {"Brazil"} and df["body_site"].notna().all()


def test_isic2019_and_2020_tables(index):
    d19, _ = _load(index, "ISIC2019")
    assert len(d19) == 25_331 and d19["path"].isna().all()
    assert d19["diagnosis"].value_counts()["MEL"] == 4_522
    assert not d19["image_id"].str.endswith("_downsampled").any()
    d20, _ = _load(index, "ISIC2020")
    assert len(d20) == 33_126 and d20["patient_id"].nunique() == 2_056
    assert (d20["diagnosis"] == "melanoma").sum() == 584


def test_dedup_ham_in_isic2019(shared_data_root):
    ham = pd.read_csv(shared_data_root / "images/HAM10000/HAM10000_metadata.csv")
    gt19 = pd.read_csv(shared_data_root / "metadata/ISIC_2019_Training_GroundTruth.csv")
    shared = set(ham["image_id"]) & set(gt19["image"].str.replace("_downsampled", "", regex=False))
    cat, report = build_catalog(shared_data_root, ["HAM10000", "ISIC2019"], probe_images=False)
    assert report.rows_loaded == len(ham) + len(gt19)
    assert report.duplicates_removed == len(shared) == report.rows_loaded - len(cat)
    also = cat.loc[cat["dataset"] == "HAM10000", "also_in"].dropna()
    assert len(also) == len(shared) and also.str.startswith("ISIC2019/").all()
    assert (cat["dataset"] == "ISIC2019").sum() == len(gt19) - len(shared)
