"""Yearly novelty of new images against everything released before (paper eqs. 1-6).

For a release year ``t`` let ``I_t`` be the images released in ``t`` and ``P_t`` those released
before ``t`` (eq. 1). With l2-normalised embeddings ``z``:

* eq. 2: ``d_il = 1 - z_i . z_pi(i,l)``, the cosine distance of ``i in I_t`` to its ``l``-th nearest
  neighbour in ``P_t`` (k-NN by :mod:`skinmap.analysis.knn`, exact unless ``search_method="ivf"``);
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

Two ways through the years (:class:`NoveltyConfig`):

* ``search_method="exact"`` and ``null_sample_size=0`` (demo, mini): exact k-NN with the running
  top-``k`` above, every point of ``P_t`` scored for the null; this is eqs. 2-6 exactly.
* otherwise (the ``full`` profile: ``search_method="ivf"``): ONE
  :class:`skinmap.analysis.knn.VectorIndex` is trained once (IVF: k-means on a seeded sample of
  ``ivf_train_size`` rows of all years, so the lists cover later regions too) and grown year by
  year with the cohort's rows read from the (memory-mapped) embeddings in chunks; it holds exactly
  ``P_t`` when year ``t`` is searched. No rows are sorted or copied; memory is the index (``n x d``
  float32) plus one chunk. IVF visits ``ivf_nprobe`` lists per query, so it can miss a true
  neighbour and only ever *over*-estimates ``d_i``; :func:`novelty_error` measures the error
  against exact brute force on a sample of each year (recall@k, relative error of ``nu_t`` and
  of the null's centre).

Why a sampled null (``null_sample_size = m > 0``) is honest. The running top-``k`` costs a query of
all of ``P_t`` against each cohort, which an approximate index cannot do cheaply at 1.1M rows.
Instead ``m`` points of ``P_t`` are drawn uniformly without replacement (seeded per year), each
scored by its leave-self-out k-NN in ``P_t`` (``k + 1`` neighbours, self removed by identity), and
the ``B`` replicates resample these ``m`` scores. Two things change against scoring every point:
(1) the replicates' centre ``nu°_t`` is the mean of ``m`` scores instead of all ``|P_t|``, so it
carries sampling error ``sd(d^-) / sqrt(m) * sqrt(1 - m / |P_t|)``; it is reported per year in
:attr:`YearlyNovelty.null_centre_se` and checked against an exact estimate by :func:`novelty_error`
(on synthetic 64-d data, ``m = 1,500`` of ``3,000``-``3,800`` gave a relative error of the centre
of about 0.3%, within the reported error, and the reported error matched the centre's spread over
30 seeds; at ``m = 20,000`` and a relative spread ``sd / mean`` of about 0.3 it is about 0.2%,
small against the 1% budget of issue 19); (2) the replicates' spread (the CI) is that of a mean of
``|I_t|`` draws from the empirical distribution of the ``m`` scores, which estimates the one of
``P_t`` with the same ``1 / sqrt(m)`` accuracy; the CI is therefore neither systematically narrower
nor wider, only the centre moves, by the reported amount. Exact mode (``m = 0``) is unchanged.

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

from dataclasses import dataclass, field, fields
from typing import Callable, Literal

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from skinmap.analysis.knn import (SearchConfig, SearchMethod, VectorIndex, _exclude_self, knn_recall, knn_search,
                                  l2_normalize, training_sample)
from skinmap.analysis.resampling import CI_BOUNDS, bootstrap_draws, percentile_interval
from skinmap.config import check_knobs, knob, knob_bounds, knob_default, knob_description, with_knobs

__all__ = [
    "YEARLY_COLUMNS",
    "NoveltyConfig",
    "YearlyNovelty",
    "bootstrap_null",
    "yearly_novelty",
    "novelty_error",
    "NOVELTY_ERROR_COLUMNS",
    "stratified_novelty",
    "novelty_vs_prevalence",
    "ratio_interval",
]

YEARLY_COLUMNS = (
    "year", "n_new", "n_history", "n_neighbors", "n_bootstrap", "nu", "nu_null", "ci_low", "ci_high", "ratio",
)
DUPLICATE_COLUMNS = {"year": "int64", "row": "int64", "history_row": "int64", "similarity": "float64"}

OnSmallHistory = Literal["nan", "error"]


def _search_knob(name: str):
    """A :class:`NoveltyConfig` knob delegated to :class:`SearchConfig` (default, bounds and
    description declared once, there)."""
    return knob(knob_default(SearchConfig, name), **knob_bounds(SearchConfig, name),
                description=knob_description(SearchConfig, name))


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
    search_method: SearchMethod = _search_knob("search_method")
    ivf_nlist: int = _search_knob("ivf_nlist")
    ivf_nprobe: int = _search_knob("ivf_nprobe")
    ivf_train_size: int = _search_knob("ivf_train_size")
    ivf_min_rows: int = _search_knob("ivf_min_rows")
    ivf_pca_components: int = _search_knob("ivf_pca_components")
    ivf_refine_factor: int = _search_knob("ivf_refine_factor")
    null_sample_size: int = knob(
        0, ge=0, description="historical points whose leave-self-out score feeds the null per year "
                             "(0 = every point of P_t, exact eq. 5; > 0 = a seeded uniform sample)")

    def __post_init__(self) -> None:
        check_knobs(self)

    @property
    def search_config(self) -> SearchConfig:
        """The k-NN engine knobs (:class:`skinmap.analysis.knn.SearchConfig`), seeded by ``seed``."""
        return SearchConfig(**{f.name: getattr(self, f.name) for f in fields(SearchConfig)})


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
    ``neighbors``: (n, k) input rows of each image's ``k`` nearest historical neighbours as found by
    the search engine (``-1`` where none), for :func:`novelty_error`'s recall.
    ``null_centre_se``: year -> standard error of ``nu°_t`` due to sampling the null's points
    (``null_sample_size > 0``; 0 when every historical point is scored).
    """

    table: pd.DataFrame
    per_sample: np.ndarray
    null_replicates: dict[int, np.ndarray]
    cross_year_duplicates: pd.DataFrame
    n_missing_year: int = 0
    params: dict = field(default_factory=dict)
    neighbors: np.ndarray | None = None
    null_centre_se: dict[int, float] = field(default_factory=dict)


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

    z: np.ndarray | None  # l2-normalised rows sorted by (release year, input position); None: index path
    order: np.ndarray  # input row of each sorted row
    config: NoveltyConfig
    # Running top-k similarities of each already-released point among the other released
    # points (self excluded by identity), in sorted order: the leave-self-out pass of eq. 5.
    hist_sims: np.ndarray
    per_sample: np.ndarray
    neighbors: np.ndarray  # (n, k) input rows of each scored image's historical neighbours
    replicates: dict[int, np.ndarray] = field(default_factory=dict)
    duplicates: list[pd.DataFrame] = field(default_factory=list)
    null_centre_se: dict[int, float] = field(default_factory=dict)


