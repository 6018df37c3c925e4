"""The hole step at scale (issue 19): blocked farthest-point sampling, the landmark pool, the row
index, boundary samples on a memmap and the one-call :func:`find_holes`, against independent
brute-force computations and a planted hole."""

import numpy as np
import pytest

from skinmap.analysis.knn import SearchConfig
from skinmap.analysis.topology import holes as th
from skinmap.analysis.topology.graph import (
    build_row_index,
    farthest_point_landmarks,
    knn_sparsity,
    landmark_pool,
    select_landmarks,
)
from skinmap.analysis.topology.persistence import null_persistence_draws
from skinmap.analysis.topology.search import HoleSearchConfig, search_holes, top_persistence


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _fps_reference(x, m, seed=0):
    """Farthest-point sampling as written before issue 19: one pass over all rows per landmark."""
    xn = _unit(np.asarray(x, dtype=np.float64))
    chosen = [int(np.random.default_rng(seed).integers(len(x)))]
    nearest = 1.0 - xn @ xn[chosen[0]]
    nearest[chosen] = -np.inf
    for _ in range(1, m):
        nxt = int(np.argmax(nearest))
        chosen.append(nxt)
        nearest = np.minimum(nearest, 1.0 - xn @ xn[nxt])
        nearest[chosen] = -np.inf
    return np.sort(chosen)


def _sparsity_reference(x, k, rows):
    xn = _unit(np.asarray(x, dtype=np.float64))
    d = 1.0 - xn[rows] @ xn.T
    d[np.arange(len(rows)), rows] = np.inf  # itself, by identity
    return np.sort(d, axis=1)[:, k - 1]


@pytest.mark.parametrize("flush_size,top_size", [(1, 1), (7, 16), (256, 4096)])
def test_blocked_farthest_point_equals_one_pass_per_landmark(rng, flush_size, top_size):
    x = rng.normal(size=(700, 12)) + np.repeat(rng.normal(0, 3, (7, 12)), 100, axis=0)
    got = farthest_point_landmarks(x, 90, seed=5, flush_size=flush_size, top_size=top_size, chunk_size=50)
    np.testing.assert_array_equal(got, _fps_reference(x, 90, seed=5))


def test_knn_sparsity_of_pool_rows_searches_all_rows(rng):
    x = rng.normal(size=(300, 6))
    x[10] = x[11]  # a duplicate is a neighbour at distance 0; the row itself never is
    rows = np.array([0, 10, 11, 150, 299])
    got = knn_sparsity(x, 3, rows=rows)
    np.testing.assert_allclose(got, _sparsity_reference(x, 3, rows), atol=1e-5)
    assert got[1] == pytest.approx(_sparsity_reference(x, 3, rows)[1], abs=1e-5)
    np.testing.assert_allclose(knn_sparsity(x, 3)[rows], got, atol=1e-6)  # rows change nothing


def test_ivf_sparsity_visiting_every_list_is_exact(rng):
    x = rng.normal(size=(400, 8)) + np.repeat(rng.normal(0, 4, (4, 8)), 100, axis=0)
    rows = np.arange(0, 400, 7)
    ivf = SearchConfig(search_method="ivf", ivf_nlist=8, ivf_nprobe=8, ivf_train_size=400, seed=1)
    np.testing.assert_allclose(knn_sparsity(x, 5, rows=rows, search=ivf), _sparsity_reference(x, 5, rows), atol=1e-5)
    # A narrow probe can only miss neighbours: its k-th distance is never below the exact one.
    narrow = SearchConfig(search_method="ivf", ivf_nlist=8, ivf_nprobe=1, ivf_train_size=400, seed=1)
    assert (knn_sparsity(x, 5, rows=rows, search=narrow) >= _sparsity_reference(x, 5, rows) - 1e-5).all()


