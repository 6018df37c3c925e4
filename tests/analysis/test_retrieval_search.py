"""The retrieval benchmark through the k-NN engine (issue 19): one index over all rows, search-and-filter.

Every check compares against an independent computation:

* planted groups: IVF with ``nprobe = nlist`` (every cell visited, so exact) against a full numpy
  similarity matrix with the group mask, for the whole atlas, a large pool (the shared index
  filtered) and a small pool (an index of its own), both protocols;
* a property over random groupings and pools: no returned row ever shares the query's group or
  lies outside the pool, at a small ``nprobe`` too;
* re-search: groups far larger than :data:`SEARCH_MARGIN`, and out-of-pool rows crowding every
  query's neighbourhood (counted searches show the second round ran, the answer is still exact);
* recall of the default IVF knobs on clustered data, and :func:`retrieval_recall` itself on
  answers whose recall is known by construction;
* the whole curves through IVF at ``nprobe = nlist`` equal the exact curves; a memmap input works.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skinmap.analysis import retrieval
from skinmap.analysis.knn import SearchConfig, VectorIndex

EXACT_IVF = SearchConfig(search_method="ivf", ivf_nlist=8, ivf_nprobe=8)


def brute_force(X, query_rows, pool_rows, groups, protocol, k):
    """Rows of the k most similar allowed pool rows: a full (n_q, n) similarity matrix with the mask."""
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    sims = Xn[query_rows] @ Xn.T
    n = len(X)
    in_pool = np.zeros(n, bool)
    in_pool[pool_rows] = True
    if protocol == "strict":
        same = np.asarray(groups)[query_rows][:, None] == np.asarray(groups)[None, :]
    else:
        same = np.asarray(query_rows)[:, None] == np.arange(n)[None, :]
    sims = np.where(in_pool[None, :] & ~same, sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.where(np.isfinite(np.take_along_axis(sims, order, axis=1)), order, -1)


def planted_atlas(rng, n=1200, d=24, n_groups=150, spread=0.05):
    """Groups of near-identical rows around random centres: every query's nearest rows are its group."""
    centres = rng.normal(size=(n_groups, d))
    groups = rng.integers(0, n_groups, size=n)
    X = centres[groups] + spread * rng.normal(size=(n, d))
    return X.astype(np.float32), groups


@pytest.mark.parametrize("protocol", ["strict", "legacy"])
@pytest.mark.parametrize("pool_kind", ["all", "large", "small"])
def test_ivf_with_every_cell_probed_equals_brute_force_with_the_group_mask(rng, protocol, pool_kind):
    X, groups = planted_atlas(rng)
    n = len(X)
    pool = {"all": np.arange(n), "large": np.sort(rng.choice(n, 700, replace=False)),
            "small": np.sort(rng.choice(n, 120, replace=False))}[pool_kind]
    q = rng.choice(n, 80, replace=False)
    want = brute_force(X, q, pool, groups, protocol, 10)
    got = retrieval.neighbours_outside_group(X, q, pool, 10, groups=groups, protocol=protocol, search=EXACT_IVF)
    np.testing.assert_array_equal(got, want)
    shared = retrieval.shared_search_index(X, EXACT_IVF)
    got = retrieval.neighbours_outside_group(X, q, pool, 10, groups=groups, protocol=protocol, index=shared)
    np.testing.assert_array_equal(got, want)
    # the planted groups matter: many unmasked nearest rows are the query's own group
    if protocol == "strict" and pool_kind != "small":
        unmasked = brute_force(X, q, pool, np.arange(n), "strict", 10)
        assert (groups[np.maximum(unmasked, 0)] == groups[q][:, None]).mean() > 0.2


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_groups=st.integers(1, 60), pool_share=st.floats(0.05, 1.0),
       nprobe=st.integers(1, 4), protocol=st.sampled_from(["strict", "legacy"]))
def test_no_neighbour_shares_the_query_group_or_leaves_the_pool(seed, n_groups, pool_share, nprobe, protocol):
    rng = np.random.default_rng(seed)
    n = 300
    X = rng.normal(size=(n, 8)).astype(np.float32)
    groups = rng.integers(0, n_groups, size=n)
    pool = np.sort(rng.choice(n, max(1, int(pool_share * n)), replace=False))
    q = rng.choice(n, 30, replace=False)
    search = SearchConfig(search_method="ivf", ivf_nlist=4, ivf_nprobe=nprobe)
    got = retrieval.neighbours_outside_group(X, q, pool, 7, groups=groups, protocol=protocol, search=search)
    found = got >= 0
    rows = np.maximum(got, 0)
    assert np.isin(rows[found], pool).all()
    if protocol == "strict":
        assert not (found & (groups[rows] == groups[q][:, None])).any()
    else:
        assert not (found & (rows == q[:, None])).any()
    # no row twice in a list, and the found rows come first
    for row in got:
        assert len(set(row[row >= 0])) == (row >= 0).sum()
        assert (np.diff((row >= 0).astype(int)) <= 0).all()
    # a query gets fewer than 7 only if the pool has fewer allowed rows (or, at nprobe < nlist, its cells do)
    n_allowed = np.array([(~np.isin(pool, np.flatnonzero(groups == groups[i]) if protocol == "strict" else [i])).sum()
                          for i in q])
    assert (found.sum(axis=1) <= np.minimum(n_allowed, 7)).all()
    if nprobe >= 4:
        assert (found.sum(axis=1) == np.minimum(n_allowed, 7)).all()