def _new_cohort_neighbours(state: _YearState, year: int, start: int, stop: int) -> np.ndarray:
    """Eq. 2 search of the year's cohort ``I_t`` in its history ``P_t``; records exact duplicates.

    Returns the cohort's top-k similarities (``-inf`` padded where ``|P_t| < k``).
    """
    k = state.config.n_neighbors
    history, new = state.z[:start], state.z[start:stop]
    if start == 0:
        return np.full((stop - start, k), -np.inf, dtype=np.float32)
    res = knn_search(new, history, k, normalize=False)
    _record_neighbours(state, year, start, stop, res.indices, res.similarities)
    return _pad(res.similarities, k)


def _record_neighbours(state: _YearState, year: int, start: int, stop: int, ids: np.ndarray,
                       sims: np.ndarray) -> None:
    """Keep the cohort's neighbours (as input rows) and its exact duplicates of historical images;
    ``ids`` are positions in the release order (``-1`` = none)."""
    qi, li = np.nonzero(sims >= state.config.duplicate_similarity)
    if qi.size:
        state.duplicates.append(pd.DataFrame({
            "year": year, "row": state.order[start + qi], "history_row": state.order[ids[qi, li]],
            "similarity": sims[qi, li].astype(np.float64)}))
    width = min(ids.shape[1], state.neighbors.shape[1])
    state.neighbors[state.order[start:stop], :width] = np.where(ids[:, :width] >= 0,
                                                                 state.order[ids[:, :width]], -1)


