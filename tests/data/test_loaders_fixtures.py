"""Loaders on tiny fixtures written in the providers' published layouts (formats not in the
mini-atlas): expectations are written by hand from the fixture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinmap.data.catalog import build_catalog
from skinmap.data.issues import IssueLog
from skinmap.data.loaders import official_loader
from skinmap.data.schema import validate_catalog


def _img(path: Path, size=(40, 30), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(path, format=fmt)


def _load(name, root):
    issues = IssueLog()
    df = official_loader(name).load(root, issues)
    validate_catalog(df)
    return df.set_index("image_id"), issues.to_frame()


def test_ddi(tmp_path):
    d = tmp_path / "ddidiversedermatologyimages"
    d.mkdir()
    pd.DataFrame({"DDI_ID": [1, 2, 3], "DDI_file": ["000001.png", "000002.png", "000003.png"],
                  "skin_tone": [12, 56, 77], "malignant": [True, False, False],
                  "disease": ["melanoma-in-situ", "verruca-vulgaris", "seborrheic-keratosis-irritated"]}
                 ).to_csv(d / "ddi_metadata.csv")  # the provider's file has the pandas index column
    _img(d / "000001.png"), _img(d / "000002.png")
    df, issues = _load("DDI", tmp_path)
    assert list(df.index) == ["000001", "000002", "000003"]
    assert df["fst_group"].tolist()[:2] == ["I-II", "V-VI"] and df["fst"].isna().all()
    assert df.loc["000001", "icd10_code"] == "D03.9" and df.loc["000002", "icd10_code"] == "B07"
    assert pd.isna(df.loc["000003", "path"]) and df.loc["000001", "width"] == 40
    assert set(issues["kind"]) == {"unparsed_fst", "image_absent"}


def test_derm7pt_two_modalities_per_case(tmp_path):
    meta = tmp_path / "release_v0" / "meta"
    meta.mkdir(parents=True)
    pd.DataFrame({"case_num": [1, 2], "diagnosis": ["basal cell carcinoma", "melanoma (in situ)"],
                  "seven_point_score": [0, 3], "pigment_network": ["absent", "typical"], "location": ["head neck", "back"],
                  "sex": ["female", "male"], "management": ["excision", "excision"],
                  "clinic": ["NEL/NEL025.JPG", "Fgl/Fgl001.jpg"], "derm": ["NEL/Nel026.jpg", "Fgl/Fgl002.jpg"]}
                 ).to_csv(meta / "meta.csv", index=False)
    pd.DataFrame({"indexes": [0]}).to_csv(meta / "train_indexes.csv", index=False)
    pd.DataFrame({"indexes": [1]}).to_csv(meta / "test_indexes.csv", index=False)
    for rel in ("NEL/NEL025.JPG", "NEL/Nel026.jpg", "Fgl/Fgl001.jpg"):
        _img(tmp_path / "release_v0" / "images" / rel)
    df, _ = _load("Derm7pt", tmp_path)
    assert len(df) == 4
    assert df.loc["1_clinic", "modality"] == "clinical" and df.loc["1_derm", "modality"] == "dermoscopy"
    assert df.loc["1_derm", "lesion_id"] == df.loc["1_clinic", "lesion_id"] == "1"
    assert df.loc["1_clinic", "split"] == "train" and df.loc["2_derm", "split"] == "test"
    assert df.loc["1_clinic", "body_site"] == "head/neck" and df.loc["2_clinic", "icd10_code"] == "D03.9"
    assert pd.isna(df.loc["2_derm", "path"]) and df["path"].notna().sum() == 3


def test_scin_cases_and_labels(tmp_path):
    root = tmp_path / "dataset"
    cases = pd.DataFrame({
        "case_id": ["-100", "-200"], "source": ["USER_CAPTURE"] * 2, "age_group": ["AGE_18_TO_29", "AGE_UNKNOWN"],
        "sex_at_birth": ["FEMALE", "OTHER_OR_UNSPECIFIED"], "fitzpatrick_skin_type": ["FST4", "NONE_IDENTIFIED"],
        "body_parts_arm": ["YES", "YES"], "body_parts_leg": [None, "YES"],
        "image_1_path": ["dataset/images/-11.png", "dataset/images/-21.png"],
        "image_2_path": ["dataset/images/-12.png", None], "image_3_path": [None, None]})
    labels = pd.DataFrame({
        "case_id": ["-100", "-200"],
        "dermatologist_skin_condition_on_label_name": ["['Eczema', 'Insect Bite']", "[]"],
        "weighted_skin_condition_label": ["{'Insect Bite': 0.6, 'Eczema': 0.4}", "{}"],
        "dermatologist_fitzpatrick_skin_type_label_1": ["FST3", "FST2"]})
    root.mkdir()
    cases.to_csv(root / "scin_cases.csv", index=False)
    labels.to_csv(root / "scin_labels.csv", index=False)
    _img(root / "images" / "-11.png")
    df, _ = _load("SCIN", tmp_path)
    assert sorted(df.index) == ["-11", "-12", "-21"]
    assert df.loc["-11", "diagnosis"] == "Insect Bite" and df.loc["-11", "patient_id"] == "-100"
    assert df.loc["-11", "age"] == 23.5 and df.loc["-11", "age_group"] == "20-29" and pd.isna(df.loc["-21", "age"])
    assert df.loc["-11", "fst"] == 4 and df.loc["-21", "fst"] == 2  # self-report first, else dermatologist
    assert df.loc["-11", "sex"] == "female" and pd.isna(df.loc["-21", "sex"])
    assert df.loc["-11", "body_site"] == "upper extremity" and pd.isna(df.loc["-21", "body_site"])
    assert df.loc["-11", "origin_country"] == "United States" and df["path"].notna().sum() == 1


def test_passion_one_row_per_image(tmp_path):
    root = tmp_path / "PASSION_collection_2020_2023"
    root.mkdir()
    pd.DataFrame({"subject_id": ["AA01", "BB02"], "country": ["Malawi", "Guinea"], "age": [4, 11],
                  "sex": ["m", "f"], "fitzpatrick": [5, 6], "body_loc": ["trunk", "face"], "impetig": [0, 1],
                  "conditions_PASSION": ["Scabies", "Eczema"]}).to_csv(root / "label.csv", index=False)
    pd.DataFrame({"subject_id": ["AA01", "BB02"], "Split": ["TRAIN", "TEST"]}).to_csv(root / "PASSION_split.csv", index=False)
    _img(root / "AA01_0.jpg"), _img(root / "AA01_1.jpg")
    df, _ = _load("PASSION", tmp_path)
    assert sorted(df.index) == ["AA01_0", "AA01_1", "BB02"]
    assert pd.isna(df.loc["BB02", "path"]) and df.loc["AA01_1", "patient_id"] == "AA01"
    assert df.loc["AA01_0", "origin_country"] == "Malawi" and df.loc["AA01_0", "origin_continent"] == "Africa"
    assert df.loc["AA01_0", "split"] == "train" and df.loc["BB02", "fst"] == 6 and df.loc["AA01_0", "age_group"] == "0-9"
    assert df.loc["AA01_0", "icd10_code"] == "B86"


def test_med_node_folders(tmp_path):
    base = tmp_path / "complete_mednode_dataset"
    _img(base / "melanoma" / "1030.jpg"), _img(base / "naevus" / "2000.jpg"), _img(base / "naevus" / "2001.jpg")
    df, _ = _load("MED-NODE", tmp_path)
    assert df["diagnosis"].value_counts().to_dict() == {"naevus": 2, "melanoma": 1}
    assert df.loc["melanoma_1030", "icd10_code"] == "C43.9" and df["origin_country"].eq("Netherlands").all()


def test_isic2016_headerless_tables(tmp_path):
    (tmp_path / "ISBI2016_ISIC_Part3_Training_GroundTruth.csv").write_text("ISIC_0000000,benign\nISIC_0000002,malignant\n")
    (tmp_path / "ISBI2016_ISIC_Part3_Test_GroundTruth.csv").write_text("ISIC_0000003,0.0\r\nISIC_0000004,1.0\r\n")
    _img(tmp_path / "ISBI2016_ISIC_Part3_Training_Data" / "ISIC_0000000.jpg")
    df, _ = _load("ISIC2016", tmp_path)
    assert df["diagnosis"].to_dict() == {"ISIC_0000000": "benign", "ISIC_0000002": "malignant",
                                         "ISIC_0000003": "benign", "ISIC_0000004": "malignant"}
    assert df["split"].tolist() == ["train", "train", "test", "test"] and df["icd10_code"].isna().all()


def test_isic2016_2017_rerelease_dedup(tmp_path):
    (tmp_path / "ISBI2016_ISIC_Part3_Training_GroundTruth.csv").write_text("ISIC_0000000,benign\nISIC_0000001,malignant\n")
    pd.DataFrame({"image_id": ["ISIC_0000001", "ISIC_0000009"], "melanoma": [1.0, 0.0],
                  "seborrheic_keratosis": [0.0, 1.0]}).to_csv(tmp_path / "ISIC-2017_Training_Part3_GroundTruth.csv", index=False)
    pd.DataFrame({"image_id": ["ISIC_0000001", "ISIC_0000009"], "age_approximate": ["55", "unknown"],
                  "sex": ["male", "female"]}).to_csv(tmp_path / "ISIC-2017_Training_Data_metadata.csv", index=False)
    _img(tmp_path / "ISIC-2017_Training_Data" / "ISIC_0000001.jpg")
    _img(tmp_path / "ISIC-2017_Training_Data" / "ISIC_0000001_superpixels.png")
    cat, report = build_catalog(tmp_path)
    assert report.rows_loaded == 4 and len(cat) == 3
    row = cat.set_index("uid").loc["ISIC2017/ISIC_0000001"]  # has pixels: canonical
    assert row["also_in"] == "ISIC2016/ISIC_0000001" and row["release_year"] == 2016
    assert row["diagnosis"] == "melanoma" and row["age"] == 55
    assert cat.set_index("uid").loc["ISIC2017/ISIC_0000009", "diagnosis"] == "seborrheic keratosis"


def test_isic2020_test_and_pad_official_layout(tmp_path):
    pd.DataFrame({"image": ["ISIC_0052060"], "patient": ["IP_3579794"], "sex": ["male"], "age_approx": [70.0],
                  "anatom_site_general": [None]}).to_csv(tmp_path / "ISIC_2020_Test_Metadata.csv", index=False)
    _img(tmp_path / "ISIC_2020_Test_Input" / "ISIC_0052060.jpg")
    pad = tmp_path / "pad"
    pad.mkdir()
    pd.DataFrame({"patient_id": ["PAT_1"], "lesion_id": [7], "age": [8], "gender": [None], "fitspatrick": [None],
                  "region": ["ARM"], "diagnostic": ["NEV"], "img_id": ["PAT_1_7_1.png"], "biopsed": [False]}
                 ).to_csv(pad / "metadata.csv", index=False)
    _img(pad / "images" / "imgs_part_1" / "PAT_1_7_1.png")
    cat, report = build_catalog(tmp_path)
    assert set(report.datasets_found) == {"ISIC2020", "PAD-UFES-20"}
    c = cat.set_index("uid")
    assert c.loc["ISIC2020/ISIC_0052060", "split"] == "test" and c.loc["ISIC2020/ISIC_0052060", "patient_id"] == "IP_3579794"
    assert c.loc["PAD-UFES-20/PAT_1_7_1", "path"].endswith("PAT_1_7_1.png")
    assert c.loc["PAD-UFES-20/PAT_1_7_1", "body_site"] == "upper extremity"


def test_ph2_official_layout(tmp_path):
    text = ("||   Name || Histological Diagnosis || Clinical Diagnosis || Asymmetry | Pigment Network ||  Colors ||\r\n"
            "|| IMD003 ||                        ||                  0 ||         0 |               T ||      4 ||\r\n"
            "|| IMD419 ||               Melanoma ||                  2 ||         2 |              AT ||    3 4 ||\r\n"
            "\r\nLegends for Clinical Diagnosis: \r\n   0 - Common Nevus;\r\n   1 - Atypical Nevus;\r\n   2 - Melanoma.\r\n")
    base = tmp_path / "PH2Dataset"
    base.mkdir()
    (base / "PH2_dataset.txt").write_bytes(text.encode())
    _img(base / "PH2 Dataset images" / "IMD003" / "IMD003_Dermoscopic_Image" / "IMD003.bmp", fmt="BMP")
    _img(base / "PH2 Dataset images" / "IMD003" / "IMD003_lesion" / "IMD003_lesion.bmp", fmt="BMP")
    df, _ = _load("PH2", tmp_path)
    assert df["diagnosis"].to_dict() == {"IMD003": "common nevus", "IMD419": "melanoma"}
    assert df.loc["IMD003", "path"].endswith("IMD003_Dermoscopic_Image/IMD003.bmp") and pd.isna(df.loc["IMD419", "path"])
    assert df.loc["IMD419", "source_row"] == 2


@pytest.mark.parametrize("name", ["HAM10000", "ISIC2019", "DDI", "SCIN"])
def test_missing_root_files_are_reported_not_raised(tmp_path, name):
    issues = IssueLog()
    df = official_loader(name).load(tmp_path, issues)
    assert len(df) == 0 and issues.to_frame()["kind"].tolist() == ["missing_file"]
