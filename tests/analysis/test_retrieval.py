"""Retrieval: hand-computed ranking metrics, filtered search against brute force, the benchmark."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skinmap.analysis import retrieval


def test_ranking_metrics_by_hand():
    # ranks:   1  2  3  4  5   (k = 5), 3 relevant items in the pool
    rel = np.array([[1, 0, 1, 0, 1], [0, 0, 0, 0, 0], [1, 1, 0, 0, 0]], dtype=bool)
    m = retrieval.ranking_metrics(rel, np.array([3, 2, 10]), k=5)
    assert m["precision"].tolist() == pytest.approx([3 / 5, 0.0, 2 / 5])
    assert m["recall"].tolist() == pytest.approx([1.0, 0.0, 0.2])
    # AP@5 = (P@1 + P@3 + P@5) / min(5, 3) = (1 + 2/3 + 3/5) / 3
    assert m["ap"][0] == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert m["ap"][1] == 0.0
    assert m["ap"][2] == pytest.approx((1 + 1) / 5)  # min(k, R) = 5


def test_ranking_metrics_short_list_and_no_relevant():
    m = retrieval.ranking_metrics(np.array([[True, True]]), np.array([2]), k=4)
    assert m["precision"][0] == pytest.approx(0.5)  # short lists still divide by k
    assert m["ap"][0] == pytest.approx(1.0)
    m = retrieval.ranking_metrics(np.array([[False]]), np.array([0]), k=1)
    assert np.isnan(m["recall"][0]) and np.isnan(m["ap"][0])


def make_atlas(rng, n=200, d=8):
    X = rng.normal(size=(n, d)).astype(np.float32)
    meta = pd.DataFrame(
        {
            "uid": [f"ds{i % 3}/img{i}" for i in range(n)],
            "dataset": [f"ds{i % 3}" for i in range(n)],
            "fst": pd.array(rng.integers(1, 7, size=n), dtype="Int64"),
            "body_site": rng.choice(["head", "trunk", "arm", None], size=n),
            "modality": rng.choice(["dermoscopy", "clinical"], size=n),
        }
    )
    return X, meta


def brute(X, q, mask, k):
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    sims = Xn @ (q / np.linalg.norm(q))
    sims[~mask] = -np.inf
    order = np.argsort(-sims, kind="stable")[: min(k, mask.sum())]
    return order, sims[order]


def test_filtered_search_matches_brute_force(rng):
    X, meta = make_atlas(rng)
    index = retrieval.CaseIndex(X, meta)
    q = rng.normal(size=8)
    for filters in ({}, {"fst": ["3", 4]}, {"body_site": "head", "modality": "clinical"}, {"dataset": "ds1", "fst": 6}):
        mask = np.ones(len(meta), bool)
        for col, val in filters.items():
            vals = [str(v) for v in (val if isinstance(val, list) else [val])]
            mask &= meta[col].astype("string").isin(vals).fillna(False).to_numpy()
        got = index.search(q, 7, filters=filters)
        want_rows, want_sims = brute(X, q, mask, 7)
        assert got["row"].tolist() == want_rows.tolist()
        np.testing.assert_allclose(got["similarity"], want_sims, atol=1e-5)
        assert got["rank"].tolist() == list(range(1, len(want_rows) + 1))
    assert index.search(q, 5, filters={"fst": "9"}).empty
    with pytest.raises(KeyError, match="colour"):
        index.search(q, 5, filters={"colour": "red"})


def test_search_uid_excludes_itself_but_keeps_duplicates(rng):
    X, meta = make_atlas(rng, n=50)
    X[7] = X[3]  # an exact duplicate of row 3
    index = retrieval.CaseIndex(X, meta)
    res = index.search_uid(meta.uid[3], 3)
    assert 3 not in res["row"].tolist()
    assert res["row"][0] == 7 and res["similarity"][0] == pytest.approx(1.0)
    with pytest.raises(KeyError, match="nope"):
        index.search_uid("nope")


def test_benchmark_same_dataset_vs_whole_atlas_by_hand():
    # 1-D "directions" on the unit circle; dataset Q has 3 images, atlas A has close matches.
    ang = np.array([0.0, 0.05, 1.5, 0.02, 1.52, 3.0])
    X = np.c_[np.cos(ang), np.sin(ang)]
    labels = ["mel", "nev", "nev", "mel", "nev", "mel"]
    datasets = ["Q", "Q", "Q", "A", "A", "A"]
    out = retrieval.retrieval_benchmark(X, labels, datasets, ["Q"], n_neighbors=1).set_index("setting")
    # same_dataset, k=1: q0(mel)->q1(nev) miss [no other mel in Q: excluded];
    # q1(nev)->q0 miss (R=1); q2(nev)->q1 hit (R=1)  => precision 1/2, AP 1/2, recall 1/2
    assert out.loc["same_dataset", "n_queries"] == 2 and out.loc["same_dataset", "n_no_relevant"] == 1
    assert out.loc["same_dataset", "precision"] == pytest.approx(0.5)
    assert out.loc["same_dataset", "recall"] == pytest.approx(0.5)
    # whole atlas, k=1: q0->row3 (mel, 0.02) hit, R=2; q1->row3? |0.05-0.02|=0.03 < 0.05 -> miss;
    # q2->row4 (nev) hit, R=2.   precision 2/3, recall (1/2+0+1/2)/3, AP (1+0+1)/3
    assert out.loc["whole_atlas", "precision"] == pytest.approx(2 / 3)
    assert out.loc["whole_atlas", "recall"] == pytest.approx(1 / 3)
    assert out.loc["whole_atlas", "ap"] == pytest.approx(2 / 3)


def test_neighbours_excluding_matches_brute_force(rng):
    X = rng.normal(size=(40, 5)).astype(np.float32)
    q_rows = np.array([0, 5, 39])
    nn = retrieval.neighbours_excluding(X[q_rows], X, q_rows, 4)
    for i, r in enumerate(q_rows):
        mask = np.ones(40, bool)
        mask[r] = False
        assert nn[i].tolist() == brute(X, X[r], mask, 4)[0].tolist()


def test_search_image_uses_the_embedder(rng, tmp_path):
    X, meta = make_atlas(rng, n=30)
    index = retrieval.CaseIndex(X, meta)
    got = index.search_image(tmp_path / "q.png", lambda paths: X[[4]] * 2.0, 3)
    assert got["row"][0] == 4 and got["similarity"][0] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="could not use"):
        index.search_image("x.png", lambda paths: np.full((1, 8), np.nan), 3)
