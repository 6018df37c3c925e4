"""Harmonisation rules against hand-written expectations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from skinmap.data import harmonize as hz
from skinmap.data import icd10, registry
from skinmap.data.issues import IssueLog
from skinmap.data.schema import FST_GROUPS, fst_group


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
    assert fst_group(pd.Series([1, 4, 6, None], dtype="Int64")).tolist()[:3] == ["I-II", "III-IV", "V-VI"]


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
    out = icd10.map_icd10(pd.Series(["MEL", "Basal_cell  carcinoma", "benign", "no such disease", None]), "HAM10000")
    assert out["icd10_code"].iloc[0] == "C43.9" and out["icd10_block"].iloc[0] == "C43-C44"
    assert out["icd10_code"].iloc[1] == "C44.91"
    assert pd.isna(out["icd10_code"].iloc[2]) and not out["unmapped"].iloc[2]  # reviewed: no single code
    assert out["unmapped"].tolist() == [False, False, False, True, False]


def test_registry_and_baselines_are_complete():
    reg = registry.registry()
    expected = {"HAM10000", "ISIC2016", "ISIC2017", "ISIC2018", "ISIC2019", "ISIC2020", "PH2", "Fitzpatrick17k",
                "PAD-UFES-20", "DDI", "Derm7pt", "SCIN", "PASSION", "MED-NODE"}
    assert expected <= set(reg["dataset"])
    for col in ("release_year", "modality", "license", "citation", "id_namespace", "loader"):
        assert reg.loc[reg["dataset"].isin(expected), col].notna().all(), col
    base = registry.demographic_baselines().set_index("category")["share"]
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
    out = icd10.map_icd10(pd.Series(KNOWN_LABELS[dataset]), dataset)
    assert not out["unmapped"].any(), list(pd.Series(KNOWN_LABELS[dataset])[out["unmapped"]])


# ---------------------------------------------------------------- Fitzpatrick types, every spelling
# Written out by hand, type by type (not generated from the harmoniser's own tables): a Roman numeral
# mapped to the wrong type, or a type put in the wrong group, fails here.
FST_SPELLINGS = {
    1: ["1", "1.0", "1.00", 1, 1.0, np.int64(1), "I", "i", " I ", "FST1", "fst 1", "FST_1", "FST I", "fst i",
        "Type 1", "type I", "TYPE i", "type_1", "Fitzpatrick 1", "fitzpatrick I", "FITZPATRICK_I"],
    2: ["2", "2.0", "2.00", 2, 2.0, np.int64(2), "II", "ii", " II ", "FST2", "fst 2", "FST_2", "FST II", "fst ii",
        "Type 2", "type II", "TYPE ii", "type_2", "Fitzpatrick 2", "fitzpatrick II", "FITZPATRICK_II"],
    3: ["3", "3.0", "3.00", 3, 3.0, np.int64(3), "III", "iii", " III ", "FST3", "fst 3", "FST_3", "FST III",
        "fst iii", "Type 3", "type III", "TYPE iii", "type_3", "Fitzpatrick 3", "fitzpatrick III", "FITZPATRICK_III"],
    4: ["4", "4.0", "4.00", 4, 4.0, np.int64(4), "IV", "iv", " IV ", "FST4", "fst 4", "FST_4", "FST IV", "fst iv",
        "Type 4", "type IV", "TYPE iv", "type_4", "Fitzpatrick 4", "fitzpatrick IV", "FITZPATRICK_IV"],
    5: ["5", "5.0", "5.00", 5, 5.0, np.int64(5), "V", "v", " V ", "FST5", "fst 5", "FST_5", "FST V", "fst v",
        "Type 5", "type V", "TYPE v", "type_5", "Fitzpatrick 5", "fitzpatrick V", "FITZPATRICK_V"],
    6: ["6", "6.0", "6.00", 6, 6.0, np.int64(6), "VI", "vi", " VI ", "FST6", "fst 6", "FST_6", "FST VI", "fst vi",
        "Type 6", "type VI", "TYPE vi", "type_6", "Fitzpatrick 6", "fitzpatrick VI", "FITZPATRICK_VI"],
}
FST_GROUP_OF = {1: "I-II", 2: "I-II", 3: "III-IV", 4: "III-IV", 5: "V-VI", 6: "V-VI"}
FST_CASES = [(raw, t) for t, spellings in FST_SPELLINGS.items() for raw in spellings]


@pytest.mark.parametrize("raw, expected", FST_CASES, ids=[f"{t}:{raw!r}" for raw, t in FST_CASES])
def test_every_accepted_fst_spelling_maps_to_its_type_and_group(raw, expected):
    fst, bad = hz.normalize_fst(pd.Series([raw], dtype=object))
    assert fst.iloc[0] == expected and not bad.iloc[0]
    assert fst_group(fst).iloc[0] == FST_GROUP_OF[expected]


def test_fst_spellings_end_to_end_through_the_harmoniser():
    raws = [raw for raw, _ in FST_CASES]
    raw = pd.DataFrame({"image_id": [f"x{i}" for i in range(len(raws))], "fst": pd.Series(raws, dtype=object),
                        "source_file": "t.csv", "source_row": range(1, len(raws) + 1)})
    issues = IssueLog()
    out = hz.harmonize_frame(raw, "D", {"release_year": 2020, "modality": "clinical"}, issues)
    assert out["fst"].tolist() == [t for _, t in FST_CASES]
    assert out["fst_group"].tolist() == [FST_GROUP_OF[t] for _, t in FST_CASES]
    assert len(issues) == 0


@pytest.mark.parametrize("raw", ["0", 0, "-1", -1, "unknown", "", None, float("nan"), "none identified"])
def test_fst_missing_tokens_are_na_without_a_flag(raw):
    fst, bad = hz.normalize_fst(pd.Series([raw], dtype=object))
    assert pd.isna(fst.iloc[0]) and not bad.iloc[0]


@pytest.mark.parametrize("raw", ["7", 7, "VII", "IIII", "IIV", "type 7", "FST0", "6.5", "x7", "fst-i", "type",
                                 "Fitzpatrick type 3", "light"])
def test_fst_values_that_are_no_type_are_flagged(raw):
    fst, bad = hz.normalize_fst(pd.Series([raw], dtype=object))
    assert pd.isna(fst.iloc[0]) and bad.iloc[0]


def test_fst_groups_by_hand():
    assert FST_GROUPS == ("I-II", "III-IV", "V-VI")
    got = fst_group(pd.Series([6, 5, 4, 3, 2, 1, None], dtype="Int64"))
    assert got.tolist()[:6] == ["V-VI", "V-VI", "III-IV", "III-IV", "I-II", "I-II"] and pd.isna(got.iloc[6])
    assert fst_group([3.0, "4", np.nan]).tolist()[:2] == ["III-IV", "III-IV"]
    for bad in ([7], [0], [2.5], ["x"]):
        with pytest.raises(ValueError, match="FST must be 1-6 or missing.*outside 1-6"):
            fst_group(bad)


@pytest.mark.parametrize("raw, group", [("I-II", "I-II"), ("iii-iv", "III-IV"), (" V - VI ", "V-VI"),
                                        ("v-vi", "V-VI"), ("unknown", None), (None, None)])
def test_source_fst_groups_are_spelled_like_the_catalog(raw, group):
    out, bad = hz.normalize_fst_group(pd.Series([raw], dtype=object))
    assert (pd.isna(out.iloc[0]) if group is None else out.iloc[0] == group) and not bad.iloc[0]


def test_unknown_source_fst_group_is_flagged_and_a_known_type_wins():
    raw = pd.DataFrame({"image_id": ["a", "b", "c"], "fst": ["5", None, None], "fst_group": ["I-II", "3-4", "V-VI"],
                        "source_file": "t.csv", "source_row": [1, 2, 3]})
    issues = IssueLog()
    out = hz.harmonize_frame(raw, "D", {"release_year": 2020}, issues)
    assert out["fst_group"].tolist()[0] == "V-VI" and pd.isna(out["fst_group"].iloc[1])
    assert out["fst_group"].iloc[2] == "V-VI"
    (record,) = issues.records
    assert record["kind"] == "unparsed_fst" and record["row"] == 2 and record["value"] == "3-4"


def test_row_modality_outside_the_vocabulary_names_dataset_file_and_row():
    raw = pd.DataFrame({"image_id": ["a", "b", "c"], "modality": ["Dermoscopy", "tbp", "photo"],
                        "source_file": "/x/meta.csv", "source_row": [1, 2, 3]})
    with pytest.raises(ValueError, match=r"D: modality 'photo' in /x/meta.csv row 3 is not one of"):
        hz.harmonize_frame(raw, "D", {"release_year": 2020}, IssueLog())
    out = hz.harmonize_frame(raw.iloc[:2], "D", {"release_year": 2020}, IssueLog())
    assert out["modality"].tolist() == ["dermoscopy", "TBP"]
