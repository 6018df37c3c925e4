"""Size-fair Fréchet distance and uniqueness (issue 21, section 1) against known answers.

Known answers: two samples of one Gaussian (true FD 0), a small dataset drawn from a big one's
distribution (true uniqueness equal to the big one's), Gaussians with a closed-form FD for the
interval's coverage on synthetic replications, and exact lines in 1/m for the extrapolation.
"""

from __future__ import annotations

import numpy as np
import pytest

from skinmap.analysis.resampling import subsampling_interval
from skinmap.analysis.similarity import (
    SIZE_FAIR_COLUMNS,
    SizeFairConfig,
    dataset_similarity,
    extrapolation_weights,
    size_fair_frechet,
    size_fair_similarity,
    size_fair_uniqueness,
    uniqueness_differences,
    subsample_sizes,
    uniqueness,
)


def test_extrapolation_recovers_an_exact_line_in_inverse_size():
    sizes = np.array([20, 27, 40, 80])
    w0, w1 = extrapolation_weights(sizes)
    fd = 0.7 + 3.0 / sizes
    assert w0 @ fd == pytest.approx(0.7, abs=1e-12)
    assert w1 @ fd == pytest.approx(3.0, abs=1e-10)


def test_subsample_sizes_are_even_in_inverse_size_and_capped_by_the_smallest_dataset():
    cfg = SizeFairConfig(n_sizes=4, min_size_fraction=0.25, subsample_fraction=0.5)
    sizes = subsample_sizes(400, cfg)
    assert sizes.max() == 200 and sizes.min() == 50
    np.testing.assert_allclose(np.diff(1.0 / sizes), np.diff(1.0 / sizes)[0], rtol=0.05)
    with pytest.raises(ValueError, match="too small"):
        subsample_sizes(5, cfg)


