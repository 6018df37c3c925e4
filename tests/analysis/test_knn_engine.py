"""The k-NN engine (exact / IVF, CPU / GPU by one code path) against brute force and hand-made answers."""

from __future__ import annotations

import numpy as np
import pytest

from skinmap.analysis.knn import (SearchConfig, VectorIndex, ivf_nlist, knn_recall, knn_search, training_sample)


def _brute_topk(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Independent numpy top-k by cosine similarity (float64)."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    b = base / np.linalg.norm(base, axis=1, keepdims=True)
    sims = q.astype(np.float64) @ b.astype(np.float64).T
    idx = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(sims, idx, axis=1)


def _clustered(rng, n: int, d: int, n_clusters: int, spread: float) -> np.ndarray:
    centres = rng.normal(size=(n_clusters, d))
    labels = rng.integers(0, n_clusters, size=n)
    return (centres[labels] + spread * rng.normal(size=(n, d))).astype(np.float32)


def test_search_config_checks_its_knobs():
    with pytest.raises(ValueError, match="search_method"):
        SearchConfig(search_method="hnsw")
    with pytest.raises(ValueError, match="ivf_nprobe"):
        SearchConfig(ivf_nprobe=0)


def test_nlist_rule():
    cfg = SearchConfig(search_method="ivf")
    assert ivf_nlist(cfg, 1_000_000, 100_000) == 100_000 // 39  # capped by the training rows
    assert ivf_nlist(cfg, 10_000, 10_000) == 256  # 4 sqrt(n) = 400 > 10_000 // 39
    assert ivf_nlist(cfg, 2_500, 100_000) == 200  # 4 sqrt(n)
    assert ivf_nlist(SearchConfig(search_method="ivf", ivf_nlist=7), 10**6, 10**5) == 7
    assert ivf_nlist(cfg, 5, 5) == 1


def test_ivf_visiting_every_list_equals_brute_force(rng):
    base = rng.normal(size=(3000, 16)).astype(np.float32)
    queries = rng.normal(size=(200, 16)).astype(np.float32)
    cfg = SearchConfig(search_method="ivf", ivf_nlist=20, ivf_nprobe=20, ivf_train_size=1000, seed=3)
    res = knn_search(queries, base, 7, search=cfg, use_gpu=False)
    want_idx, want_sim = _brute_topk(queries, base, 7)
    np.testing.assert_array_equal(res.indices, want_idx)
    np.testing.assert_allclose(res.similarities, want_sim, atol=1e-5)


def test_ivf_exclude_self_by_identity(rng):
    x = rng.normal(size=(500, 8)).astype(np.float32)
    x[11] = x[4]  # an exact duplicate stays a neighbour at similarity 1
    cfg = SearchConfig(search_method="ivf", ivf_nlist=5, ivf_nprobe=5)
    res = knn_search(x, x, 3, exclude_self=True, search=cfg, use_gpu=False)
    assert (res.indices != np.arange(500)[:, None]).all()
    assert res.indices[4, 0] == 11 and res.similarities[4, 0] == pytest.approx(1.0, abs=1e-5)


def test_knn_recall_hand_made():
    exact = np.array([[1, 2, 3], [4, 5, 6], [7, -1, -1], [-1, -1, -1]])
    approx = np.array([[3, 2, 9], [9, 8, 0], [7, 1, 2], [0, 1, 2]])
    # row 0: 2 of 3; row 1: 0 of 3; row 2: 1 of 1 (missing exact slots do not count); row 3 left out
    assert knn_recall(approx, exact) == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert knn_recall(exact[:2], exact[:2]) == 1.0
    with pytest.raises(ValueError):
        knn_recall(approx[:2], exact)


def test_ivf_recall_on_clustered_data_at_default_nprobe(rng):
    x = _clustered(rng, 20_000, 32, 200, 0.6)
    queries = _clustered(np.random.default_rng(5), 500, 32, 200, 0.6)
    cfg = SearchConfig(search_method="ivf")  # default nprobe, automatic nlist
    approx = knn_search(queries, x, 10, search=cfg, use_gpu=False)
    exact_idx, _ = _brute_topk(queries, x, 10)
    assert knn_recall(approx.indices, exact_idx) >= 0.95


def test_memmap_input_equals_in_ram(rng, tmp_path):
    x = rng.normal(size=(2000, 12)).astype(np.float32) * 3.0
    path = tmp_path / "x.npy"
    np.save(path, x)
    mm = np.load(path, mmap_mode="r")
    for cfg in (None, SearchConfig(search_method="ivf", ivf_nlist=10, ivf_nprobe=3, ivf_train_size=800)):
        a = knn_search(x[:300], x, 5, search=cfg, batch_size=128, use_gpu=False)
        b = knn_search(mm[:300], mm, 5, search=cfg, batch_size=128, use_gpu=False)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.similarities, b.similarities)
    # VectorIndex with a row subset read from the memmap, chunk by chunk
    rows = np.arange(0, 2000, 3)
    index = VectorIndex(12)
    index.add(mm, rows=rows, chunk_size=97)
    assert index.ntotal == rows.size
    got = index.search(mm, 4, rows=np.arange(50), batch_size=7)
    want_idx, _ = _brute_topk(x[:50], x[rows], 4)
    np.testing.assert_array_equal(got.indices, want_idx)


def test_training_sample_is_seeded_and_sorted(rng):
    x = rng.normal(size=(1000, 4)).astype(np.float32)
    a = training_sample(x, 100, seed=1)
    b = training_sample(x, 100, seed=1)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (100, 4)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    assert training_sample(x, 5000).shape == (1000, 4)