class CountingIndex:
    """A VectorIndex stand-in that records the k of every search and forwards it."""

    def __init__(self, index: VectorIndex):
        self.index, self.calls = index, []

    def __getattr__(self, name):
        return getattr(self.index, name)

    def search(self, queries, k, **kw):
        self.calls.append((len(queries), k))
        return self.index.search(queries, k, **kw)


def test_groups_larger_than_the_margin_are_skipped_in_one_search(rng):
    # 3 groups of 200 near-identical rows plus 300 singletons: the query's own 200 rows come first
    n_big, d = 3, 16
    centres = rng.normal(size=(n_big, d))
    big = np.repeat(np.arange(n_big), 200)
    X = np.vstack([centres[big] + 0.01 * rng.normal(size=(600, d)), rng.normal(size=(300, d))]).astype(np.float32)
    groups = np.concatenate([big, 100 + np.arange(300)])
    assert 200 > retrieval.SEARCH_MARGIN
    q = np.array([0, 250, 599, 700])
    index = CountingIndex(retrieval.build_search_index(X, EXACT_IVF))
    got = retrieval.neighbours_outside_group(X, q, np.arange(len(X)), 5, groups=groups, index=index)
    np.testing.assert_array_equal(got, brute_force(X, q, np.arange(len(X)), groups, "strict", 5))
    # one search per query (no second round): the group size went into each query's first k
    assert sum(m for m, _ in index.calls) == len(q)
    assert max(k for _, k in index.calls) >= 200 + 5 and min(k for _, k in index.calls) < 200


def test_out_of_pool_rows_crowding_a_query_trigger_a_second_search_and_stay_exact(rng):
    # the pool is half the atlas, but each query's 100 nearest rows are all outside it
    d = 16
    centres = rng.normal(size=(6, d))
    near = np.repeat(np.arange(6), 100)
    X = np.vstack([centres[near] + 0.02 * rng.normal(size=(600, d)), rng.normal(size=(600, d))]).astype(np.float32)
    n = len(X)
    pool = np.arange(600, n)  # the far rows only: share 0.5
    q = np.arange(0, 600, 100)  # one query per crowded cluster
    index = CountingIndex(retrieval.build_search_index(X, EXACT_IVF))
    got = retrieval.neighbours_outside_group(X, q, pool, 5, index=index)
    np.testing.assert_array_equal(got, brute_force(X, q, pool, np.arange(n), "strict", 5))
    assert len(index.calls) >= 2 and index.calls[-1][1] > index.calls[0][1]


def clustered(rng, n=20_000, d=48, n_clusters=200):
    centres = rng.normal(size=(n_clusters, d))
    labels = rng.integers(0, n_clusters, size=n)
    return (centres[labels] + 0.35 * rng.normal(size=(n, d))).astype(np.float32)


def test_recall_at_default_nprobe_on_clustered_data(rng):
    X = clustered(rng)
    n = len(X)
    groups = rng.integers(0, n // 3, size=n)  # about 3 rows per lesion
    q = rng.choice(n, 500, replace=False)
    search = SearchConfig(search_method="ivf")  # default nlist (4 sqrt n) and nprobe
    index = retrieval.shared_search_index(X, search)
    assert index.nlist > search.ivf_nprobe  # a real approximation: most cells are skipped
    got = retrieval.neighbours_outside_group(X, q, np.arange(n), 10, groups=groups, index=index)
    want = brute_force(X, q, np.arange(n), groups, "strict", 10)
    recall = np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(got, want)])
    assert recall >= 0.95
    assert retrieval.retrieval_recall(X, q, got, groups=groups, n_sample=500) == pytest.approx(recall)