def test_subsampling_interval_of_a_mean_matches_the_normal_closed_form(rng):
    # Half-samples (s = 1/2) of n iid N(0, 1) rows: the interval of the mean must be about
    # mean +- 1.96 / sqrt(n) (finite-population factor sqrt(s / (1 - s)) = 1).
    n, reps = 4000, 4000
    x = rng.standard_normal(n)
    half = np.array([x[rng.choice(n, n // 2, replace=False)].mean() for _ in range(reps)])
    low, high = subsampling_interval(x.mean(), half, 0.95, 0.5)
    assert (high - low) / 2 == pytest.approx(1.959964 / np.sqrt(n), rel=0.06)
    assert (low + high) / 2 == pytest.approx(x.mean(), abs=0.1 / np.sqrt(n))
    # s = 1/4: deviations are sqrt(3) times wider, the factor sqrt(1/3) brings them back
    quarter = np.array([x[rng.choice(n, n // 4, replace=False)].mean() for _ in range(reps)])
    low4, high4 = subsampling_interval(x.mean(), quarter, 0.95, 0.25)
    assert (high4 - low4) / 2 == pytest.approx(1.959964 / np.sqrt(n), rel=0.06)


def test_two_samples_of_one_gaussian_raw_fd_positive_size_fair_interval_covers_zero():
    # n = 200 and n = 5,000 rows of one anisotropic Gaussian in d = 256: the true FD is 0.
    rng = np.random.default_rng(21)
    d = 256
    scale = 1.0 / np.sqrt(np.arange(1, d + 1))
    groups = {"small": rng.standard_normal((200, d)) * scale, "big": rng.standard_normal((5000, d)) * scale}
    raw = dataset_similarity(groups, n_bootstrap=0, progress=False).table.iloc[0]
    table, _ = size_fair_similarity(groups, progress=False)
    fair = table.iloc[0]
    assert list(table.columns) == list(SIZE_FAIR_COLUMNS)
    assert fair["ci_low"] <= 0.0 <= fair["ci_high"]
    assert raw["fd"] > 5 * fair["ci_high"] > 0  # the raw FD is a size artefact, far outside


def _four_datasets(rng, d=48):
    """big and small share one Gaussian; far is the most distinct; mid lies in between."""
    scale = 1.0 / np.sqrt(np.arange(1, d + 1))
    shift = np.zeros(d)
    shift[:3] = 0.25

    def draw(n, k):
        return rng.standard_normal((n, d)) * scale + k * shift

    return {"big": draw(3000, 0), "small": draw(100, 0), "mid": draw(2000, 1), "far": draw(2000, 2)}


def test_small_dataset_from_a_big_ones_distribution_is_not_ranked_most_unique():
    rng = np.random.default_rng(7)
    groups = _four_datasets(rng)
    names = list(groups)
    raw = uniqueness(dataset_similarity(groups, n_bootstrap=0, progress=False).matrix)
    _, res = size_fair_similarity(groups, n_components=16, n_subsamples=30, progress=False)
    fair = size_fair_uniqueness(names, res)
    # the planted artefact: the raw FD ranks the 100-image copy of "big" first
    assert raw.iloc[0]["dataset"] == "small"
    assert fair.iloc[0]["dataset"] == "far"
    assert fair.iloc[0]["dataset"] != "small"
    # small and big share a distribution: their size-fair uniqueness intervals overlap
    f = fair.set_index("dataset")
    assert f.loc["small", "ci_low"] <= f.loc["big", "ci_high"] and f.loc["big", "ci_low"] <= f.loc["small", "ci_high"]


def _coverage(replications: int, d: int, n_draws: int, n_subsamples: int, ci: float = 0.95) -> float:
    """Share of replications whose size-fair interval covers the closed-form FD of two Gaussians."""
    delta = np.full(d, 0.3)
    sd = np.linspace(0.6, 1.4, d)
    truth = delta @ delta + np.sum((1.0 - sd) ** 2)  # commuting covariances: eq. 8 in closed form
    hits = 0
    for r in range(replications):
        g = np.random.default_rng(1000 + r)
        a, b = g.standard_normal((400, d)), delta + g.standard_normal((150, d)) * sd
        res = size_fair_frechet([a, b], n_draws=n_draws, n_subsamples=n_subsamples, ci=ci, seed=r)
        hits += res.ci_low[0, 1] <= truth <= res.ci_high[0, 1]
    return hits / replications


def test_size_fair_interval_coverage_fast():
    # 60 replications (binomial sd ~0.03 at 0.95): a loose band, the slow test below is the real check
    assert 0.85 <= _coverage(60, d=3, n_draws=10, n_subsamples=20) <= 1.0


@pytest.mark.slow
def test_size_fair_interval_coverage_200_replications():
    assert 0.90 <= _coverage(200, d=4, n_draws=20, n_subsamples=40) <= 0.99


def test_uniqueness_differences_separate_a_planted_outlier_and_not_two_copies():
    """far is the most distinct dataset: its paired uniqueness difference to every other dataset has
    an interval above 0; small and big share one distribution, so their difference's interval
    holds 0; and the differences equal the differences of :func:`size_fair_uniqueness` scores."""
    rng = np.random.default_rng(7)
    groups = _four_datasets(rng)
    names = list(groups)
    _, res = size_fair_similarity(groups, n_components=16, n_subsamples=30, progress=False)
    fair = size_fair_uniqueness(names, res).set_index("dataset")
    far = uniqueness_differences(names, res, "far").set_index("dataset")
    assert set(far.index) == {"big", "small", "mid"}
    assert (far["ci_low"] > 0).all()
    for other in far.index:
        assert far.loc[other, "difference"] == pytest.approx(fair.loc["far", "uniqueness"] - fair.loc[other, "uniqueness"])
    twin = uniqueness_differences(names, res, "small").set_index("dataset")
    assert twin.loc["big", "ci_low"] <= 0 <= twin.loc["big", "ci_high"]
    assert twin.loc["far", "ci_high"] < 0
