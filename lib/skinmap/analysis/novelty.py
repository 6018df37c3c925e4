"""Yearly novelty of new images against everything released before (paper eqs. 1-6).

For a release year ``t`` let ``I_t`` be the images released in ``t`` and ``P_t`` those released
before ``t`` (eq. 1). With l2-normalised embeddings ``z``:

* eq. 2: ``d_il = 1 - z_i . z_pi(i,l)``, the cosine distance of ``i in I_t`` to its ``l``-th nearest
  neighbour in ``P_t`` (exact k-NN, :func:`skinmap.analysis.knn.knn_search`);
* eq. 3: per-sample novelty ``d_i = mean_l d_il``;
* eq. 4: yearly novelty ``nu_t = mean_{i in I_t} d_i``;
* eq. 5: null: ``B`` pseudo-cohorts of ``|I_t|`` points drawn with replacement from ``P_t``; each
  drawn point ``j`` scores its mean distance to its ``k`` nearest neighbours in ``P_t`` *excluding
  itself* (``d_j^{-}``); ``nu_t(b)`` is the replicate's mean, ``nu°_t = mean_b nu_t(b)``, and the
  95% interval is the 2.5/97.5% quantiles of ``nu_t(b)``;
* eq. 6: the novelty ratio ``nu_t / nu°_t`` (about 1 = saturation, above 1 = new regions).

The paper's ``k`` is the knob ``n_neighbors`` and its ``B`` the knob ``n_bootstrap``
(:class:`NoveltyConfig`); the yearly table names its columns after the knobs.

Why the null needs no k-NN query per replicate: the leave-self-out score ``d_j^{-}`` of a point of
``P_t`` does not depend on which replicate drew it, so it is computed once for every point of
``P_t`` and each replicate only averages ``|I_t|`` of those precomputed numbers. The published code
queried the index again for every replicate, ``B`` times the cost.

Why years are processed cumulatively: ``P_{t+1} = P_t + I_t``, so each point's ``k`` nearest
neighbours inside ``P_{t+1}`` are the best ``k`` of (its neighbours inside ``P_t``) and (its
neighbours inside ``I_t``). Keeping a running top-``k`` per point turns the leave-self-out pass over
``P_t`` into one query of ``P_t`` against the small new cohort each year, instead of a full
``P_t x P_t`` search (about ``B/2`` times cheaper than per-replicate queries overall).

Self-exclusion is by identity (row number), never by rank: an exact duplicate of a point is a
legitimate neighbour at distance 0, the point itself never is. Exact duplicates of historical
images among a year's new images are listed in :attr:`YearlyNovelty.cross_year_duplicates`.

Defined results at the edges (``on_small_history="nan"``, the default):

* a year with no history (always the first year): ``nu``, ``nu_null``, CI and ratio are NaN;
* ``0 < |P_t| < k`` (k larger than the pool): NaN as well, since eq. 2 needs ``k`` neighbours;
* ``|P_t| == k``: ``nu`` is defined but the leave-self-out null needs ``k + 1`` points, so the
  null, CI and ratio are NaN;
* a null mean of exactly 0 (every historical image has ``k`` exact twins): ratio ``inf`` if
  ``nu > 0``, else NaN.

With ``on_small_history="error"`` the last two cases raise ``ValueError`` naming the year instead;
a year without history still gets a NaN row (there is nothing to be novel against).
Images with a missing release year take part in no year and are counted in ``n_missing_year``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from skinmap.analysis.knn import knn_search, l2_normalize
from skinmap.analysis.resampling import CI_BOUNDS, bootstrap_draws, percentile_interval
from skinmap.config import check_knobs, knob, with_knobs

__all__ = [
    "YEARLY_COLUMNS",
    "NoveltyConfig",
    "YearlyNovelty",
    "bootstrap_null",
    "yearly_novelty",
    "stratified_novelty",
    "novelty_vs_prevalence",
    "ratio_interval",
]

YEARLY_COLUMNS = (
    "year", "n_new", "n_history", "n_neighbors", "n_bootstrap", "nu", "nu_null", "ci_low", "ci_high", "ratio",
)
DUPLICATE_COLUMNS = {"year": "int64", "row": "int64", "history_row": "int64", "similarity": "float64"}

OnSmallHistory = Literal["nan", "error"]


@dataclass(frozen=True)
class NoveltyConfig:
    """The knobs of :func:`yearly_novelty` (eqs. 2-6), their defaults and ranges."""

    n_neighbors: int = knob(10, ge=1, le=1000, description="nearest historical neighbours per image (k of eq. 2)")
    n_bootstrap: int = knob(200, ge=1, le=100_000, description="bootstrap pseudo-cohorts B of the null (eq. 5)")
    ci: float = knob(0.95, **CI_BOUNDS, description="central quantile range of the null interval")
    seed: int = knob(0, ge=0, description="seed of the bootstrap draws (one stream per year)")
    on_small_history: OnSmallHistory = knob(
        "nan", description="a year with fewer than k + 1 historical images: NaN row ('nan') or stop ('error')")
    duplicate_similarity: float = knob(
        0.99999, gt=0.0, le=1.0,
        description="cosine similarity at or above which a new image duplicates a historical one")

    def __post_init__(self) -> None:
        check_knobs(self)


@dataclass(frozen=True)
class YearlyNovelty:
    """Result of :func:`yearly_novelty`.

    ``table``: one row per release year with :data:`YEARLY_COLUMNS`.
    ``per_sample``: eq. 3 novelty ``d_i`` per input row (NaN where the year has no defined novelty
    or the year is missing).
    ``null_replicates``: year -> the ``B`` replicate means ``nu_t(b)`` (eq. 5).
    ``cross_year_duplicates``: ``year, row, history_row, similarity`` for new images whose
    similarity to an earlier-year image is at least ``duplicate_similarity`` (within each image's
    ``k`` nearest historical neighbours).
    """

    table: pd.DataFrame
    per_sample: np.ndarray
    null_replicates: dict[int, np.ndarray]
    cross_year_duplicates: pd.DataFrame
    n_missing_year: int = 0
    params: dict = field(default_factory=dict)


def bootstrap_null(
    leave_self_out: np.ndarray,
    n_new: int,
    n_bootstrap: int,
    *,
    seed: int,
    year: int,
    ci: float = 0.95,
) -> tuple[np.ndarray, float, float, float]:
    """Eq. 5 from precomputed leave-self-out scores ``d_j^{-}`` of every point of ``P_t``.

    Replicate ``b`` averages the scores of the rows drawn by
    :func:`skinmap.analysis.resampling.bootstrap_draws` with the year as stream. Returns
    ``(replicates, nu_null, ci_low, ci_high)``; the interval is the central ``ci`` quantile range
    of the replicate means.
    """
    scores = np.asarray(leave_self_out, dtype=np.float64)
    reps = np.fromiter(
        (scores[idx].mean() for idx in bootstrap_draws(scores.size, n_new, n_bootstrap, seed, year)),
        dtype=np.float64,
        count=n_bootstrap,
    )
    low, high = percentile_interval(reps, ci)
    return reps, float(reps.mean()), low, high


def _merge_topk(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Row-wise the ``k`` largest similarities of two candidate lists (``-inf`` = no neighbour)."""
    both = np.concatenate([a, b], axis=1)
    if both.shape[1] > k:
        both = -np.partition(-both, k - 1, axis=1)[:, :k]
    return -np.sort(-both, axis=1)


