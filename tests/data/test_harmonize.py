"""Harmonisation rules against hand-written expectations."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from skinmap.data import harmonize as hz


@pytest.mark.parametrize(
    "raw, age, group, issue",
    [
        ("55", 55.0, "50-59", None),
        (80.0, 80.0, "80-89", None),
        ("45-50", 47.5, "40-49", "age_range"),
        ("60 to 65", 62.5, "60-69", "age_range"),
        ("40s", 44.5, "40-49", "age_range"),
        ("unknown", None, None, None),
        ("", None, None, None),
        ("-1", None, None, None),
        ("18 months", 1.5, "0-9", None),
        ("12-90", None, None, "unparsed_age"),
        ("old", None, None, "unparsed_age"),
        ("250", None, None, "unparsed_age"),
        ("93", 93.0, "90+", None),
        (None, None, None, None),
    ],
)
def test_age_rules(raw, age, group, issue):
    out = hz.normalize_age(pd.Series([raw], dtype=object)).iloc[0]
    if age is None:
        assert pd.isna(out["age"])
    else:
        assert math.isclose(out["age"], age)
    assert (pd.isna(out["age_group"]) if group is None else out["age_group"] == group)
    assert (pd.isna(out["issue"]) if issue is None else out["issue"] == issue)


def test_fst_parsing_and_groups():
    fst, bad = hz.normalize_fst(pd.Series(["3", "3.0", "FST5", "VI", "-1", "", "x7", None, 2.0], dtype=object))
    assert fst.tolist()[:4] == [3, 3, 5, 6] and fst.iloc[8] == 2
    assert fst.iloc[4:8].isna().all()
    assert bad.tolist() == [False] * 6 + [True, False, False]
    assert hz.fst_to_group(pd.Series([1, 4, 6, None], dtype="Int64")).tolist()[:3] == ["I-II", "III-IV", "V-VI"]


def test_sex_and_body_site():
    sex, bad = hz.normalize_sex(pd.Series(["MALE", "f", "unknown", "robot", None], dtype=object))
    assert sex.tolist()[:2] == ["male", "female"] and sex.iloc[2:].isna().all()
    assert bad.tolist() == [False, False, False, True, False]
    site, unknown = hz.normalize_body_site(pd.Series(["FOREARM", "anterior torso", "unknown", "elbow pit", "palms/soles"]))
    assert site.iloc[0] == "upper extremity" and site.iloc[1] == "anterior torso" and site.iloc[4] == "palms/soles"
    assert pd.isna(site.iloc[2]) and pd.isna(site.iloc[3])
    assert unknown.tolist() == [False, False, False, True, False]
    assert hz.body_region(pd.Series(["hand", "scalp", "palms/soles"], dtype="string")).tolist() == [
        "upper extremity", "head/neck", "acral"]


def test_icd_mapping_keeps_unmapped_labels_visible():
    out = hz.map_icd10(pd.Series(["MEL", "Basal_cell  carcinoma", "benign", "no such disease", None]), "HAM10000")
    assert out["icd10_code"].iloc[0] == "C43.9" and out["icd10_block"].iloc[0] == "C43-C44"
    assert out["icd10_code"].iloc[1] == "C44.91"
    assert pd.isna(out["icd10_code"].iloc[2]) and not out["unmapped"].iloc[2]  # reviewed: no single code
    assert out["unmapped"].tolist() == [False, False, False, True, False]


def test_registry_and_baselines_are_complete():
    reg = hz.registry()
    expected = {"HAM10000", "ISIC2016", "ISIC2017", "ISIC2018", "ISIC2019", "ISIC2020", "PH2", "Fitzpatrick17k",
                "PAD-UFES-20", "DDI", "Derm7pt", "SCIN", "PASSION", "MED-NODE"}
    assert expected <= set(reg["dataset"])
    for col in ("release_year", "modality", "license", "citation", "id_namespace", "loader"):
        assert reg.loc[reg["dataset"].isin(expected), col].notna().all(), col
    base = hz.demographic_baselines().set_index("category")["share"]
    assert base["III-VI"] == pytest.approx(0.841) and base["V-VI"] == pytest.approx(0.438)
    assert base["0-17"] == pytest.approx(0.312)


def test_countries_have_continents():
    assert hz.continent_of(pd.Series(["Brazil", "Madagascar", "Atlantis", None])).tolist()[:2] == [
        "South America", "Africa"]


KNOWN_LABELS = {  # every label the official formats use (from the providers' documentation)
    "HAM10000": ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"],
    "ISIC2018": ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"],
    "ISIC2019": ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"],
    "ISIC2020": ["unknown", "nevus", "melanoma", "seborrheic keratosis", "lentigo NOS", "lichenoid keratosis",
                 "solar lentigo", "cafe-au-lait macule", "atypical melanocytic proliferation"],
    "ISIC2017": ["melanoma", "seborrheic keratosis", "nevus", "not melanoma"],
    "ISIC2016": ["benign", "malignant"],
    "PH2": ["common nevus", "atypical nevus", "melanoma"],
    "PAD-UFES-20": ["BCC", "ACK", "NEV", "SEK", "SCC", "MEL"],
    "Derm7pt": ["basal cell carcinoma", "blue nevus", "clark nevus", "combined nevus", "congenital nevus",
                "dermal nevus", "dermatofibroma", "lentigo", "melanoma", "melanoma (0.76 to 1.5 mm)",
                "melanoma (in situ)", "melanoma (less than 0.76 mm)", "melanoma (more than 1.5 mm)",
                "melanoma metastasis", "melanosis", "miscellaneous", "recurrent nevus", "reed or spitz nevus",
                "seborrheic keratosis", "vascular lesion"],
    "MED-NODE": ["melanoma", "naevus"],
    "PASSION": ["Eczema", "Fungal", "Scabies", "Impetigo", "Others"],
}


@pytest.mark.parametrize("dataset", sorted(KNOWN_LABELS))
def test_every_known_label_is_in_the_icd_table(dataset):
    out = hz.map_icd10(pd.Series(KNOWN_LABELS[dataset]), dataset)
    assert not out["unmapped"].any(), list(pd.Series(KNOWN_LABELS[dataset])[out["unmapped"]])
