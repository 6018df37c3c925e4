"""The critique's own units, hand-counted and against brute force; the cleaning pipeline end to end
on a fixture in Fitzpatrick17k's published layout."""

from __future__ import annotations

import hashlib
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinmap.analysis.quality import cleaning, critique
from skinmap.data.loaders.fitzpatrick17k_table import images_for_table, read_fitzpatrick17k_table


def test_images_per_lesion_hand_counted():
    # lesions: A x3, B x1, C x1, D x5; two images without an id are two lesions of one image
    groups = ["A", "A", "A", "B", "C", None, "D", "D", "D", "D", "D", None]
    got = critique.images_per_lesion(groups)
    assert got.index.tolist() == [1, 2, 3, 4, 5]
    assert got["lesions"].tolist() == [4, 0, 1, 0, 1]
    assert got["images"].tolist() == [4, 0, 3, 0, 5] and got["images"].sum() == len(groups)
    assert got["share_of_lesions"].tolist() == pytest.approx([4 / 6, 0, 1 / 6, 0, 1 / 6])


def test_crossing_pairs_hand_counted():
    ids = ["a", "b", "c", "d", "e", "f"]
    original = ["train", "test", "val", "val", "train", "test"]
    moved = ["train", "train", "val", "val", "train", "test"]
    pairs = [("a", "b"), ("c", "d"), ("b", "c"), ("e", "f"), ("a", "zz"), ("f", "b")]
    got = critique.crossing_pairs(pairs, ids, {"original": original, "moved": moved})
    table = got.set_index(["scheme", "partitions"])["n_pairs"].to_dict()
    assert table == {
        ("original", "train|val"): 0, ("original", "train|test"): 2, ("original", "val|test"): 1,
        ("original", "same partition"): 2, ("original", "not found"): 1,
        ("moved", "train|val"): 1, ("moved", "train|test"): 2, ("moved", "val|test"): 0,
        ("moved", "same partition"): 2, ("moved", "not found"): 1,
    }
    for scheme in ("original", "moved"):
        assert got.loc[got["scheme"] == scheme, "n_pairs"].sum() == len(pairs)


def _brute_pairs(x):
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = z @ z.T
    return sorted(((float(s[a, b]), a, b) for a, b in combinations(range(len(x)), 2)), key=lambda t: (-t[0], t[1], t[2]))


def test_exact_top_pairs_and_ranks_match_brute_force(rng):
    x = rng.normal(size=(70, 6)).astype(np.float32)
    x[5] = x[3] + 0.01  # a hub: image 3 with several close partners a k-NN shortlist would cut
    x[6] = x[3] - 0.01
    x[7] = x[3] * 1.5
    brute = _brute_pairs(x)
    got = critique.exact_top_pairs(x, 40, block=16)
    assert [(int(a), int(b)) for a, b in zip(got["i"], got["j"])] == [(a, b) for _, a, b in brute[:40]]
    assert got["rank"].tolist() == list(range(1, 41))
    q = [brute[0][1:], brute[17][1:], brute[-1][1:], brute[1000][1:]]
    ranks = critique.pair_ranks(x, [a for a, _ in q], [b for _, b in q], block=16)
    assert ranks["rank"].tolist() == [1, 18, len(brute), 1001]
    assert critique.exact_top_pairs(x[:3], 10)["rank"].tolist() == [1, 2, 3]


def test_top_pair_review_hand_counted():
    top = pd.DataFrame({"rank": [1, 2, 3, 4, 5], "i": [0, 0, 2, 4, 1], "j": [1, 2, 3, 5, 5]})
    groups = ["L1", "L1", "L2", "L3", None, "L9"]
    got = critique.top_pair_review(top, groups, bin_size=2)
    assert got.index.tolist() == ["1-2", "3-4", "5-6"]
    assert got["pairs"].tolist() == [2, 2, 1]
    assert got["same_lesion"].tolist() == [1, 0, 0]  # 0-1 (L1, L1)
    assert got["different_lesion"].tolist() == [1, 1, 1]  # 0-2 (L1, L2), 2-3 (L2, L3), 1-5 (L1, L9)
    assert got["unknown"].tolist() == [0, 1, 0]  # 4-5: image 4 has no lesion id
    assert got["confirmed_per_100"].tolist() == [50.0, 0.0, 0.0]