def test_retrieval_recall_on_answers_of_known_recall(rng):
    X, groups = planted_atlas(rng, n=900)
    pool = np.sort(rng.choice(900, 600, replace=False))
    q = rng.choice(900, 100, replace=False)
    exact = brute_force(X, q, pool, groups, "strict", 10)
    assert retrieval.retrieval_recall(X, q, exact, pool, groups=groups, chunk_size=97) == 1.0
    half = exact.copy()
    half[:, 5:] = -1
    assert retrieval.retrieval_recall(X, q, half, pool, groups=groups, chunk_size=97) == pytest.approx(0.5)
    shuffled = exact[rng.permutation(100)]  # other queries' lists: almost nothing in common
    assert retrieval.retrieval_recall(X, q, shuffled, pool, groups=groups) < 0.2
    # the sample: 30 of the 100 queries, the same whatever the chunking
    a = retrieval.retrieval_recall(X, q, half, pool, groups=groups, n_sample=30, seed=3)
    assert a == pytest.approx(0.5)
    # legacy: the query's own group is allowed, so the strict answer misses those rows
    legacy = brute_force(X, q, pool, groups, "legacy", 10)
    assert retrieval.retrieval_recall(X, q, legacy, pool, groups=groups, protocol="legacy") == 1.0
    assert retrieval.retrieval_recall(X, q, exact, pool, groups=groups, protocol="legacy") < 1.0


def test_curves_through_ivf_with_every_cell_probed_equal_the_exact_curves(rng):
    X, groups = planted_atlas(rng, n=900, n_groups=120)
    labels = np.where(rng.random(900) < 0.1, None, (groups % 4).astype(str)).tolist()
    datasets = np.where(np.arange(900) % 4 == 0, "Q", "A").tolist()  # Q holds a quarter: same-dataset shares
    kw = dict(groups=groups, max_neighbors=8, n_neighbors=4, n_bootstrap=20)
    exact = retrieval.retrieval_curves(X, labels, datasets, ["Q"], **kw)
    ivf = retrieval.retrieval_curves(X, labels, datasets, ["Q"], search=EXACT_IVF, **kw)
    cols = ["precision", "recall", "ap", "precision_ci_low", "precision_ci_high", "n_queries"]
    np.testing.assert_allclose(ivf.curves[cols].to_numpy(float), exact.curves[cols].to_numpy(float), atol=1e-12)
    np.testing.assert_allclose(ivf.setting_differences["difference"], exact.setting_differences["difference"],
                               atol=1e-12)
    # a smaller eval set (an index of its own for the same-dataset setting) and a shared index passed in
    small = np.where(np.arange(900) % 20 == 0, "Q", "A").tolist()
    exact = retrieval.retrieval_curves(X, labels, small, ["Q"], **kw)
    ivf = retrieval.retrieval_curves(X, labels, small, ["Q"], index=retrieval.shared_search_index(X, EXACT_IVF), **kw)
    np.testing.assert_allclose(ivf.curves[cols].to_numpy(float), exact.curves[cols].to_numpy(float), atol=1e-12)
    # hit sources through the index
    a = retrieval.hit_sources(X, labels, small, "Q", 5, groups=groups)
    b = retrieval.hit_sources(X, labels, small, "Q", 5, groups=groups, search=EXACT_IVF)
    np.testing.assert_array_equal(a[["hits", "relevant"]].to_numpy(), b[["hits", "relevant"]].to_numpy())


def test_a_memmap_atlas_is_searched_without_loading_it(rng, tmp_path):
    X, groups = planted_atlas(rng, n=1500)
    np.save(tmp_path / "atlas.npy", X)
    mm = np.load(tmp_path / "atlas.npy", mmap_mode="r")
    q = rng.choice(1500, 50, replace=False)
    index = retrieval.build_search_index(mm, EXACT_IVF, chunk_size=128)
    assert index.ntotal == 1500
    got = retrieval.neighbours_outside_group(mm, q, np.arange(1500), 6, groups=groups, index=index)
    np.testing.assert_array_equal(got, brute_force(X, q, np.arange(1500), groups, "strict", 6))
    assert retrieval.retrieval_recall(mm, q, got, groups=groups, chunk_size=200) == 1.0


def test_search_allowed_equals_a_brute_force_over_the_allowed_rows(rng):
    X = rng.normal(size=(500, 12)).astype(np.float32)
    index = retrieval.build_search_index(X, SearchConfig())  # exact flat engine
    allowed = rng.random(500) < 0.03  # a selective filter: several rounds of re-search
    res = retrieval.search_allowed(index, X, 6, lambda _, ids: allowed[ids], query_rows=np.arange(20))
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    sims = np.where(allowed[None, :], Xn[:20] @ Xn.T, -np.inf)
    want = np.argsort(-sims, axis=1, kind="stable")[:, :6]
    np.testing.assert_array_equal(res.indices, want)
    np.testing.assert_allclose(res.similarities, np.take_along_axis(sims, want, axis=1), atol=1e-5)
    none = retrieval.search_allowed(index, X[:3], 4, lambda _, ids: np.zeros(ids.shape, bool))
    assert (none.indices == -1).all()


def test_an_index_over_other_rows_is_refused(rng):
    X = rng.normal(size=(100, 6)).astype(np.float32)
    index = retrieval.build_search_index(X[:50])
    with pytest.raises(ValueError, match="index holds 50 rows"):
        retrieval.neighbours_outside_group(X, np.arange(3), np.arange(100), 3, index=index)
