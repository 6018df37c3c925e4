import numpy as np
import pytest

from skinmap.analysis.topology.graph import (
    farthest_point_landmarks,
    graph_components,
    select_landmarks,
    stratified_landmarks,
    symmetric_knn_graph,
)


def test_farthest_point_takes_one_landmark_per_tight_cluster(rng):
    centers = np.eye(6)[:4] * 5 + 10 * np.eye(6)[5]
    x = np.repeat(centers, 50, axis=0) + rng.normal(0, 0.01, (200, 6))
    rows = farthest_point_landmarks(x, 4, seed=3)
    assert sorted(set(rows // 50)) == [0, 1, 2, 3]


def test_farthest_point_covering_radius_beats_random(rng):
    x = rng.normal(size=(400, 5))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)

    def cover(rows):
        return (1 - xn @ xn[rows].T).min(axis=1).max()

    fps = farthest_point_landmarks(x, 20)
    rand = [cover(np.random.default_rng(s).choice(400, 20, replace=False)) for s in range(10)]
    assert cover(fps) <= min(rand)


def test_stratified_keeps_shares_and_small_strata():
    strata = ["a"] * 700 + ["b"] * 290 + ["c"] * 10
    rows = stratified_landmarks(strata, 100, seed=1)
    labels = np.array(strata)[rows]
    assert len(set(rows)) == 100
    assert {s: int((labels == s).sum()) for s in "abc"} == {"a": 70, "b": 29, "c": 1}


def test_stratified_missing_values_form_a_stratum():
    strata = ["a"] * 50 + [None] * 50
    rows = stratified_landmarks(strata, 10)
    assert (rows >= 50).sum() == 5


def test_select_landmarks_all_when_few_and_errors():
    x = np.ones((5, 3)) + np.arange(15).reshape(5, 3)
    assert list(select_landmarks(x, 10, "farthest")) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="strata"):
        select_landmarks(x, 2, "stratified")
    with pytest.raises(ValueError, match="unknown"):
        select_landmarks(x, 2, "nope")


def test_knn_graph_matches_brute_force(rng):
    x = rng.normal(size=(60, 8))
    k = 4
    a = symmetric_knn_graph(x, k).toarray()
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = xn @ xn.T
    np.fill_diagonal(sim, -np.inf)
    nn = np.argsort(-sim, axis=1)[:, :k]
    expected = np.zeros((60, 60))
    for i in range(60):
        expected[i, nn[i]] = 1
    expected = np.maximum(expected, expected.T)
    np.testing.assert_array_equal(a, expected)
    assert (np.diag(a) == 0).all()


def test_knn_graph_keeps_duplicates_as_neighbours():
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.1, 1.0]])
    a = symmetric_knn_graph(x, 1).toarray()
    assert a[0, 1] == 1 and a[2, 3] == 1


def test_components_of_two_separated_blobs(rng):
    x = np.r_[rng.normal(0, 0.01, (30, 3)) + [1, 0, 0], rng.normal(0, 0.01, (30, 3)) + [0, 1, 0]]
    n_comp, labels = graph_components(symmetric_knn_graph(x, 5))
    assert n_comp == 2
    assert len(set(labels[:30])) == 1 and len(set(labels[30:])) == 1
