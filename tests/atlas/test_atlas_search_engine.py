"""The atlas app's index runs on the project's one k-NN engine (issue 19), checked by brute force."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skinmap.analysis.knn import VectorIndex
from skinmap.atlas.search import AtlasIndex, AtlasIndexConfig


def _atlas(rng, n=1500, d=12):
    X = (rng.normal(size=(12, d))[rng.integers(0, 12, size=n)] + 0.4 * rng.normal(size=(n, d))).astype(np.float32)
    meta = pd.DataFrame({"uid": [f"u{i}" for i in range(n)],
                         "dataset": np.where(np.arange(n) % 50 == 0, "rare", "common")})
    return X, meta


def _brute(X, q, allowed, k):
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q)
    sims = np.where(allowed, Xn @ qn, -np.inf)
    order = np.argsort(-sims, kind="stable")[:k]
    return order[np.isfinite(sims[order])]


@pytest.mark.parametrize("ivf", [False, True])
def test_filtered_and_excluded_search_equals_brute_force(rng, ivf):
    X, meta = _atlas(rng)
    groups = rng.integers(0, 400, size=len(X))
    config = AtlasIndexConfig(ivf_min_rows=100 if ivf else 10_000, ivf_nlist=16, ivf_nprobe=16, ivf_train_size=800)
    index = AtlasIndex(X, meta, groups=groups, config=config)
    assert isinstance(index._index, VectorIndex)
    assert index.kind == ("ivf" if ivf else "exact") and index.nprobe == index.nlist == (16 if ivf else 0)
    rare = (meta["dataset"] == "rare").to_numpy()  # 2 % of the rows: the filter forces re-searches
    for row in (0, 7, 1234):
        excl = index.group_rows(row)
        allowed = rare.copy()
        allowed[excl] = False
        res = index.search(X[row], 6, filters={"dataset": "rare"}, exclude_rows=excl)
        np.testing.assert_array_equal(res["row"].to_numpy(), _brute(X, X[row], allowed, 6))
        assert (res["dataset"] == "rare").all() and not np.isin(res["row"], excl).any()
        plain = index.search(X[row], 6)
        np.testing.assert_array_equal(plain["row"].to_numpy(), _brute(X, X[row], np.ones(len(X), bool), 6))


def test_ivf_knobs_reach_the_engine(rng):
    X, meta = _atlas(rng, n=2000)
    index = AtlasIndex(X, meta, config=AtlasIndexConfig(ivf_min_rows=1000, ivf_nlist=20, ivf_nprobe=3,
                                                         ivf_train_size=900, seed=4))
    assert index.kind == "ivf" and index.nlist == 20 and index.nprobe == 3
    assert index.search_config.ivf_train_size == 900 and index.search_config.seed == 4
    assert index._index.ntotal == 2000
    # approximate: at nprobe 3 of 20 most queries still find most of their exact neighbours
    hits = [len(set(index.search(X[r], 10)["row"]) & set(_brute(X, X[r], np.ones(2000, bool), 10))) / 10
            for r in range(0, 2000, 40)]
    assert np.mean(hits) > 0.5
