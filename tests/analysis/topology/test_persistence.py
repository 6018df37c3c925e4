import numpy as np
import pytest

from skinmap.analysis.topology.persistence import (
    empirical_p_value,
    greedy_permutation,
    h1_persistence,
    null_max_persistence,
    ratio_to_next,
    shuffle_columns,
)


def _euclid(p):
    return np.linalg.norm(p[:, None] - p[None], axis=-1)


def test_unit_square_bar_is_born_at_side_dies_at_diagonal():
    sq = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)
    dgm = h1_persistence(_euclid(sq))
    assert len(dgm) == 1
    assert dgm.births[0] == pytest.approx(1.0)
    assert dgm.deaths[0] == pytest.approx(np.sqrt(2), rel=1e-6)


def test_hexagon_has_one_bar_sorted_by_persistence():
    ang = np.arange(6) * np.pi / 3
    hexagon = np.c_[np.cos(ang), np.sin(ang)]
    far_square = np.array([[10, 10], [10.1, 10], [10.1, 10.1], [10, 10.1]])
    dgm = h1_persistence(_euclid(np.r_[hexagon, far_square]))
    assert len(dgm) == 2
    assert dgm.persistence[0] == pytest.approx(np.sqrt(3) - 1, rel=1e-6)
    assert dgm.persistence[1] == pytest.approx(0.1 * (np.sqrt(2) - 1), rel=1e-4)


def test_greedy_permutation_covering_radius_is_brute_force(rng):
    d = _euclid(rng.normal(size=(80, 3)))
    rows, r_cover = greedy_permutation(d, 10)
    assert rows.size == 10 and len(set(rows)) == 10
    assert r_cover == pytest.approx(d[:, rows].min(axis=1).max())


def test_subsampled_diagram_reports_cover(rng):
    t = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    p = np.c_[np.cos(t), np.sin(t)] + rng.normal(0, 0.01, (200, 2))
    dgm = h1_persistence(_euclid(p), max_points=40)
    assert dgm.points.size == 40 and dgm.distance.shape == (40, 40)
    assert 0 < dgm.r_cover < 0.3
    # Rips of the circle: one bar dying near sqrt(3) (equilateral triangle inscribed).
    assert dgm.deaths[0] == pytest.approx(np.sqrt(3), abs=2 * dgm.r_cover + 0.02)


def test_ratio_to_next_and_p_value():
    np.testing.assert_allclose(ratio_to_next(np.array([8.0, 2.0, 1.0])), [4.0, 2.0, np.inf])
    assert empirical_p_value(5.0, np.array([1.0, 2.0, 6.0])) == pytest.approx(2 / 4)
    assert empirical_p_value(5.0, np.array([])) == 1.0


def test_shuffle_keeps_marginals(rng):
    x = rng.normal(size=(50, 4))
    y = shuffle_columns(x, rng)
    np.testing.assert_allclose(np.sort(y, axis=0), np.sort(x, axis=0))
    assert not np.allclose(y, x)


def test_null_runs_given_pipeline_per_round(rng):
    seen = []
    out = null_max_persistence(rng.normal(size=(20, 3)), lambda z: seen.append(z.shape) or 1.5, n_rounds=3)
    np.testing.assert_allclose(out, 1.5)
    assert seen == [(20, 3)] * 3
    with pytest.raises(ValueError, match="null method"):
        null_max_persistence(np.ones((3, 3)), lambda z: 0.0, method="nope")


def test_rejects_bad_matrices():
    with pytest.raises(ValueError, match="square"):
        h1_persistence(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="diagonal"):
        h1_persistence(np.ones((3, 3)))