def test_pool_of_all_rows_gives_the_trimmed_landmarks_of_before(rng):
    x = rng.normal(size=(500, 10)) + np.repeat(rng.normal(0, 2, (5, 10)), 100, axis=0)
    x[:12] *= 0.2
    x[:12] += rng.normal(0, 5, (12, 10))  # an isolated tail the trim must drop
    n_trim = int(np.ceil(0.04 * 500))
    sparsity = _sparsity_reference(x, 6, np.arange(500))
    keep = np.sort(np.argsort(-sparsity, kind="stable")[n_trim:])
    expected = keep[_fps_reference(x[keep], 60, seed=2)]
    for pool_size in (0, 500, 10_000):
        got = select_landmarks(x, 60, "trimmed_farthest", trim_fraction=0.04, density_n_neighbors=6, seed=2,
                               pool_size=pool_size)
        np.testing.assert_array_equal(got, expected)


def test_pool_is_seeded_and_stratified():
    strata = ["a"] * 800 + ["b"] * 200
    pool = landmark_pool(1000, 100, strata=strata, seed=3)
    assert (pool < 800).sum() == 80 and np.all(np.diff(pool) > 0)
    np.testing.assert_array_equal(pool, landmark_pool(1000, 100, strata=strata, seed=3))
    np.testing.assert_array_equal(landmark_pool(1000, 0), np.arange(1000))
    with pytest.raises(ValueError, match="landmark_pool_size"):
        HoleSearchConfig(n_landmarks=500, landmark_pool_size=100)


def _boundary_reference(z, cycle, k, alpha):
    z = np.asarray(z, dtype=np.float64)
    cyc = np.unique(cycle)
    d = np.sqrt(((z[cyc][:, None, :] - z[None, :, :]) ** 2).sum(-1))
    d[np.arange(cyc.size), cyc] = np.inf
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    dk = np.take_along_axis(d, order, 1)
    radius = alpha * np.median(dk[:, -1])
    return np.unique(np.concatenate([cyc, order[dk <= radius]]))


def test_boundary_samples_on_a_far_memmap_equal_brute_force(rng, tmp_path):
    # float32 rows far from the origin (norm ~ 500): screening in float32 must not lose neighbours.
    z = (rng.normal(size=(3000, 16)) + 500.0 / 4.0).astype(np.float32)
    path = tmp_path / "z.npy"
    np.save(path, z)
    zm = np.load(path, mmap_mode="r")
    cycle = rng.choice(3000, 25, replace=False)
    got = th.boundary_samples(zm, cycle, boundary_n_neighbors=7, alpha=1.2)
    np.testing.assert_array_equal(got, _boundary_reference(z, cycle, 7, 1.2))
    # Unit rows: cosine candidates from an exact row index give the same rows.
    u = _unit(z.astype(np.float64) - z.mean(0)).astype(np.float32)
    index = build_row_index(u)
    np.testing.assert_array_equal(th.boundary_samples(u, cycle, boundary_n_neighbors=7, alpha=1.2, index=index),
                                  _boundary_reference(u, cycle, 7, 1.2))


def _annulus(rng, n, dim=48):
    """Rows on a noisy annulus in a random plane of ``dim``-d, offset along a third axis so that
    cosine distance follows the plane's geometry; returns (rows, angle)."""
    theta = rng.uniform(0, 2 * np.pi, n)
    radius = rng.uniform(0.9, 1.1, n)
    basis = np.linalg.qr(rng.normal(size=(dim, 3)))[0].T
    x = (radius * np.cos(theta))[:, None] * basis[0] + (radius * np.sin(theta))[:, None] * basis[1] + 6.0 * basis[2]
    return (x + rng.normal(0, 0.03, (n, dim))).astype(np.float32), theta


