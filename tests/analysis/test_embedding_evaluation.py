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