def _score_year(state: _YearState, year: int, start: int, stop: int, new_sims: np.ndarray,
                leave_self_out: Callable[[], np.ndarray]) -> dict:
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
        loo = leave_self_out()
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


def _null_sample(n_hist: int, size: int, seed: int, year: int) -> np.ndarray:
    """Positions (in release order) of the historical points whose leave-self-out score feeds the
    null: all of them (``size == 0`` or ``size >= n_hist``) or a seeded uniform sample, sorted."""
    if size == 0 or size >= n_hist:
        return np.arange(n_hist)
    rng = np.random.default_rng([int(seed), int(year), _NULL_SAMPLE_STREAM])
    return np.sort(rng.choice(n_hist, size=size, replace=False))


_NULL_SAMPLE_STREAM = 5  # third seed word of the null's point sample (the bootstrap draws use two)
_ERROR_SAMPLE_STREAM = 7  # third seed word of novelty_error's query samples


def _indexed_leave_self_out(state: _YearState, index: VectorIndex, embeddings, n_hist: int, year: int) -> np.ndarray:
    """Eq. 5's ``d_j^{-}`` of the null's points of ``P_t`` (all, or ``null_sample_size`` of them):
    their ``k + 1`` neighbours in the index holding exactly ``P_t``, self removed by identity."""
    cfg = state.config
    k = cfg.n_neighbors
    ids = _null_sample(n_hist, cfg.null_sample_size, cfg.seed, year)
    res = index.search(embeddings, k + 1, rows=state.order[ids])
    _, sims = _exclude_self(res.indices, res.similarities, ids)
    loo = _distances(sims[:, :k]).mean(axis=1)
    m = ids.size
    # standard error of the null's centre from scoring m of n_hist points (finite population)
    se = float(loo.std(ddof=1) / np.sqrt(m) * np.sqrt(1.0 - m / n_hist)) if 1 < m < n_hist else 0.0
    state.null_centre_se[year] = se
    return loo


def _indexed_years(state: _YearState, embeddings, years_iter) -> list[dict]:
    """The years through ONE :class:`VectorIndex` (exact flat or IVF), trained once and grown by
    each cohort; ``P_t`` is exactly the rows added so far (ids = release order)."""
    cfg = state.config
    search = cfg.search_config
    k = cfg.n_neighbors
    index = VectorIndex(int(np.shape(embeddings)[1]), search)
    if search.search_method != "exact" and state.order.size:
        sample = training_sample(embeddings, search.ivf_train_size, seed=search.seed, rows=state.order)
        index.train(sample, n_total=state.order.size, normalize=False)
        del sample
    rows = []
    for year, start, stop in years_iter:
        year, start, stop = int(year), int(start), int(stop)
        cohort = state.order[start:stop]
        if start == 0:
            new_sims = np.full((stop - start, k), -np.inf, dtype=np.float32)
        else:
            res = index.search(embeddings, k, rows=cohort)  # eq. 2
            _record_neighbours(state, year, start, stop, res.indices, res.similarities)
            new_sims = res.similarities
        rows.append(_score_year(state, year, start, stop, new_sims,
                                lambda: _indexed_leave_self_out(state, index, embeddings, start, year)))
        index.add(embeddings, rows=cohort)  # P_{t+1} = P_t + I_t
    return rows


