"""Near-duplicate pairs, clusters, conflicts, evaluation and review against brute force and hand counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skinmap.analysis.quality import duplicates, evaluation, review


def _planted(rng, n=80, d=24, copies=((0, 1), (0, 2), (3, 4), (10, 11))):
    x = rng.normal(size=(n, d)).astype(np.float32)
    for src, dst in copies:
        x[dst] = x[src] + rng.normal(scale=0.02, size=d)
    return x


def test_pairs_match_brute_force(rng):
    x = _planted(rng)
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = z @ z.T
    for tau in (0.9, 0.5, 0.3):
        got = duplicates.near_duplicate_pairs(x, tau, n_neighbors=79)
        iu, ju = np.triu_indices(len(x), 1)
        want = {(int(a), int(b)) for a, b in zip(iu, ju) if sims[a, b] >= tau}
        assert set(zip(got["i"], got["j"])) == want
        assert (np.diff(got["similarity"].to_numpy()) <= 1e-7).all()
        assert got.attrs["saturated"] == 0


def test_exact_duplicates_kept_and_saturation_reported():
    x = np.repeat(np.eye(3, 8, dtype=np.float32), 4, axis=0)  # 3 groups of 4 identical rows
    got = duplicates.near_duplicate_pairs(x, 0.99, n_neighbors=2)
    assert got.attrs["saturated"] == 12  # every row has 3 identical partners but k=2
    full = duplicates.near_duplicate_pairs(x, 0.99, n_neighbors=5)
    assert len(full) == 3 * 6 and full.attrs["saturated"] == 0
    assert np.allclose(full["similarity"], 1.0)
    assert len(duplicates.near_duplicate_pairs(x[:1], 0.9)) == 0
    with pytest.raises(ValueError):
        duplicates.near_duplicate_pairs(x, 1.5)


def test_clusters_are_connected_components():
    labels = duplicates.duplicate_clusters(7, [5, 0, 1], [6, 1, 2])
    # {0,1,2}, {5,6} are clusters; 3, 4 singletons; multi-image clusters numbered first
    assert labels[0] == labels[1] == labels[2] == 0
    assert labels[5] == labels[6] == 1
    assert len({labels[3], labels[4], 0, 1}) == 4


def test_cluster_conflicts_hand_made():
    meta = pd.DataFrame({
        "uid": list("abcdefghij"),
        "dataset": ["D1"] * 8 + ["D2", "D1"],
        "diagnosis": ["nv", "nv", "nv", "mel", "nv", "nv", "nv", "nv", "bcc", "bcc"],
        "fst": pd.array([2, 2, 2, 2, 3, 4, 1, pd.NA, 5, 5], dtype="Int64"),
    })
    # clusters: {a,b} homogeneous; {c,d} diagnosis; {e,f} fst by 1; {g,e2?}: {g,h} FST 1 vs NA -> homogeneous
    # {i,j} spans datasets, homogeneous; add {a,?}...
    clusters = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    info = duplicates.cluster_table(clusters, meta).set_index("cluster")
    assert info.loc[0, "conflict"] == "homogeneous"
    assert info.loc[1, "conflict"] == "diagnosis" and info.loc[1, "fst_conflict"] == "none"
    assert info.loc[2, "conflict"] == "fst_by_1"
    assert info.loc[3, "conflict"] == "homogeneous"  # missing FST is no evidence of conflict
    assert info.loc[4, "spans_datasets"] and info.loc[4, "conflict"] == "homogeneous"
    by_more = duplicates.cluster_table(np.array([0, 0, 0]), pd.DataFrame(
        {"uid": list("xyz"), "dataset": ["D"] * 3, "diagnosis": ["a", "b", "a"], "fst": [1, 3, 2]}))
    assert by_more["conflict"].item() == "diagnosis+fst_by_more"
    assert by_more["fst_spread"].item() == 2
    summary = duplicates.duplicate_summary(pd.DataFrame({"i": [0]}), duplicates.cluster_table(clusters, meta))
    assert (summary["clusters"], summary["homogeneous"], summary["diagnosis_conflict"], summary["fst_differs_by_1"],
            summary["spanning_datasets"]) == (5, 3, 1, 1, 1)


def test_precision_recall_hand_counted():
    truth = [("a", "b"), ("b", "c"), ("x", "y")]
    pred = [("a", "b"), ("c", "a"), ("x", "z"), ("b", "a")]
    r = evaluation.pair_precision_recall(pred, truth)
    # {a,b} and {a,c} are true (a,c linked through b); {x,z} false. recall: {a,b} found of 3
    assert r["n_predicted"] == 3 and r["true_positives"] == 2
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == pytest.approx(1 / 3)
    assert np.isnan(evaluation.pair_precision_recall([], truth)["precision"])
    assert evaluation.pair_precision_recall(pred, truth, universe={"a", "b", "c"})["n_truth"] == 2
    assert evaluation.planted_pair_mask(pred, truth).tolist() == [True, True, False, True]
    by_t = evaluation.recall_by_transform(pred, pd.DataFrame({"a": ["a", "x"], "b": ["b", "y"], "transform": ["crop", "flip"]}))
    assert by_t.set_index("transform")["recall"].to_dict() == {"crop": 1.0, "flip": 0.0}


def test_review_round_trip(tmp_path):
    pairs = pd.DataFrame({"image_a": ["a", "c", "e"], "image_b": ["b", "d", "f"], "similarity": [0.97, 0.99, 0.93]})
    template = review.review_template(pairs)
    assert list(template["image_a"]) == ["c", "a", "e"] and (template["decision"] == "").all()
    template.loc[template["image_a"] == "c", "decision"] = "different"
    template.loc[template["image_a"] == "a", "decision"] = "unclear"
    filled = pd.concat([template, pd.DataFrame([{"image_a": "h", "image_b": "g", "similarity": None,
                                                 "decision": " Duplicate", "note": ""}])])
    path = tmp_path / "review.csv"
    filled.to_csv(path, index=False)
    decisions = review.read_review(path)
    assert len(decisions) == 3  # the blank decision on e-f is dropped
    out = review.apply_review(pairs, decisions)
    keys = {tuple(sorted(p)) for p in zip(out["image_a"], out["image_b"])}
    assert keys == {("a", "b"), ("e", "f"), ("g", "h")}
    assert out.set_index("image_a").loc["a", "review"] == "unclear"
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"image_a": ["a"], "image_b": ["b"], "decision": ["maybe"]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="unknown decision"):
        review.read_review(bad)


def test_find_duplicates_rejects_unknown_images():
    meta = pd.DataFrame({"uid": ["a", "b", "c"], "dataset": ["D"] * 3, "diagnosis": ["x", "x", "y"], "fst": [1, 1, 1]})
    pairs = pd.DataFrame({"image_a": ["a", "b"], "image_b": ["b", "c"], "similarity": [0.99, 0.95]})
    near, clusters, info = duplicates.find_duplicates(pairs, meta)
    assert (clusters == clusters[0]).all() and info["conflict"].item() == "diagnosis"
    assert set(near["conflict"]) == {"diagnosis"}
    with pytest.raises(ValueError, match="not in the table"):
        duplicates.find_duplicates(pd.DataFrame({"image_a": ["a"], "image_b": ["zz"], "similarity": [1.0]}), meta)


def test_mutual_top_keeps_copies_drops_crowd(rng):
    # a crowd of 30 similar points plus one planted pair of copies and a triple of identical rows
    centre = rng.normal(size=16)
    x = centre + 0.05 * rng.normal(size=(30, 16))
    pair = rng.normal(size=16)
    triple = rng.normal(size=16)
    x = np.vstack([x, pair, pair + 1e-3 * rng.normal(size=16), triple, triple, triple]).astype(np.float32)
    plain = duplicates.near_duplicate_pairs(x, 0.9, n_neighbors=10)
    mutual = duplicates.near_duplicate_pairs(x, 0.9, n_neighbors=10, mutual_top=1)
    got = set(zip(mutual["i"], mutual["j"]))
    assert {(30, 31), (32, 33), (32, 34), (33, 34)} <= got  # copies kept, the identical triple whole
    # brute force of the rule within the crowd: a pair survives iff each is the other's nearest neighbour
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = z @ z.T
    np.fill_diagonal(s, -np.inf)
    nn = s[:30, :30].argmax(axis=1)
    want = {(min(i, int(nn[i])), max(i, int(nn[i]))) for i in range(30) if nn[int(nn[i])] == i and s[i, nn[i]] >= 0.9}
    assert {p for p in got if p[1] < 30} == want
    assert len(mutual) < len(plain)


def test_evaluate_rules_hand_counted():
    # 4 images: 0~1 copies (cos 1), 2 and 3 unrelated; a second rule puts 2 onto 3 as well
    good = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    bad = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0.1]], np.float32)
    planted = pd.DataFrame({"a": ["u0", "u2", "gone"], "b": ["u1", "u9", "u0"], "transform": ["flip", "crop", "crop"]})
    out = evaluation.evaluate_rules({"good": (good, 0), "bad": (bad, 0)}, ["u0", "u1", "u2", "u3"], planted, [0.9]).set_index("rule")
    assert out.loc["good", "precision"] == 1.0 and out.loc["good", "recall"] == 1.0
    assert out.loc["bad", "precision"] == 0.5 and out.loc["bad", "n_predicted"] == 2
    assert out.loc["bad", "recall_flip"] == 1.0
    assert (out["n_truth"] == 1).all()  # planted pairs naming images without vectors are left out


def _scored(rows):
    return pd.DataFrame(rows, columns=["i", "j", "similarity"])


def test_distinct_pairs_hand_made():
    pairs = _scored([
        (0, 1, 0.99), (0, 2, 0.97),                  # one picture three times: cluster {0, 1, 2}
        (0, 12, 0.80), (12, 13, 0.10),               # 12 competes only with 13 (0.10), not with 0's copies
        (3, 4, 0.75), (3, 5, 0.30), (4, 6, 0.20),    # a faint crop: nothing else comes near
        (7, 8, 0.85), (7, 9, 0.84), (8, 9, 0.83),    # a family of look-alikes: they compete with each other
        (10, 11, 0.80),                              # compared with nothing else: no competitor
        (14, 15, 0.65), (14, 16, 0.0),               # below the floor
    ])
    got = duplicates.distinct_pairs(pairs, 0.95, floor=0.7, ratio=0.7)
    kept = {(int(a), int(b)): (by, comp) for a, b, by, comp in got[["i", "j", "accepted_by", "competitor"]].values}
    assert set(kept) == {(0, 1), (0, 2), (0, 12), (3, 4)}
    assert kept[(0, 1)][0] == kept[(0, 2)][0] == "threshold" and np.isnan(kept[(0, 1)][1])
    assert kept[(0, 12)] == ("ratio", pytest.approx(0.10))  # 1 - 0.80 <= 0.7 (1 - 0.10)
    assert kept[(3, 4)] == ("ratio", pytest.approx(0.30))  # 0.25 <= 0.7 * 0.70 = 0.49
    # look-alikes: 1 - 0.85 = 0.15 > 0.7 * (1 - 0.84); a stricter ratio drops the crop (0.25 > 0.3 * 0.70)
    assert set(map(tuple, duplicates.distinct_pairs(pairs, 0.95, floor=0.7, ratio=0.3)[["i", "j"]].values)) == {
        (0, 1), (0, 2), (0, 12)}
    plain = duplicates.distinct_pairs(pairs, 0.95, floor=0.95, ratio=0.7)
    assert plain[["i", "j"]].values.tolist() == duplicates.thresholded(pairs, 0.95)[["i", "j"]].values.tolist()
    assert len(duplicates.distinct_pairs(pairs, 0.95, floor=0.7, ratio=0.0)) == 2
    with pytest.raises(ValueError):
        duplicates.distinct_pairs(pairs, 0.95, floor=0.7, ratio=1.5)


def test_distinct_pairs_competitor_is_brute_force_max(rng):
    n, m = 30, 120
    i = rng.integers(0, n, m)
    j = (i + rng.integers(1, n, m)) % n
    pairs = _scored(list(zip(i, j, rng.uniform(0.3, 0.94, m)))).drop_duplicates(["i", "j"])
    got = duplicates.distinct_pairs(pairs, 0.95, floor=0.0, ratio=1.0)  # no strong pairs: clusters are single images
    assert len(got)
    for a, b, s, comp in got[["i", "j", "similarity", "competitor"]].values:
        others = pairs[((pairs["i"].isin([a, b])) | (pairs["j"].isin([a, b])))
                       & ~(pairs["i"].isin([a, b]) & pairs["j"].isin([a, b]))]
        assert len(others) and comp == pytest.approx(others["similarity"].max())
        assert s >= comp - 1e-9  # ratio 1: accepted exactly when no third image scores higher


def test_duplicate_summary_every_field_hand_counted():
    """Every field of the summary, per pair and per cluster, on a table counted by hand.

    clusters (pairs):  {a, b, c} (a-b, b-c, a-c)   diagnosis nv, nv, missing; FST 2, 3, 3  -> fst_by_1 only
                       {d, e}    (d-e)             nv / mel; FST 1, 1; D1 and D2           -> diagnosis, spans
                       {f, g}    (f-g)             bcc, bcc; FST 1 / 3                     -> fst_by_more
                       {h, i}    (h-i)             both missing diagnosis; FST missing / 4 -> homogeneous
    j is in no pair. A missing diagnosis is not a class of its own, an FST spread of exactly 1 is not "by more".
    """
    meta = pd.DataFrame({
        "uid": list("abcdefghij"),
        "dataset": ["D1", "D1", "D1", "D1", "D2", "D1", "D1", "D1", "D1", "D1"],
        "diagnosis": ["nv", "nv", None, "nv", "mel", "bcc", "bcc", np.nan, None, "nv"],
        "fst": [2, 3, 3, 1, 1, 1, 3, np.nan, 4, 6],
    })
    pairs = pd.DataFrame({"image_a": ["a", "b", "a", "d", "f", "h"], "image_b": ["b", "c", "c", "e", "g", "i"],
                          "similarity": [0.99, 0.98, 0.97, 0.96, 0.96, 0.95]})
    scored = pd.DataFrame({"i": [0, 1, 0, 3, 5, 7], "j": [1, 2, 2, 4, 6, 8]})
    scored.attrs["saturated"] = 2
    near, clusters, info = duplicates.find_duplicates(pairs, meta)
    summary = duplicates.duplicate_summary(scored, info)
    assert summary == {
        "pairs": 6,  # per pair: every accepted pair once
        "clusters": 4,  # per cluster: multi-image clusters
        "images_in_clusters": 9,  # each image once, however many pairs it is in (a, b, c are in two each)
        "homogeneous": 1,  # {h, i}
        "diagnosis_conflict": 1,  # {d, e} only: {a, b, c} has one known diagnosis, {h, i} none
        "fst_differs_by_1": 1,  # {a, b, c}: 2 vs 3
        "fst_differs_by_more": 1,  # {f, g}: 1 vs 3; a spread of exactly 1 never counts here
        "spanning_datasets": 1,  # {d, e}
        "saturated_images": 2,
    }
    assert all(isinstance(v, int) for v in summary.values())
    # per pair: every pair carries its cluster's conflict
    by_pair = near.set_index(["image_a", "image_b"])["conflict"]
    assert by_pair.to_dict() == {("a", "b"): "fst_by_1", ("b", "c"): "fst_by_1", ("a", "c"): "fst_by_1",
                                 ("d", "e"): "diagnosis", ("f", "g"): "fst_by_more", ("h", "i"): "homogeneous"}
    assert near["conflict"].value_counts().to_dict() == {"fst_by_1": 3, "diagnosis": 1, "fst_by_more": 1,
                                                         "homogeneous": 1}
    assert clusters[9] not in set(near["cluster"])  # j: a singleton, in no cluster row
    assert info.set_index("cluster")["n_diagnoses"].tolist() == [1, 2, 1, 0]
    empty = duplicates.duplicate_summary(pd.DataFrame({"i": [], "j": []}), info.iloc[:0])
    assert empty == dict.fromkeys(summary, 0)
