"""Bootstrap resampling and percentile intervals, shared by novelty, Fréchet distance and probes.

* :func:`percentile_interval`: the central ``ci`` range of bootstrap replicates (the 2.5 / 97.5 %
  quantiles at ``ci = 0.95``), the interval of paper eqs. 5 (novelty null), 8 (FD) and of the probe
  scores of section 3.
* :func:`bootstrap_draws`: row numbers of resamples drawn with replacement, one seeded stream per
  key (novelty: one per release year, so a year's null does not change when other years are added).
* :func:`bootstrap_weights`: the same resamples as multiplicities per row (a weighted statistic then
  needs no copy of the data), optionally a cluster bootstrap over groups.
* :func:`subsampling_interval`: the interval of an estimate from replicates on subsamples drawn
  *without* replacement (m-out-of-n subsampling, Politis & Romano 1994), with the finite-population
  scale ``sqrt(s / (1 - s))`` for subsamples holding a share ``s`` of every dataset. Used for the
  size-fair Fréchet distance, where duplicated rows (a with-replacement resample) would bias FD up.

Every function takes the seed or generator explicitly and draws in a documented order, so any
other implementation (a baseline, a test) can reproduce the replicates.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["CI_BOUNDS", "SUBSAMPLE_FRACTION_BOUNDS", "percentile_interval", "subsampling_interval",
           "bootstrap_draws", "bootstrap_weights"]

#: Bounds of every central interval level ``ci`` (a "confidence" interval narrower than half of the
#: replicates is a mistake, 1 would be the whole range).
CI_BOUNDS = {"gt": 0.5, "lt": 1.0}
#: Bounds of the share ``s`` of every dataset drawn into one m-out-of-n subsample.
SUBSAMPLE_FRACTION_BOUNDS = {"gt": 0.0, "lt": 1.0}


def percentile_interval(replicates: np.ndarray, ci: float, *, axis: int | None = None):
    """Central ``ci`` percentile interval of bootstrap replicates.

    Parameters
    ----------
    replicates : ndarray
        Replicate statistics. With ``axis=None`` a 1-D array: non-finite replicates (an undefined
        score on a degenerate resample) are left out. With an ``axis``: quantiles along it, per
        element (e.g. a ``(B, m, m)`` stack of distance matrices).
    ci : float
        Central coverage, e.g. 0.95 for the 2.5 % and 97.5 % quantiles.
    axis : int, optional
        Axis of the replicates in a stacked array.

    Returns
    -------
    (low, high)
        Floats for ``axis=None`` (NaN when no replicate is finite); arrays otherwise (NaN when there
        are no replicates).
    """
    tail = (1.0 - ci) / 2.0
    replicates = np.asarray(replicates)
    if axis is None:
        finite = replicates[np.isfinite(replicates)]
        if finite.size == 0:
            return float("nan"), float("nan")
        low, high = np.quantile(finite, [tail, 1.0 - tail])
        return float(low), float(high)
    if replicates.shape[axis] == 0:
        empty = np.full(np.delete(replicates.shape, axis), np.nan)
        return empty, empty.copy()
    low, high = np.quantile(replicates, [tail, 1.0 - tail], axis=axis)
    return low, high


def subsampling_interval(estimate, replicates: np.ndarray, ci: float, fraction: float, *, axis: int = 0,
                         noise_variance=None, replicate_noise_variance=None):
    """Central ``ci`` interval of ``estimate`` from m-out-of-n subsampling replicates.

    Each replicate recomputes the estimator on subsamples drawn without replacement that hold a
    share ``s = fraction`` of every dataset's rows. For an estimator that averages over its rows
    (a mean, a U-statistic, an average over random subsamples), ``Var(T_s - T) = (1/s - 1) Var(T)``
    to first order (the finite-population correction), so the deviations ``T_s - T`` rescaled by
    ``c = sqrt(s / (1 - s))`` stand for the estimator's own error, and the interval is the basic
    (reflected) subsampling interval (Politis & Romano 1994; Politis, Romano & Wolf 1999, eq. 2.2
    with ``tau_b / tau_n`` replaced by the exact finite-population factor)::

        [T - c q_{1 - alpha/2}(T_s - Tbar),  T - c q_{alpha/2}(T_s - Tbar)],   alpha = 1 - ci,

    with ``Tbar`` the mean of the replicates, which equals ``T`` for an estimator without Monte
    Carlo noise of its own (``E[T_s | data] = T`` for a U-statistic) and keeps an estimator that
    averages over random subsamples from counting its Monte Carlo error twice. With such noise
    the replicates' spread holds it once, as ``T`` does, exactly when ``s = 1/2``.

    At ``s = 1/2``, ``c = 1`` (half-sampling). Unlike the percentile bootstrap it is centred on the
    estimate even when the estimator is biased by the subsample size, as long as that bias does not
    depend on the pool the subsamples come from.

    An estimator with Monte Carlo noise of known variance (an average over ``R`` random draws:
    the draws' variance / R) passes it as ``noise_variance`` (of the estimate) and
    ``replicate_noise_variance`` (the mean over replicates). The data part of the replicates'
    variance, ``V = max(Var(T_s) - replicate_noise, 0) * s / (1 - s)``, and the estimate's own noise
    then give its error variance ``V + noise``, and the deviations are rescaled to that
    (``c = sqrt((V + noise) / Var(T_s))`` per element) instead of by ``sqrt(s / (1 - s))``.

    Parameters
    ----------
    estimate : float or ndarray
        The estimate on all rows, shape of one replicate.
    replicates : ndarray
        The estimates on the subsamples, stacked along ``axis`` (shape ``(B, ...)`` for ``axis=0``).
    ci : float
        Central coverage, e.g. 0.95.
    fraction : float
        The share ``s`` of every dataset in one subsample, in (0, 1).
    axis : int
        Axis of the replicates.
    noise_variance, replicate_noise_variance : float or ndarray, optional
        Monte Carlo variance of the estimate and mean Monte Carlo variance of one replicate
        (shape of the estimate); both or neither.

    Returns
    -------
    (low, high)
        Arrays of the estimate's shape (floats for a scalar estimate); NaN without replicates.
    """
    if not SUBSAMPLE_FRACTION_BOUNDS["gt"] < fraction < SUBSAMPLE_FRACTION_BOUNDS["lt"]:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    replicates = np.asarray(replicates, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if (noise_variance is None) != (replicate_noise_variance is None):
        raise ValueError("give both noise_variance and replicate_noise_variance, or neither")
    scale = np.sqrt(fraction / (1.0 - fraction))
    if noise_variance is not None and replicates.shape[axis] > 1:
        spread = np.var(replicates, axis=axis, ddof=1)
        data = np.clip(spread - np.asarray(replicate_noise_variance, dtype=np.float64), 0.0, None)
        total = data * fraction / (1.0 - fraction) + np.asarray(noise_variance, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(spread > 0, np.sqrt(total / spread), 0.0)
    # Deviations from the replicates' own mean (= the estimate for a deterministic estimator that
    # averages over its rows): an estimator with Monte Carlo noise of its own (random subsamples)
    # would otherwise count its noise twice, once in the estimate and once in the centre.
    deviation = replicates - np.nanmean(replicates, axis=axis, keepdims=True)
    dev_low, dev_high = percentile_interval(deviation, ci, axis=axis)
    low, high = estimate - scale * dev_high, estimate - scale * dev_low
    if estimate.ndim == 0:
        return float(low), float(high)
    return low, high


def bootstrap_draws(n_pool: int, n_draw: int, n_bootstrap: int, seed: int, stream: int) -> Iterator[np.ndarray]:
    """``n_bootstrap`` arrays of ``n_draw`` row numbers drawn with replacement from ``range(n_pool)``.

    The generator is ``default_rng([seed, stream])``; replicate ``b`` is its ``b``-th
    ``rng.integers(0, n_pool, n_draw)`` call. Novelty uses the release year as ``stream``
    (eq. 5), so each year's null has its own reproducible draws.
    """
    rng = np.random.default_rng([int(seed), int(stream)])
    for _ in range(n_bootstrap):
        yield rng.integers(0, n_pool, size=n_draw)


def bootstrap_weights(
    n_rows: int,
    n_bootstrap: int,
    rng: np.random.Generator,
    *,
    groups: np.ndarray | None = None,
    chunk: int | None = None,
) -> Iterator[np.ndarray]:
    """Row multiplicities of ``n_bootstrap`` resamples, ``chunk`` at a time: ``(b, n_rows)`` floats.

    Without ``groups`` a resample draws ``n_rows`` rows with replacement; with ``groups`` it draws
    as many *groups* with replacement and keeps every row of each drawn group (the cluster
    bootstrap): images of one lesion are not independent evidence, and resampling them one by one
    would make the interval too narrow. One group per row reduces to the former.

    Each chunk of ``b`` replicates is one ``rng.integers(0, n_groups, (b, n_groups))`` call
    (``chunk`` default: all at once); the draws depend on the chunk size, so a caller keeps it fixed.
    """
    g = np.arange(n_rows) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    n_groups = int(g.max()) + 1 if g.size else 0
    chunk = max(1, n_bootstrap if chunk is None else chunk)
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        draws = rng.integers(0, n_groups, size=(b, n_groups))
        counts = np.bincount((np.arange(b)[:, None] * n_groups + draws).ravel(), minlength=b * n_groups)
        yield counts.reshape(b, n_groups)[:, g].astype(np.float64)