def _release_order(year_of: np.ndarray, valid: np.ndarray):
    """Rows sorted by (release year, input position), the years and each year's slice."""
    rows = np.flatnonzero(valid)
    order = rows[np.argsort(year_of[rows], kind="stable")]
    unique_years, starts = np.unique(year_of[order], return_index=True)
    stops = np.append(starts[1:], order.size)
    return order, unique_years, starts, stops


def yearly_novelty(
    embeddings: np.ndarray,
    years,
    config: NoveltyConfig | None = None,
    *,
    progress: bool = True,
    **knobs,
) -> YearlyNovelty:
    """Yearly novelty ``nu_t``, its bootstrap null and the ratio (eqs. 1-6).

    Parameters
    ----------
    embeddings : ndarray or memmap (n, d)
        Image embeddings, l2-normalised here (in row chunks on the index path).
    years : sequence (n,)
        Release years (missing allowed, see the module docstring for every edge case).
    config : NoveltyConfig, optional
        The knobs (``n_neighbors``, ``n_bootstrap``, ``ci``, ``seed``, ``on_small_history``,
        ``duplicate_similarity``, ``search_method``, ``ivf_*``, ``null_sample_size``); single knobs
        may also be given as keyword arguments.
    progress : bool
        Show a progress bar over the years.

    ``search_method="exact"`` with ``null_sample_size=0`` (the default): exact k-NN with the running
    leave-self-out top-k (one query of the new cohort against the history and one of the history
    against the new cohort per year). Otherwise one :class:`skinmap.analysis.knn.VectorIndex` is
    trained once and grown year by year, the cohort is searched in it and the null's points
    (``null_sample_size`` of them) query it with ``k + 1`` neighbours. The ``B`` replicates only
    resample precomputed leave-self-out scores in both cases.
    """
    cfg = with_knobs(NoveltyConfig, config, knobs)
    n = int(np.shape(embeddings)[0])
    year_of, valid = _as_years(years, n)
    k = cfg.n_neighbors

    # 1. Release order: the history of every year is a prefix of the sorted rows.
    order, unique_years, starts, stops = _release_order(year_of, valid)
    running = cfg.search_method == "exact" and cfg.null_sample_size == 0
    z_sorted = None
    if running:
        z = l2_normalize(embeddings)
        z_sorted = np.ascontiguousarray(z[order])
        del z
    elif np.ndim(embeddings) != 2:
        raise ValueError(f"expected a 2-D array (n, d), got shape {np.shape(embeddings)}")
    state = _YearState(z=z_sorted, order=order, config=cfg, hist_sims=np.empty((0, k), dtype=np.float32),
                       per_sample=np.full(n, np.nan), neighbors=np.full((n, k), -1, dtype=np.int64))

    # 2. Year by year: search the new cohort (eq. 2), score it (eqs. 3-6), grow the history.
    years_iter = zip(unique_years, starts, stops)
    if progress:
        years_iter = tqdm(list(years_iter), desc="novelty by year", unit="year")
    if running:
        table_rows = []
        for year, start, stop in years_iter:
            year, start, stop = int(year), int(start), int(stop)
            new_sims = _new_cohort_neighbours(state, year, start, stop)
            table_rows.append(_score_year(state, year, start, stop, new_sims,
                                          lambda: _distances(state.hist_sims).mean(axis=1)))
            _grow_history(state, start, stop, new_sims)
    else:
        table_rows = _indexed_years(state, embeddings, years_iter)

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
                    on_small_history=cfg.on_small_history, duplicate_similarity=cfg.duplicate_similarity,
                    **{f.name: getattr(cfg, f.name) for f in fields(SearchConfig) if f.name != "seed"},
                    null_sample_size=cfg.null_sample_size),
        neighbors=state.neighbors,
        null_centre_se=state.null_centre_se,
    )