def _pad(sims: np.ndarray, k: int) -> np.ndarray:
    if sims.shape[1] == k:
        return sims
    out = np.full((sims.shape[0], k), -np.inf, dtype=np.float32)
    out[:, : sims.shape[1]] = sims
    return out


def _distances(similarities: np.ndarray) -> np.ndarray:
    """Eq. 2 cosine distances in float64, clipped at 0 (float32 dot products of identical unit
    vectors can exceed 1 by round-off)."""
    return np.clip(1.0 - similarities.astype(np.float64), 0.0, None)


def _as_years(years, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer years and a validity mask from an int/float/pandas-nullable sequence."""
    series = pd.Series(years)
    if len(series) != n:
        raise ValueError(f"years has {len(series)} entries but embeddings has {n} rows")
    numeric = pd.to_numeric(series, errors="coerce")
    bad = series.notna() & numeric.isna()
    if bad.any():
        raise ValueError(f"years has {int(bad.sum())} non-numeric value(s), e.g. {series[bad].iloc[0]!r}")
    valid = numeric.notna().to_numpy()
    values = numeric.fillna(0).to_numpy()
    if not np.all(values == np.round(values)):
        raise ValueError("years must be whole numbers")
    return values.astype(np.int64), valid


@dataclass
class _YearState:
    """What :func:`yearly_novelty` carries from one year to the next (rows in release order)."""

    z: np.ndarray  # l2-normalised rows sorted by (release year, input position)
    order: np.ndarray  # input row of each sorted row
    config: NoveltyConfig
    # Running top-k similarities of each already-released point among the other released
    # points (self excluded by identity), in sorted order: the leave-self-out pass of eq. 5.
    hist_sims: np.ndarray
    per_sample: np.ndarray
    replicates: dict[int, np.ndarray] = field(default_factory=dict)
    duplicates: list[pd.DataFrame] = field(default_factory=list)


def _new_cohort_neighbours(state: _YearState, year: int, start: int, stop: int) -> np.ndarray:
    """Eq. 2 search of the year's cohort ``I_t`` in its history ``P_t``; records exact duplicates.

    Returns the cohort's top-k similarities (``-inf`` padded where ``|P_t| < k``).
    """
    k = state.config.n_neighbors
    history, new = state.z[:start], state.z[start:stop]
    if start == 0:
        return np.full((stop - start, k), -np.inf, dtype=np.float32)
    res = knn_search(new, history, k, normalize=False)
    qi, li = np.nonzero(res.similarities >= state.config.duplicate_similarity)
    if qi.size:
        state.duplicates.append(pd.DataFrame({
            "year": year, "row": state.order[start + qi], "history_row": state.order[res.indices[qi, li]],
            "similarity": res.similarities[qi, li].astype(np.float64)}))
    return _pad(res.similarities, k)


def _score_year(state: _YearState, year: int, start: int, stop: int, new_sims: np.ndarray) -> dict:
    """One row of the yearly table: eqs. 3-4 (``nu``), eq. 5 (null, CI) and eq. 6 (ratio)."""
    cfg = state.config
    k, n_hist, n_new = cfg.n_neighbors, start, stop - start
    nan = float("nan")
    row = dict(year=year, n_new=n_new, n_history=n_hist, n_neighbors=k, n_bootstrap=cfg.n_bootstrap,
               nu=nan, nu_null=nan, ci_low=nan, ci_high=nan, ratio=nan)
    if 0 < n_hist <= k and cfg.on_small_history == "error":
        raise ValueError(
            f"year {year}: {n_hist} historical image(s) but k = {k}; eq. 2 needs k and the "
            f"leave-self-out null k + 1 (use a smaller n_neighbors or on_small_history='nan')"
        )
    if n_hist >= k:
        d_i = _distances(new_sims).mean(axis=1)  # eqs. 2-3
        state.per_sample[state.order[start:stop]] = d_i
        row["nu"] = float(d_i.mean())  # eq. 4
    if n_hist >= k + 1:
        loo = _distances(state.hist_sims).mean(axis=1)
        reps, nu_null, low, high = bootstrap_null(loo, n_new, cfg.n_bootstrap, seed=cfg.seed, year=year, ci=cfg.ci)
        state.replicates[year] = reps
        # eq. 6; a null of exactly 0 (every historical point has k exact twins) has no ratio
        ratio = row["nu"] / nu_null if nu_null > 0 else (float("inf") if row["nu"] > 0 else nan)
        row.update(nu_null=nu_null, ci_low=low, ci_high=high, ratio=ratio)
    return row


def _grow_history(state: _YearState, start: int, stop: int, new_sims: np.ndarray) -> None:
    """``P_{t+1} = P_t + I_t``: old points gain their neighbours among the new cohort, new points
    keep (neighbours in ``P_t``) + (neighbours in ``I_t`` other than themselves)."""
    k = state.config.n_neighbors
    history, new = state.z[:start], state.z[start:stop]
    hist_sims = state.hist_sims
    if start > 0:
        hist_sims = _merge_topk(hist_sims, _pad(knn_search(history, new, k, normalize=False).similarities, k), k)
    within = _pad(knn_search(new, new, k, exclude_self=True, normalize=False).similarities, k)
    state.hist_sims = np.concatenate([hist_sims, _merge_topk(new_sims, within, k)], axis=0)


def yearly_novelty(
    embeddings: np.ndarray,
    years,
    config: NoveltyConfig | None = None,
    *,
    progress: bool = True,
    **knobs,
) -> YearlyNovelty:
    """Yearly novelty ``nu_t``, its bootstrap null and the ratio (eqs. 1-6), exact k-NN.

    Parameters
    ----------
    embeddings : ndarray (n, d)
        Image embeddings, l2-normalised here.
    years : sequence (n,)
        Release years (missing allowed, see the module docstring for every edge case).
    config : NoveltyConfig, optional
        The knobs (``n_neighbors``, ``n_bootstrap``, ``ci``, ``seed``, ``on_small_history``,
        ``duplicate_similarity``); single knobs may also be given as keyword arguments.
    progress : bool
        Show a progress bar over the years.

    Per year: one k-NN query of the new cohort against the history and one of the history against
    the new cohort; the ``B`` replicates only resample precomputed leave-self-out scores.
    """
    cfg = with_knobs(NoveltyConfig, config, knobs)
    z = l2_normalize(embeddings)
    n = z.shape[0]
    year_of, valid = _as_years(years, n)

    # 1. Release order: the history of every year is a prefix of the sorted rows (no copies).
    rows = np.flatnonzero(valid)
    order = rows[np.argsort(year_of[rows], kind="stable")]
    y_sorted = year_of[order]
    unique_years, starts = np.unique(y_sorted, return_index=True)
    stops = np.append(starts[1:], y_sorted.size)
    state = _YearState(z=np.ascontiguousarray(z[order]), order=order, config=cfg,
                       hist_sims=np.empty((0, cfg.n_neighbors), dtype=np.float32), per_sample=np.full(n, np.nan))

    # 2. Year by year: search the new cohort (eq. 2), score it (eqs. 3-6), grow the history.
    table_rows = []
    years_iter = zip(unique_years, starts, stops)
    if progress:
        years_iter = tqdm(list(years_iter), desc="novelty by year", unit="year")
    for year, start, stop in years_iter:
        year, start, stop = int(year), int(start), int(stop)
        new_sims = _new_cohort_neighbours(state, year, start, stop)
        table_rows.append(_score_year(state, year, start, stop, new_sims))
        _grow_history(state, start, stop, new_sims)

    # 3. The result tables.
    dups = (pd.concat(state.duplicates, ignore_index=True) if state.duplicates
            else pd.DataFrame({c: pd.Series(dtype=t) for c, t in DUPLICATE_COLUMNS.items()}))
    return YearlyNovelty(
        table=pd.DataFrame(table_rows, columns=list(YEARLY_COLUMNS)),
        per_sample=state.per_sample,
        null_replicates=state.replicates,
        cross_year_duplicates=dups,
        n_missing_year=int((~valid).sum()),
        params=dict(n_neighbors=cfg.n_neighbors, n_bootstrap=cfg.n_bootstrap, ci=cfg.ci, seed=cfg.seed,
                    on_small_history=cfg.on_small_history, duplicate_similarity=cfg.duplicate_similarity),
    )


def stratified_novelty(
    per_sample: np.ndarray,
    years,
    strata,
    *,
    by_year: bool = True,
    min_images: int = 1,
) -> pd.DataFrame:
    """Eq. 4 restricted to a stratum (ICD chapter or block): mean ``d_i`` of its scored images.

    Each image's novelty is measured against the *whole* history (eqs. 2-3), then averaged inside
    the stratum, so strata are comparable and cost nothing extra. Rows with NaN novelty (first
    year, missing year) or a missing stratum are left out. Returns ``[year,] stratum, n, novelty,
    sd`` with strata below ``min_images`` scored images dropped.
    """
    df = pd.DataFrame({"year": pd.Series(years).to_numpy(), "stratum": pd.Series(strata).to_numpy(),
                       "d": np.asarray(per_sample, dtype=np.float64)})
    if len(df) != len(np.asarray(per_sample)):
        raise ValueError("per_sample, years and strata must have the same length")
    df = df[df["d"].notna() & df["stratum"].notna()]
    keys = ["year", "stratum"] if by_year else ["stratum"]
    out = (df.groupby(keys, observed=True)["d"].agg(n="size", novelty="mean", sd="std").reset_index())
    out = out[out["n"] >= min_images].reset_index(drop=True)
    out["n"] = out["n"].astype(int)
    return out


def novelty_vs_prevalence(
    per_sample: np.ndarray,
    strata_scored,
    prevalence_strata,
) -> pd.DataFrame:
    """Mean novelty of each ICD block against its prevalence (number of catalog images).

    ``strata_scored`` is the block of each embedded row (aligned with ``per_sample``);
    ``prevalence_strata`` the block of every catalog row (metadata-only rows count towards
    prevalence). Returns ``stratum, n_images, n_scored, novelty`` sorted by prevalence; blocks with
    no scored image have NaN novelty.
    """
    counts = pd.Series(prevalence_strata).dropna().value_counts().rename("n_images")
    scored = stratified_novelty(per_sample, np.zeros(len(per_sample)), strata_scored, by_year=False)
    out = counts.rename_axis("stratum").reset_index().merge(
        scored[["stratum", "n", "novelty"]].rename(columns={"n": "n_scored"}), on="stratum", how="left")
    out["n_scored"] = out["n_scored"].fillna(0).astype(int)
    return out.sort_values(["n_images", "stratum"], ascending=[False, True]).reset_index(drop=True)


def ratio_interval(table: pd.DataFrame) -> pd.DataFrame:
    """The range of the ratio ``nu_t / nu_t(b)`` over the null's central interval (eq. 6).

    The paper reads a ratio "near 1" as a year that resamples its history. How near is set by
    the null: ``nu_t`` lies inside the null interval ``[ci_low, ci_high]`` exactly when
    ``1`` lies inside ``[nu_t / ci_high, nu_t / ci_low]``, so this interval is the one to hold
    against a published ratio of 1 (:func:`skinmap.analysis.claims.verdict`).

    Parameters
    ----------
    table : DataFrame
        :attr:`YearlyNovelty.table` (columns ``year``, ``nu``, ``ci_low``, ``ci_high``, ``ratio``).

    Returns
    -------
    DataFrame
        ``year``, ``ratio``, ``ratio_ci_low``, ``ratio_ci_high`` per row of ``table`` (NaN where the
        year has no ratio or a bound of the null interval is not positive).
    """
    nu = table["nu"].to_numpy(dtype=np.float64)
    low = table["ci_low"].to_numpy(dtype=np.float64)
    high = table["ci_high"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_low = np.where(high > 0, nu / high, np.nan)
        r_high = np.where(low > 0, nu / low, np.nan)
    return pd.DataFrame({"year": table["year"].to_numpy(), "ratio": table["ratio"].to_numpy(dtype=np.float64),
                         "ratio_ci_low": r_low, "ratio_ci_high": r_high})