def test_pair_conflicts_every_field_hand_counted():
    """Per pair, the critique's convention, on the table of the per-cluster test (test_duplicates).

    pairs: a-b (nv/nv, FST 2/3: differs by exactly 1), b-c (nv/missing: no diagnosis conflict; FST 3/3),
    a-c (FST 2/3), d-e (nv/mel, FST 1/1), f-g (bcc/bcc, FST 1/3: by more), h-i (missing/missing; FST NA/4).
    """
    labels = ["nv", "nv", None, "nv", "mel", "bcc", "bcc", np.nan, None, "nv"]
    fst = [2, 3, 3, 1, 1, 1, 3, np.nan, 4, 6]
    pairs = pd.DataFrame({"i": [0, 1, 0, 3, 5, 7], "j": [1, 2, 2, 4, 6, 8]})
    got = critique.pair_conflicts(pairs, labels, fst)
    assert got["diagnosis_differs"].tolist() == [False, False, False, True, False, False]
    assert got["fst_differs_at_least_1"].tolist() == [True, False, True, False, True, False]
    assert got["fst_differs_more_than_1"].tolist() == [False, False, False, False, True, False]
    assert got["fst_difference"].tolist()[:5] == [1, 0, 1, 0, 2] and np.isnan(got["fst_difference"].iloc[5])
    summary = critique.pair_conflict_summary(got)
    assert summary == {
        "pairs": 6,
        "images": 9,  # a..i once each, however many pairs they are in
        "diagnosis_differs": 1,  # d-e only: a missing diagnosis is not a class of its own
        "fst_differs_at_least_1": 3,  # a-b, a-c, f-g
        "fst_differs_more_than_1": 1,  # f-g only: exactly 1 is not "more than 1"
        "fst_known": 5,
        "conflicting": 4,  # a-b, a-c, d-e, f-g
    }
    assert all(isinstance(v, int) for v in summary.values())
    assert critique.pair_conflict_summary(got.iloc[:0]) == dict.fromkeys(summary, 0)


def test_threshold_counts_hand_counted():
    s = np.array([0.99, 0.96, 0.93, 0.91, 0.5])
    i = np.array([0, 0, 2, 5, 1])
    j = np.array([1, 2, 3, 6, 9])
    got = critique.threshold_counts(s, i, j, [0.90, 0.95])
    assert got.loc[0.90].tolist() == [4, 6] and got.loc[0.95].tolist() == [2, 3]


def test_extended_test_set_drops_the_easter_egg():
    got = critique.extended_test_set(["ISIC_0034524", " ISIC_0035068", "ISIC_0036064"])
    assert got["kept"].tolist() == [True, False, True]
    assert got["reason"].tolist() == ["", "easter egg", ""]


def _fitz_fixture(tmp_path, rng):
    """A Fitzpatrick17k-layout fixture: fitzpatrick17k.csv + finalfitz17k/<md5hash>.jpg. Planted: images
    1 and 2 are copies with one label and skin type (homogeneous cluster), 3 and 4 copies with two labels
    (conflicting cluster); the rest are distinct pictures."""
    folder = tmp_path / "fitzpatrick17k"
    (folder / "finalfitz17k").mkdir(parents=True)  # the published download's image folder
    base = [rng.integers(0, 255, (16, 16, 3)).astype(np.uint8) for _ in range(40)]
    pictures = list(base)
    pictures[2] = base[1]
    pictures[4] = base[3]
    labels = ["psoriasis", "acne", "acne", "eczema", "psoriasis"] + [["acne", "eczema", "psoriasis"][k % 3] for k in range(35)]
    rows = []
    for k, pic in enumerate(pictures):
        h = hashlib.md5(f"img{k}".encode()).hexdigest()
        size = 32 if k == 2 else 16  # the larger copy is the one kept
        Image.fromarray(pic).resize((size, size), Image.NEAREST).save(folder / "finalfitz17k" / f"{h}.jpg", quality=95)
        rows.append({"md5hash": h, "fitzpatrick_scale": 2 if k == 2 else [1, 2, 3, 4, 5, 6, -1][k % 7],
                     "fitzpatrick_centaur": -1 if k % 5 == 0 else (k % 6) + 1, "label": labels[k],
                     "nine_partition_label": "x", "three_partition_label": "non-neoplastic",
                     "qc": ["1 Diagnostic", "3 Wrongly labelled", None, None][k % 4], "url": "", "url_alphanum": ""})
    pd.DataFrame(rows).to_csv(folder / "fitzpatrick17k.csv", index=False)
    return folder


