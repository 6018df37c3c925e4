"""Holes whose significance can be significant (issue 21, section 2): Monte Carlo p-values with enough
null rounds, max-statistic adjustment, density-aware landmarks, stability across landmark draws."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _topology_shapes import circle, embed  # noqa: E402

from skinmap.analysis.frechet import _available_cpus  # noqa: E402
from skinmap.analysis.topology.graph import (  # noqa: E402
    farthest_point_landmarks,
    select_landmarks,
    trimmed_farthest_landmarks,
)
from skinmap.analysis.topology.holes import (  # noqa: E402
    BoundaryConfig,
    describe_holes,
    hole_stability,
    jaccard,
    match_holes,
)
from skinmap.analysis.topology.persistence import (  # noqa: E402
    max_statistic_p_values,
    min_null_rounds,
    null_max_persistence,
    null_persistence_draws,
    p_value_floor,
    rank_p_values,
    shuffle_columns,
)
from skinmap.analysis.topology.search import HoleSearchConfig, search_holes, top_persistence  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]


def _configured_null_rounds(profile: str = "demo") -> int:
    return int(yaml.safe_load((ROOT / "params" / profile / "holes.yml").read_text())["null_rounds"])


# ------------------------------------------------------------------------------ p-value formula


def test_p_values_against_a_hand_count():
    observed = np.array([5.0, 3.0])
    null = np.array([[6.0, 2.0], [4.0, 1.0], [5.0, 4.0], [1.0, 0.5]])  # 4 rounds, top-2 persistences
    # max-statistic: both holes against the round maxima 6, 4, 5, 1
    # 5 -> #{6, 5} = 2 -> (1 + 2) / 5 ; 3 -> #{6, 4, 5} = 3 -> 4 / 5
    np.testing.assert_allclose(max_statistic_p_values(observed, null), [3 / 5, 4 / 5])
    np.testing.assert_allclose(max_statistic_p_values(observed, null[:, 0]), [3 / 5, 4 / 5])  # 1-D maxima
    # rank-matched (unadjusted): hole 2 against the second bars 2, 1, 4, 0.5 -> #{4} = 1 -> 2 / 5
    np.testing.assert_allclose(rank_p_values(observed, null), [3 / 5, 2 / 5])
    assert np.isnan(rank_p_values(np.array([5.0, 3.0, 1.0]), null)[2])  # no third null bar kept
    assert p_value_floor(99) == pytest.approx(0.01) and p_value_floor(0) == 1.0
    assert min_null_rounds(0.01) == 99 and min_null_rounds(0.05) == 19 and min_null_rounds(0.5) == 1
    assert p_value_floor(min_null_rounds(0.01)) <= 0.01 < p_value_floor(min_null_rounds(0.01) - 1)


def test_configured_replicates_can_reach_001():
    for profile in ("demo", "mini", "full"):
        assert p_value_floor(_configured_null_rounds(profile)) <= 0.01, profile


def test_null_draws_follow_the_null_stream_padded_and_sorted(rng):
    x = rng.normal(size=(30, 4))
    seen = []

    def fake(z):  # two bars: its column-0 sum and a small one, unsorted
        seen.append(z.copy())
        return np.array([0.1, float(z[:, 0].sum() ** 2)])

    draws = null_persistence_draws(x, fake, n_rounds=5, n_top=3, seed=7)
    assert draws.shape == (5, 3)
    np.testing.assert_allclose(draws[:, 2], 0.0)  # padding
    assert (np.diff(draws[:, :2], axis=1) <= 0).all()  # largest first
    # the same seeded stream of shuffled data sets as null_max_persistence
    np.testing.assert_allclose(draws[:, 0], null_max_persistence(x, lambda z: max(fake(z)), n_rounds=5, seed=7))
    for z in seen:  # shuffles keep every column's values
        np.testing.assert_allclose(np.sort(z, axis=0), np.sort(x, axis=0))


def _pid_bar(z):
    """One 'bar': the id of the process that ran the round (module level, so it pickles by reference)."""
    return np.array([float(os.getpid())])


def test_null_rounds_on_worker_processes_give_the_serial_stream(rng):
    """Rounds on 2 worker processes: every round's data set is the seeded stream's, drawn in order, and
    its diagram is Ripser's on that data set (a closure over the config, pickled to the workers)."""
    if _available_cpus() < 2:
        pytest.skip("needs 2 CPUs")
    pts, _ = circle(40, rng)
    x = embed(pts, rng, dim=6, noise=0.05)
    cfg = HoleSearchConfig(n_landmarks=40, graph_n_neighbors=8, max_rips_points=None)
    draws = null_persistence_draws(x, lambda z: top_persistence(z, cfg, n_top=2), n_rounds=4, n_top=2, seed=5,
                                   n_jobs=2)
    stream = np.random.default_rng(5)  # independent: the documented stream, rounds in order
    expected = np.zeros((4, 2))
    for r in range(4):
        bars = np.sort(top_persistence(shuffle_columns(x, stream), cfg, n_top=2))[::-1][:2]
        expected[r, : bars.size] = bars
    np.testing.assert_allclose(draws, expected, rtol=1e-12)