def test_gpu_branch_is_the_same_code_path(rng, monkeypatch):
    """A fake faiss GPU API (returns the CPU index): the GPU branch is taken and the results equal CPU's."""
    import faiss

    base = rng.normal(size=(1500, 8)).astype(np.float32)
    queries = rng.normal(size=(60, 8)).astype(np.float32)
    ivf = SearchConfig(search_method="ivf", ivf_nlist=8, ivf_nprobe=2, ivf_train_size=600)
    pca = SearchConfig(search_method="ivf", ivf_nlist=8, ivf_nprobe=2, ivf_train_size=600, ivf_pca_components=4)
    cpu = [knn_search(queries, base, 5, search=cfg) for cfg in (None, ivf, pca)]

    calls = []

    class FakeResources:
        pass

    def fake_to_gpu(resources, device, index):
        assert isinstance(resources, FakeResources)
        calls.append((device, type(index).__name__))
        return index

    monkeypatch.setattr(faiss, "StandardGpuResources", FakeResources, raising=False)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", fake_to_gpu, raising=False)
    gpu = [knn_search(queries, base, 5, search=cfg) for cfg in (None, ivf, pca)]  # use_gpu=None: autodetect
    # the PCA engine moves its candidate stage (projection + IVF); the re-ranking rows stay on the host
    assert calls == [(0, "IndexFlatIP"), (0, "IndexIVFFlat"), (0, "IndexPreTransform")]
    for a, b in zip(cpu, gpu):
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.similarities, b.similarities)
    VectorIndex(8, use_gpu=False)
    assert len(calls) == 3  # an explicit use_gpu=False never moves the index


def test_pca_candidates_reranked_exactly(rng):
    """PCA candidates + exact re-ranking: returned similarities are the true cosines of the returned
    rows (always); with every list probed and every row re-ranked the search is brute force; on data
    in a planted low-dimensional subspace the candidate stage in that many axes keeps recall high."""
    d, sub = 48, 6
    basis = np.linalg.qr(rng.normal(size=(d, sub)))[0]
    base = (rng.normal(size=(3000, sub)) * 3.0) @ basis.T + 0.05 * rng.normal(size=(3000, d))
    base = base.astype(np.float32)
    queries = base[:200] + 0.01 * rng.normal(size=(200, d)).astype(np.float32)
    exact_idx, _ = _brute_topk(queries, base, 10)
    nb = base / np.linalg.norm(base, axis=1, keepdims=True)
    nq = queries / np.linalg.norm(queries, axis=1, keepdims=True)

    def true_sims(idx):
        return np.einsum("qd,qkd->qk", nq.astype(np.float64), nb[idx].astype(np.float64))

    everything = SearchConfig(search_method="ivf", ivf_nlist=20, ivf_nprobe=20, ivf_pca_components=4,
                              ivf_refine_factor=300)  # 10 x 300 candidates = every row re-ranked
    res = knn_search(queries, base, 10, search=everything)
    np.testing.assert_array_equal(res.indices, exact_idx)
    np.testing.assert_allclose(res.similarities, true_sims(exact_idx), atol=2e-6)

    planted = SearchConfig(search_method="ivf", ivf_nlist=30, ivf_nprobe=8, ivf_pca_components=sub,
                           ivf_refine_factor=2)
    res = knn_search(queries, base, 10, search=planted)
    assert knn_recall(res.indices, exact_idx) >= 0.95
    np.testing.assert_allclose(res.similarities, true_sims(res.indices), atol=2e-6)  # exact, whatever is found
    # too few axes (2 of the 6 planted ones) cannot rank candidates: recall drops (the test can fail)
    few = SearchConfig(search_method="ivf", ivf_nlist=30, ivf_nprobe=8, ivf_pca_components=2, ivf_refine_factor=2)
    assert knn_recall(knn_search(queries, base, 10, search=few).indices, exact_idx) < 0.8


def test_ivf_returns_k_neighbours_when_probed_lists_are_sparse(rng):
    """Train on all data, index only a small far-away part: the first probed lists are empty."""
    x = _clustered(rng, 4000, 8, 40, 0.1)
    index = VectorIndex(8, SearchConfig(search_method="ivf", ivf_nlist=100, ivf_nprobe=1))
    index.train(x)
    far = x[:15] - 10.0 * x[:15].mean(axis=0)
    index.add(far)
    res = index.search(x[1000:1100], 10)
    assert (res.indices >= 0).all() and np.isfinite(res.similarities).all()
    want_idx, _ = _brute_topk(x[1000:1100], far, 10)
    assert knn_recall(res.indices, want_idx) > 0.5


def test_ivf_answers_exactly_below_min_rows(rng):
    """While an IVF index holds fewer than ``ivf_min_rows`` rows it is brute force (even probing 1 of
    16 lists); once it holds more, the IVF lists answer (and, probing one list, miss neighbours)."""
    x = _clustered(rng, 4000, 16, 16, 0.8)
    queries = rng.normal(size=(200, 16)).astype(np.float32)
    cfg = SearchConfig(search_method="ivf", ivf_nlist=16, ivf_nprobe=1, ivf_min_rows=1000)
    index = VectorIndex(16, cfg)
    index.train(x)
    index.add(x[:600])
    exact_idx, exact_sims = _brute_topk(queries, x[:600], 10)
    res = index.search(queries, 10)
    np.testing.assert_array_equal(res.indices, exact_idx)
    np.testing.assert_allclose(res.similarities, exact_sims, atol=2e-6)
    index.add(x[600:], chunk_size=500)  # crosses 1,000 rows inside the add
    exact_idx, _ = _brute_topk(queries, x, 10)
    assert knn_recall(index.search(queries, 10).indices, exact_idx) < 0.9