def test_fitzpatrick_table_and_cleaning_end_to_end(tmp_path, rng):
    folder = _fitz_fixture(tmp_path, rng)
    table = read_fitzpatrick17k_table(folder / "fitzpatrick17k.csv")
    assert len(table) == 40 and table["fst"].isna().sum() == 5  # -1 = unknown, every 7th row
    assert table["fst"].dropna().between(1, 6).all()
    qc = critique.qc_summary(table["qc"])
    assert qc["images"].to_dict() == {"1 Diagnostic": 10, "3 Wrongly labelled": 10, "not reviewed": 20}
    assert qc.loc["1 Diagnostic", "share_of_reviewed"] == pytest.approx(0.5)
    table["path"] = images_for_table(table, folder / "finalfitz17k")
    assert table["path"].notna().all()
    from skinmap.data.loaders import fitzpatrick17k as official  # the catalog loader finds the same images
    found = official.load(folder, probe=False)
    assert found["path"].notna().sum() == 40 and set(found["image_id"]) == set(table["image_id"])
    pics = [np.asarray(Image.open(p).convert("L").resize((16, 16)), dtype=np.float32).ravel() for p in table["path"]]
    vectors = np.stack(pics) - np.mean(pics, axis=0)
    sizes = [Image.open(p).size for p in table["path"]]
    meta = table.assign(uid="Fitzpatrick17k/" + table["image_id"], dataset="Fitzpatrick17k",
                        width=[w for w, _ in sizes], height=[h for _, h in sizes], split=pd.NA)
    cleaned, pairs = cleaning.clean_dataset(meta, vectors, threshold=0.95, offtopic_z=50.0, group_col=None)
    uid = meta["uid"].tolist()
    assert {tuple(sorted(p)) for p in zip(pairs["image_a"], pairs["image_b"])} == {
        tuple(sorted((uid[1], uid[2]))), tuple(sorted((uid[3], uid[4])))}
    action = cleaned.set_index("uid")["clean_action"]
    assert action[uid[2]] == "keep_cluster_representative" and action[uid[1]] == "drop_duplicate"
    assert action[uid[3]] == action[uid[4]] == "drop_conflicting_cluster"
    assert (action.drop([uid[k] for k in (1, 2, 3, 4)]) == "keep").all()
    kept = cleaned[cleaned["keep"]]
    assert len(kept) == 37 and kept["split_clean"].notna().all() and cleaned.loc[~cleaned["keep"], "split_clean"].isna().all()
    assert kept["split_clean"].value_counts().to_dict().keys() <= {"train", "val", "test"}
    rows = cleaning.cleaned_rows(cleaned)
    sheet = cleaning.datasheet(rows, {"threshold": 0.95}, {"skinmap": "test"})
    assert sheet["datasets"]["Fitzpatrick17k"]["kept"] == 37 and sheet["datasets"]["Fitzpatrick17k"]["dropped"] == 3
    assert sheet["datasets"]["Fitzpatrick17k"]["by_action"] == {"drop_conflicting_cluster": 2, "drop_duplicate": 1,
                                                                "keep": 36, "keep_cluster_representative": 1}
    assert sum(sheet["datasets"]["Fitzpatrick17k"]["split_clean"].values()) == 37
    assert rows.loc[rows["uid"] == uid[1], "reason"].item() == cleaning.REASONS["drop_duplicate"]


def test_fitzpatrick_table_rejects_a_table_without_labels(tmp_path):
    path = tmp_path / "fitzpatrick17k.csv"
    pd.DataFrame({"md5hash": ["a"], "fitzpatrick_scale": [1]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="label"):
        read_fitzpatrick17k_table(path)