def test_null_rounds_go_to_workers_only_when_a_round_is_slow(rng, monkeypatch):
    if _available_cpus() < 2:
        pytest.skip("needs 2 CPUs")
    import skinmap.analysis.topology.persistence as persistence

    x = rng.normal(size=(20, 3))
    monkeypatch.setattr(persistence, "PARALLEL_ROUND_SECONDS", 1e9)  # every round counts as fast
    fast = null_persistence_draws(x, _pid_bar, n_rounds=3, seed=0)
    assert set(fast[:, 0]) == {float(os.getpid())}
    monkeypatch.setattr(persistence, "PARALLEL_ROUND_SECONDS", 0.0)  # every round counts as slow
    slow = null_persistence_draws(x, _pid_bar, n_rounds=3, seed=0)
    assert slow[0, 0] == os.getpid()  # round 0 always runs here
    assert os.getpid() not in set(slow[1:, 0])  # the rest on workers
    with pytest.raises(ValueError, match="n_jobs"):
        null_persistence_draws(x, _pid_bar, n_rounds=3, n_jobs=0)


# ------------------------------------------------------------------------------ planted structure


def test_noisy_circle_top_hole_is_significant_with_configured_rounds():
    rng = np.random.default_rng(3)
    pts, _ = circle(150, rng)
    x = embed(pts, rng, dim=32, noise=0.05)
    cfg = HoleSearchConfig(n_landmarks=150, graph_n_neighbors=10, max_rips_points=None)
    search = search_holes(x, cfg)
    n_rounds = _configured_null_rounds("demo")
    null = null_persistence_draws(x[search.landmarks], lambda z: top_persistence(z, cfg, n_top=2),
                                  n_rounds=n_rounds, n_top=2, seed=1)
    holes = describe_holes(x, search, n_holes=2, null_draws=null)
    assert holes[0].p_value <= 0.05
    assert holes[0].p_value == pytest.approx(p_value_floor(n_rounds))  # no null bar came close
    assert holes[1].p_value > 0.05  # the second bar is noise
    assert holes[1].p_value_unadjusted <= holes[1].p_value  # the rank-matched null bar is never larger


def test_gaussian_blob_false_positives_are_controlled():
    """Isotropic Gaussian: its coordinates are independent, so column shuffles are exact null draws and
    the max-statistic p-value of the top bar is uniform on {1/20, ..., 1} with 19 rounds."""
    cfg = HoleSearchConfig(n_landmarks=100, graph_n_neighbors=10, max_rips_points=None)
    top_p, any_sig = [], 0
    n_seeds = 20
    for seed in range(n_seeds):
        x = np.random.default_rng(seed).normal(size=(100, 16))
        search = search_holes(x, cfg)
        null = null_persistence_draws(x, lambda z: top_persistence(z, cfg, n_top=3), n_rounds=19, n_top=3,
                                      seed=1000 + seed)
        p_adj = max_statistic_p_values(search.diagram.persistence[:3], null)
        top_p.append(p_adj[0])
        any_sig += bool((p_adj <= 0.05).any())
    # Family-wise error at 0.05 over 20 data sets: expected 1; P(>= 4) = 0.016 under a calibrated test.
    assert any_sig <= 3
    # Not just conservative: the top bar's p-values spread like a uniform (mean 0.525, sd of mean ~0.065).
    assert 0.3 < np.mean(top_p) < 0.75