NOVELTY_ERROR_COLUMNS = (
    "year", "n_queries", "nu_exact", "nu_approx", "rel_error", "recall_at_k",
    "n_null_queries", "nu_null_exact", "nu_null", "null_rel_error", "null_rel_se", "null_mc_rel_se",
)


def _exact_topk_by_year(embeddings, year_of: np.ndarray, valid: np.ndarray, queries: dict[int, np.ndarray],
                        k: int, chunk_size: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Exact top-``k`` (similarities, input rows) of each year's query rows among the rows released
    before that year: one sequential pass over ``embeddings`` in chunks, brute force per chunk."""
    import faiss

    qz = {t: l2_normalize(embeddings[r]) for t, r in queries.items() if r.size}
    best = {t: (np.full((q.shape[0], k), -np.inf, np.float32), np.full((q.shape[0], k), -1, np.int64))
            for t, q in qz.items()}
    n = int(np.shape(embeddings)[0])
    for start in tqdm(range(0, n, chunk_size), desc="exact k-NN check", unit="chunk",
                      disable=True if n <= chunk_size else None, leave=False):
        stop = min(start + chunk_size, n)
        chunk_years, chunk_valid = year_of[start:stop], valid[start:stop]
        if not chunk_valid.any():
            continue
        block = l2_normalize(embeddings[start:stop][chunk_valid])
        block_rows = np.arange(start, stop)[chunk_valid]
        block_years = chunk_years[chunk_valid]
        for t, q in qz.items():
            keep = block_years < t
            if not keep.any():
                continue
            xb = block[keep] if not keep.all() else block
            kk = min(k, xb.shape[0])
            sims, idx = faiss.knn(q, np.ascontiguousarray(xb), kk, metric=faiss.METRIC_INNER_PRODUCT)
            ids = np.where(idx >= 0, block_rows[keep][np.clip(idx, 0, None)], -1)
            s_all = np.concatenate([best[t][0], np.where(idx >= 0, sims, -np.inf)], axis=1)
            i_all = np.concatenate([best[t][1], ids], axis=1)
            top = np.argsort(-s_all, axis=1, kind="stable")[:, :k]
            best[t] = (np.take_along_axis(s_all, top, axis=1), np.take_along_axis(i_all, top, axis=1))
    return best


def novelty_error(
    embeddings,
    years,
    result: YearlyNovelty,
    *,
    n_queries: int = 2000,
    seed: int = 0,
    chunk_size: int = 65_536,
) -> pd.DataFrame:
    """The error of a (possibly approximate) :func:`yearly_novelty` result against exact k-NN on a sample.

    Per scored year ``t``: a seeded sample of ``n_queries`` new images ``i in I_t`` gets its exact
    ``k`` nearest neighbours in ``P_t`` (brute force over the rows of year ``< t``, one sequential
    pass over ``embeddings`` in chunks for all years), compared with ``result.per_sample`` on the
    same rows; and a seeded sample of ``n_queries`` points of ``P_t`` gets its exact leave-self-out
    score ``d_j^{-}`` (eq. 5, self excluded by identity), whose mean is an exact estimate of the
    null's centre, compared with ``result``'s ``nu_null``.

    Parameters
    ----------
    embeddings : ndarray or memmap (n, d)
        The embeddings given to :func:`yearly_novelty`.
    years : sequence (n,)
        The same release years.
    result : YearlyNovelty
        Its result.
    n_queries : int
        Sampled rows per year (new cohort and history each).
    seed : int
        Seed of the samples.
    chunk_size : int
        Rows read from ``embeddings`` at a time.

    Returns
    -------
    DataFrame
        One row per year with a defined ``nu``: ``year, n_queries, nu_exact, nu_approx`` (mean
        ``d_i`` of the sampled new rows, exact and from ``result``), ``rel_error = (nu_approx -
        nu_exact) / nu_exact``, ``recall_at_k`` (:func:`skinmap.analysis.knn.knn_recall` of
        ``result.neighbors`` on those rows), ``n_null_queries, nu_null_exact, nu_null,
        null_rel_error = (nu_null - nu_null_exact) / nu_null_exact``, ``null_rel_se``, the
        relative standard error of ``nu_null_exact`` itself (it is a sample mean too), and
        ``null_mc_rel_se``, the relative Monte Carlo standard error of ``nu_null`` as the mean of
        ``B`` bootstrap replicates (eq. 5; the exact computation has it too, so it is noise of the
        definition, not error of the search): ``sd_b(nu_t(b)) / sqrt(B) / nu_null``. A search is
        within a tolerance ``tol`` of exact when ``|null_rel_error| <= tol + 2 sqrt(null_rel_se**2 +
        null_mc_rel_se**2)``.
    """
    if n_queries < 1:
        raise ValueError(f"n_queries must be >= 1, got {n_queries}")
    k = int(result.params["n_neighbors"])
    n = int(np.shape(embeddings)[0])
    year_of, valid = _as_years(years, n)
    table = result.table.set_index("year")
    scored = [int(t) for t in table.index if np.isfinite(table.loc[t, "nu"])]
    new_q, null_q = {}, {}
    for t in scored:
        rng = np.random.default_rng([int(seed), t, _ERROR_SAMPLE_STREAM])
        cohort = np.flatnonzero(valid & (year_of == t))
        new_q[t] = np.sort(rng.choice(cohort, size=min(n_queries, cohort.size), replace=False))
        if np.isfinite(table.loc[t, "nu_null"]):
            hist = np.flatnonzero(valid & (year_of < t))
            null_q[t] = np.sort(rng.choice(hist, size=min(n_queries, hist.size), replace=False))
    queries = {t: np.concatenate([new_q[t], null_q.get(t, np.empty(0, np.int64))]) for t in scored}
    best = _exact_topk_by_year(embeddings, year_of, valid, queries, k + 1, chunk_size)
    out = []
    nan = float("nan")
    for t in scored:
        sims, ids = best[t]
        m_new = new_q[t].size
        d_exact = _distances(sims[:m_new, :k]).mean(axis=1)
        d_approx = result.per_sample[new_q[t]]
        nu_exact, nu_approx = float(d_exact.mean()), float(d_approx.mean())
        recall = (knn_recall(result.neighbors[new_q[t]], ids[:m_new, :k]) if result.neighbors is not None else nan)
        row = dict(year=t, n_queries=m_new, nu_exact=nu_exact, nu_approx=nu_approx,
                   rel_error=(nu_approx - nu_exact) / nu_exact if nu_exact > 0 else nan, recall_at_k=recall,
                   n_null_queries=0, nu_null_exact=nan, nu_null=float(table.loc[t, "nu_null"]),
                   null_rel_error=nan, null_rel_se=nan, null_mc_rel_se=nan)
        reps = result.null_replicates.get(t)
        if reps is not None and len(reps) > 1 and row["nu_null"] > 0:
            row["null_mc_rel_se"] = float(np.std(reps, ddof=1) / np.sqrt(len(reps)) / row["nu_null"])
        if t in null_q:
            _, s_loo = _exclude_self(ids[m_new:], sims[m_new:], null_q[t])
            loo = _distances(s_loo[:, :k]).mean(axis=1)
            centre = float(loo.mean())
            row.update(n_null_queries=loo.size, nu_null_exact=centre,
                       null_rel_error=(row["nu_null"] - centre) / centre if centre > 0 else nan,
                       null_rel_se=float(loo.std(ddof=1) / np.sqrt(loo.size) / centre)
                       if centre > 0 and loo.size > 1 else nan)
        out.append(row)
    return pd.DataFrame(out, columns=list(NOVELTY_ERROR_COLUMNS))


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
