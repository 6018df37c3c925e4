"""Member agreement, probe and zero-shot helpers against brute force and planted answers."""

from __future__ import annotations

import numpy as np

from skinmap.analysis.embedding_evaluation import knn_overlap, linear_probe, zero_shot_accuracy


def _brute_knn(x, k):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    return np.argsort(-s, axis=1)[:, :k]


def test_knn_overlap_brute_force(rng):
    a, b = rng.standard_normal((40, 5)), rng.standard_normal((40, 7))
    na, nb = _brute_knn(a, 4), _brute_knn(b, 4)
    expected = np.mean([len(set(x) & set(y)) / 4 for x, y in zip(na, nb)])
    assert abs(knn_overlap(a, b, 4) - expected) < 1e-12
    assert knn_overlap(a, a * 3.0, 4) == 1.0  # scale does not change cosine neighbourhoods


def test_linear_probe_planted_labels(rng):
    y = np.repeat(["a", "b", "c"], 40)
    x = np.eye(3)[np.repeat([0, 1, 2], 40)] * 5 + rng.standard_normal((120, 3)) * 0.1
    res = linear_probe(x, list(y) + [], test_fraction=0.25)
    assert res["accuracy"] == 1.0 and res["n_classes"] == 3
    noise = linear_probe(rng.standard_normal((120, 3)), y, test_fraction=0.25)
    assert noise["accuracy"] < 0.7
    rare = linear_probe(x[:42], list(y[:42]), min_class=5)  # class 'b' has 2 rows: dropped
    assert rare["n_classes"] == 1 and np.isnan(rare["accuracy"])


def test_zero_shot_accuracy_direct():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.6, 0.4]])
    res = zero_shot_accuracy(scores, ["x", "y", "y", None], ["x", "y"])
    assert res["n"] == 3 and res["accuracy"] == 2 / 3 and res["chance"] == 0.5
    assert abs(res["majority"] - 2 / 3) < 1e-12


# --- held-out retrieval against chance and the fusion rule (issue 20) -----------------------------

import pandas as pd
import pytest

from skinmap.analysis.embedding_evaluation import retrieval_against_chance, retrieval_chance, select_members


def _brute_precision(x, labels, groups, q, k):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    allowed = [j for j in range(len(x)) if groups[j] != groups[q]]
    ranked = sorted(allowed, key=lambda j: (-(x[q] @ x[j]), j))[:k]
    return sum(labels[j] == labels[q] for j in ranked) / k


def test_retrieval_chance_is_the_label_share_of_allowed_candidates():
    labels = np.array([0, 0, 1, 1, 1, -1, 0])
    groups = np.array([0, 0, 1, 2, 3, 4, 5])  # rows 0 and 1 are one lesion
    chance, n_rel = retrieval_chance(labels, groups, np.array([0, 2, 6]))
    # row 0: allowed rows 2..6 (5), label 0 among them: row 6 -> 1/5
    # row 2: allowed every row but itself (6), label 1: rows 3, 4 -> 2/6
    # row 6: allowed 0..5 (6), label 0: rows 0, 1 -> 2/6
    assert np.allclose(chance, [1 / 5, 2 / 6, 2 / 6]) and n_rel.tolist() == [1, 2, 2]


def test_retrieval_against_chance_brute_force_and_planted(rng):
    n = 120
    labels = rng.integers(0, 3, n)
    groups = np.arange(n) // 2  # pairs of images of one lesion
    planted = np.eye(3)[labels] * 3 + rng.standard_normal((n, 3)) * 0.3
    noise = rng.standard_normal((n, 5))
    # the lesion twin of every row is a near copy: retrieving it must not count under the strict rule
    twin = noise.copy()
    twin[1::2] = twin[::2] + 1e-3
    spaces = {"planted": planted, "noise": noise, "twin": twin}
    queries = np.arange(0, n, 3)
    table, curves = retrieval_against_chance(spaces, labels.astype(str), groups, {"q": queries}, n_neighbors=5,
                                             max_neighbors=8, reference="planted", n_bootstrap=300, seed=1)
    t = table.set_index("space")
    for name, x in spaces.items():
        brute = np.mean([_brute_precision(x, labels, groups, q, 5) for q in queries])
        assert abs(t.loc[name, "precision"] - brute) < 1e-12, name
        assert t.loc[name, "ci_low"] <= t.loc[name, "precision"] <= t.loc[name, "ci_high"]
    chance, _ = retrieval_chance(labels, groups, queries)
    assert abs(t["chance"].iloc[0] - chance.mean()) < 1e-12
    assert t.loc["planted", "above_chance_ci_low"] > 0.3
    assert t.loc["noise", "above_chance_ci_low"] < 0 < t.loc["noise", "above_chance_ci_high"]
    assert t.loc["twin", "above_chance_ci_low"] < 0 < t.loc["twin", "above_chance_ci_high"]
    assert t.loc["noise", "reference_minus_ci_low"] > 0 and t.loc["planted", "reference_minus"] == 0
    assert set(curves["n_neighbors"]) == set(range(1, 9))
    c = curves[(curves["space"] == "planted") & (curves["n_neighbors"] == 5)]
    assert abs(c["precision"].iloc[0] - t.loc["planted", "precision"]) < 1e-12


def _table(rows):
    return pd.DataFrame(rows, columns=["eval_set", "space", "above_chance", "above_chance_ci_low"])


def test_select_members_rule():
    table = _table([("test", "a", 0.2, 0.1), ("test", "b", 0.05, -0.01), ("test", "c", 0.3, 0.2),
                    ("other", "b", 0.5, 0.4)])
    kept, why = select_members(table, "beats_chance", ["test"], ["a", "b", "c"])
    assert kept == ["a", "c"] and why["b"].startswith("left out")
    assert select_members(table, "all", ["test"], ["a", "b", "c"])[0] == ["a", "b", "c"]
    none = _table([("test", "a", -0.1, -0.2), ("test", "b", 0.01, -0.05)])
    assert select_members(none, "beats_chance", ["test"], ["a", "b"])[0] == ["b"]  # the best is kept
    assert select_members(_table([]), "beats_chance", ["test"], ["a", "b"])[0] == ["a", "b"]
    with pytest.raises(ValueError):
        select_members(table, "some", ["test"], ["a"])