def test_planted_annulus_is_found_from_a_pool(rng):
    z, theta = _annulus(rng, 12_000)
    cfg = HoleSearchConfig(n_landmarks=250, landmark_method="trimmed_farthest", landmark_pool_size=2_000,
                           graph_n_neighbors=8, max_rips_points=250, seed=0)
    found = th.find_holes(z, cfg, th.BoundaryConfig(boundary_n_neighbors=5), n_holes=2)
    assert np.isin(found.search.landmarks, landmark_pool(len(z), 2_000, seed=0)).all()
    top = found.holes[0]
    assert top.ratio_to_next > 3  # one dominant bar
    sectors = np.unique((theta[top.cycle] // (2 * np.pi / 8)).astype(int))
    assert sectors.size == 8  # the loop goes all the way round
    # Boundary samples are rows of the whole collection (mostly outside the pool), as brute force says.
    for h in found.holes:
        np.testing.assert_array_equal(h.boundary, _boundary_reference(z, h.cycle, 5, 1.5))
    assert set(found.seconds) >= {"landmarks", "resistance", "ripser", "describe"}


def test_find_holes_is_the_chapter_flow_of_before(rng):
    z, _ = _annulus(rng, 400, dim=12)
    cfg = HoleSearchConfig(n_landmarks=150, landmark_method="trimmed_farthest", graph_n_neighbors=8,
                           max_rips_points=120, seed=1)
    boundary = th.BoundaryConfig(boundary_n_neighbors=4)
    found = th.find_holes(z, cfg, boundary, n_holes=2, null_rounds=3)
    search = search_holes(z, cfg)
    null = null_persistence_draws(z[search.landmarks], lambda x: top_persistence(x, cfg, n_top=2),
                                  n_rounds=3, n_top=2, seed=1)
    holes = th.describe_holes(z, search, boundary, n_holes=2, null_draws=null)
    np.testing.assert_array_equal(found.search.landmarks, search.landmarks)
    np.testing.assert_array_equal(found.null_draws, null)
    assert [h.to_json() for h in found.holes] == [h.to_json() for h in holes]


def test_density_within_the_pool_equals_brute_force_on_the_pool(rng):
    x = rng.normal(size=(600, 8)) + np.repeat(rng.normal(0, 2, (3, 8)), 200, axis=0)
    pool = landmark_pool(600, 250, seed=4)
    n_trim = int(np.ceil(0.05 * 250))
    sparsity = _sparsity_reference(x[pool], 5, np.arange(250))
    keep = np.sort(np.argsort(-sparsity, kind="stable")[n_trim:])
    expected = pool[keep[_fps_reference(x[pool][keep], 40, seed=4)]]
    got = select_landmarks(x, 40, "trimmed_farthest", trim_fraction=0.05, density_n_neighbors=5, seed=4,
                           pool_size=250, density_rows="pool")
    np.testing.assert_array_equal(got, expected)
    # With the pool = all rows, "pool" and "all" are the same computation.
    np.testing.assert_array_equal(
        select_landmarks(x, 40, "trimmed_farthest", density_rows="pool", seed=4),
        select_landmarks(x, 40, "trimmed_farthest", density_rows="all", seed=4))


def test_find_holes_shares_one_row_index_for_density_and_boundaries(rng):
    # IVF visiting every list is exact, so the shared-index path must give the brute-force answers.
    z, theta = _annulus(rng, 3_000, dim=24)
    z = _unit(z).astype(np.float32)  # unit rows: cosine candidates rank like Euclidean distance
    cfg = HoleSearchConfig(n_landmarks=150, landmark_method="trimmed_farthest", landmark_pool_size=1_000,
                           search_method="ivf", ivf_nlist=8, ivf_nprobe=8, ivf_train_size=3_000,
                           graph_n_neighbors=8, max_rips_points=150, seed=0)
    found = th.find_holes(z, cfg, th.BoundaryConfig(boundary_n_neighbors=5), n_holes=1)
    exact = th.find_holes(z, HoleSearchConfig(**{**cfg.__dict__, "search_method": "exact"}),
                          th.BoundaryConfig(boundary_n_neighbors=5), n_holes=1)
    np.testing.assert_array_equal(found.search.landmarks, exact.search.landmarks)
    np.testing.assert_array_equal(found.holes[0].boundary, _boundary_reference(z, found.holes[0].cycle, 5, 1.5))
    assert found.seconds["index"] > 0
