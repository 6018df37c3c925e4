"""Bootstrap resampling and percentile intervals, shared by novelty, Fréchet distance and probes.

* :func:`percentile_interval`: the central ``ci`` range of bootstrap replicates (the 2.5 / 97.5 %
  quantiles at ``ci = 0.95``), the interval of paper eqs. 5 (novelty null), 8 (FD) and of the probe
  scores of section 3.
* :func:`bootstrap_draws`: row numbers of resamples drawn with replacement, one seeded stream per
  key (novelty: one per release year, so a year's null does not change when other years are added).
* :func:`bootstrap_weights`: the same resamples as multiplicities per row (a weighted statistic then
  needs no copy of the data), optionally a cluster bootstrap over groups.

Every function takes the seed or generator explicitly and draws in a documented order, so any
other implementation (a baseline, a test) can reproduce the replicates.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["CI_BOUNDS", "percentile_interval", "bootstrap_draws", "bootstrap_weights"]

#: Bounds of every central interval level ``ci`` (a "confidence" interval narrower than half of the
#: replicates is a mistake, 1 would be the whole range).
CI_BOUNDS = {"gt": 0.5, "lt": 1.0}


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