def test_trimmed_landmarks_avoid_planted_outliers(rng):
    blob = rng.normal(size=(400, 8)) * 0.1 + np.r_[1.0, np.zeros(7)]  # a tight cone around e_1
    outliers = np.eye(8)[1:] * 1.0 + rng.normal(0, 0.01, (7, 8))  # 7 isolated rows, orthogonal to it
    x = np.r_[blob, outliers]
    planted = set(range(400, 407))
    plain = set(farthest_point_landmarks(x, 30, seed=0).tolist())
    assert len(plain & planted) == 7  # the problem: farthest-point takes every outlier first
    trimmed = trimmed_farthest_landmarks(x, 30, trim_fraction=0.025, n_neighbors=5, seed=0)
    assert trimmed.size == 30 and len(set(trimmed.tolist())) == 30
    assert not set(trimmed.tolist()) & planted
    np.testing.assert_array_equal(select_landmarks(x, 30, "trimmed_farthest", trim_fraction=0.025,
                                                   density_n_neighbors=5), trimmed)
    # Never trims below the landmarks asked for; every row when asked for at least n.
    assert trimmed_farthest_landmarks(x, 405, trim_fraction=0.5).size == 405
    assert trimmed_farthest_landmarks(x, 500).size == 407


# ------------------------------------------------------------------------------ stability


def test_jaccard_and_matching_by_hand():
    assert jaccard([1, 2, 3], [2, 3, 4]) == pytest.approx(2 / 4)
    assert jaccard([], []) == 1.0 and jaccard([1], []) == 0.0
    idx, jac = match_holes([[1, 2, 3], [10, 11]], [[10, 11, 12], [3, 2, 1, 0]])
    assert idx.tolist() == [1, 0]
    np.testing.assert_allclose(jac, [3 / 4, 2 / 3])
    idx, jac = match_holes([[1]], [])
    assert idx.tolist() == [-1] and jac.tolist() == [0.0]


def _two_circles():
    rng = np.random.default_rng(5)
    small, _ = circle(100, rng, radius=1.0)
    big, _ = circle(160, rng, radius=2.0, center=(6.0, 0.0))
    return embed(np.r_[small, big], rng, dim=32, noise=0.05)


def test_stability_is_one_for_identical_draws():
    x = _two_circles()
    cfg = HoleSearchConfig(n_landmarks=200, graph_n_neighbors=10, max_rips_points=None)
    holes = describe_holes(x, search_holes(x, cfg), n_holes=2, boundary_n_neighbors=5)
    stab = hole_stability(x, holes, cfg, BoundaryConfig(boundary_n_neighbors=5), n_draws=2, fraction=1.0)
    assert len(stab) == 4
    np.testing.assert_allclose(stab["jaccard"], 1.0)
    np.testing.assert_allclose(stab["matched_persistence"], stab["persistence"])
    assert (stab["matched_rank"] == stab["rank"]).all()


def test_stability_finds_each_circle_again_on_subsamples():
    x = _two_circles()
    cfg = HoleSearchConfig(n_landmarks=300, graph_n_neighbors=10, max_rips_points=None)
    holes = describe_holes(x, search_holes(x, cfg), n_holes=2, boundary_n_neighbors=5)
    stab = hole_stability(x, holes, cfg, BoundaryConfig(boundary_n_neighbors=5), n_draws=3,
                          fraction=0.8, seed=2)
    # Each reference hole is matched to the loop on the same circle: a clear overlap, though not identical.
    assert (stab["jaccard"] > 0.3).all() and (stab["jaccard"] < 1.0).any()
    small = {h.rank: np.mean(np.asarray(h.boundary) < 100) > 0.5 for h in holes}
    assert sorted(small.values()) == [False, True]
