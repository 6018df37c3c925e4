"""Leakage counts against hand-counted tiny tables and against plain-pandas counts on DermaMNIST."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from skinmap.analysis.quality import leakage
from skinmap.data import dermamnist

# lesion A: train, train, val | B: train, test | C: val, test, test | D: train, val, test | E: train
# two images without lesion id (one train, one test): never leak.
TINY = pd.DataFrame({
    "image_id": [f"i{k}" for k in range(14)],
    "split": ["train", "train", "val", "train", "test", "val", "test", "test", "train", "val", "test", "train", "train", "test"],
    "lesion_id": ["A", "A", "A", "B", "B", "C", "C", "C", "D", "D", "D", "E", None, None],
    "diagnosis": ["nv"] * 14,
})


def _row(table, partitions):
    return table.set_index("partitions").loc[partitions]


def test_hand_counted_conventions():
    t = leakage.partition_leakage(TINY["split"], TINY["lesion_id"], dataset="tiny")
    assert list(t["partitions"]) == ["train|val", "train|test", "val|test", "train|val|test", "any"]
    tv = _row(t, "train|val")
    assert (tv["lesions"], tv["lesions_exclusive"], tv["images"], tv["images_exclusive"], tv["pairs"]) == (2, 1, 5, 3, 3)
    assert (tv["images_in_train"], tv["images_in_val"]) == (3, 2) and pd.isna(tv["images_in_test"])
    tt = _row(t, "train|test")
    assert (tt["lesions"], tt["lesions_exclusive"], tt["images"], tt["images_exclusive"], tt["pairs"]) == (2, 1, 4, 2, 2)
    vt = _row(t, "val|test")
    assert (vt["lesions"], vt["lesions_exclusive"], vt["images"], vt["images_exclusive"], vt["pairs"]) == (2, 1, 5, 3, 3)
    a3 = _row(t, "train|val|test")
    assert (a3["lesions"], a3["images"], a3["pairs"]) == (1, 3, 1)
    anyr = _row(t, "any")
    assert (anyr["lesions"], anyr["images"], anyr["pairs"]) == (4, 11, 8)
    assert (t["status"] == "ok").all()


def test_bad_input_defined():
    single = leakage.partition_leakage(["train"] * 3, ["a", "a", "b"])
    assert single["status"].item() == "single partition"
    no_ids = leakage.partition_leakage(["train", "test"], [None, None])
    assert no_ids["status"].item().startswith("no group ids")
    with pytest.raises(ValueError, match="differ in length"):
        leakage.partition_leakage(["train"], ["a", "b"])
    missing_split = leakage.partition_leakage(["train", "test", None], ["a", "a", "a"])
    assert "1 image(s) without partition" in missing_split["status"].iloc[0]
    assert _row(missing_split, "train|test")["lesions"] == 1


def test_leakage_table_falls_back_to_patient_ids():
    cat = pd.DataFrame({
        "dataset": ["X", "X", "Y", "Y", "Z"],
        "split": ["train", "test", "train", "test", "train"],
        "lesion_id": [None, None, "l1", "l1", "q"],
        "patient_id": ["p1", "p1", None, None, None],
    })
    t = leakage.leakage_table(cat)
    x = t[t["dataset"] == "X"].set_index("partitions")
    assert x.loc["train|test", "group_by"] == "patient_id" and x.loc["train|test", "lesions"] == 1
    assert t[t["dataset"] == "Y"].set_index("partitions").loc["train|test", "lesions"] == 1
    assert t[t["dataset"] == "Z"]["status"].item() == "single partition"


def test_corrections_hand_counted():
    a = leakage.correct_move_to_train(TINY["split"], TINY["lesion_id"])
    assert a.value_counts().to_dict() == {"train": 10, "test": 3, "val": 1}
    b = leakage.correct_multi_partition_to_train(TINY["split"], TINY["lesion_id"], TINY["image_id"])
    assert b.value_counts().to_dict() == {"train": 13, "test": 1}
    # a confirmed duplicate between E's image (train) and the unlinked test image moves the latter
    b2 = leakage.correct_multi_partition_to_train(TINY["split"], TINY["lesion_id"], TINY["image_id"],
                                                  duplicate_pairs=[("i11", "i13"), ("i0", "nonexistent")])
    assert b2.value_counts().to_dict() == {"train": 14}


def test_partition_summary_counts():
    s = leakage.partition_summary(["train", "train", "test"], ["nv", "mel", None], name="x")
    assert list(s["split"]) == ["train", "test"]
    assert s.set_index("split").loc["train", "n_images"] == 2
    assert s.set_index("split").loc["test", "unknown"] == 1


def test_cross_dataset_reuse():
    cat = pd.DataFrame({"dataset": ["A", "A", "B", "C"], "image_id": ["x", "y", "x", None],
                        "also_in": [None, "C/z", None, None]})
    by_id = leakage.cross_dataset_id_reuse(cat)
    ab = by_id.set_index(["dataset_a", "dataset_b"])
    assert ab.loc[("A", "B"), "n_shared"] == 1
    assert ab.loc[("A", "C"), "n_also_in"] == 1 and ab.loc[("A", "C"), "n_shared"] == 0
    pairs = pd.DataFrame({"i": [0, 0, 1], "j": [1, 2, 2], "similarity": [0.99, 0.97, 0.96]})
    emb = leakage.cross_dataset_embedding_reuse(pairs, ["B", "A", "A"])
    assert emb.to_dict("records") == [{"dataset_a": "A", "dataset_b": "B", "n_pairs": 2, "n_images_a": 2,
                                       "n_images_b": 1, "max_similarity": 0.99}]


@pytest.mark.realdata
def test_dermamnist_against_plain_pandas(shared_data_root):
    derma = dermamnist.load_dermamnist(shared_data_root / "dermamnist" / "dermamnist_split_info.csv",
                                   shared_data_root / "images" / "HAM10000" / "HAM10000_metadata.csv")
    assert len(derma) == 10015
    t = leakage.partition_leakage(derma["split"], derma["lesion_id"], dataset="DermaMNIST").set_index("partitions")
    # independent: image-level self-join on lesion id, counting ordered cross-partition pairs
    raw = pd.read_csv(shared_data_root / "dermamnist" / "dermamnist_split_info.csv").merge(
        pd.read_csv(shared_data_root / "images" / "HAM10000" / "HAM10000_metadata.csv"), on="image_id")
    joined = raw.merge(raw, on="lesion_id")
    per_lesion = {les: set(g) for les, g in raw.groupby("lesion_id")["split"]}
    for p, q in combinations(["train", "val", "test"], 2):
        cross = joined[(joined["split_x"] == p) & (joined["split_y"] == q)]
        assert t.loc[f"{p}|{q}", "pairs"] == len(cross)
        lesions = {l for l, s in per_lesion.items() if {p, q} <= s}
        assert t.loc[f"{p}|{q}", "lesions"] == len(lesions)
        assert t.loc[f"{p}|{q}", "lesions_exclusive"] == sum(1 for l in lesions if per_lesion[l] == {p, q})
        assert t.loc[f"{p}|{q}", "images"] == raw[raw["lesion_id"].isin(lesions) & raw["split"].isin([p, q])].shape[0]
    assert t.loc["train|val|test", "lesions"] == sum(1 for s in per_lesion.values() if len(s) == 3)
    assert t.loc["any", "lesions"] == sum(1 for s in per_lesion.values() if len(s) > 1)


@pytest.mark.realdata
def test_dermamnist_correction_b_matches_released_sizes(shared_data_root):
    """Released DermaMNIST-C sizes (medmnist_corrected/info.py of the critique's repository)."""
    derma = dermamnist.load_dermamnist(shared_data_root / "dermamnist" / "dermamnist_split_info.csv",
                                   shared_data_root / "images" / "HAM10000" / "HAM10000_metadata.csv")
    dups = dermamnist.read_duplicate_pairs(shared_data_root / "dermamnist" / "newly_discovered_duplicates.csv")
    assert len(dups) == 18 and not dups[0][0].endswith(".jpg")
    b = leakage.correct_multi_partition_to_train(derma["split"], derma["lesion_id"], derma["image_id"], duplicate_pairs=dups)
    assert b.value_counts().to_dict() == {"train": 8215, "test": 1227, "val": 573}
    a = leakage.correct_move_to_train(derma["split"], derma["lesion_id"])
    # independent: lesions with any train image
    train_lesions = set(derma.loc[derma["split"] == "train", "lesion_id"])
    assert (a == "train").sum() == derma["lesion_id"].isin(train_lesions).sum()


def test_leakage_table_columns_without_any_group_ids():
    cat = pd.DataFrame({"dataset": ["X", "X"], "split": ["train", "test"], "lesion_id": [None, None]})
    t = leakage.leakage_table(cat)
    assert {"lesions", "images", "pairs"} <= set(t.columns) and t["lesions"].isna().all()
    assert t["status"].item().startswith("no group ids")
