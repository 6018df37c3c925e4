"""Category shares with intervals in the paper's two views: labelled rows, and the whole atlas with imputed values.

The paper reports demographic shares (FST V-VI, ages 0-17, female, ...) both over the rows whose
field was labelled and over the whole atlas with missing values imputed by the linear probes
(paper section 3 and Fig. 3). A share over imputed values is uncertain twice: the rows are a sample,
and each imputed value is a guess. Both are carried into the interval here by *multiple imputation*:

1. every row gets a probability vector over the field's classes (:func:`categorical_probabilities`,
   :func:`interval_bin_probabilities`): one-hot where the value was labelled; for an imputed
   categorical value, the probe's probability ``p`` on its chosen class and ``1 - p`` spread over the
   other classes in proportion to their labelled frequencies (the imputation export keeps only the
   chosen class's probability); for an imputed age, the split-conformal interval read as a uniform
   distribution over ``[lo, hi]``;
2. each of ``n_draws`` replicates resamples the rows with replacement (the sampling error) and then
   draws one class per row from its probability vector (the imputation error)
   (:func:`sample_labels`, :func:`share_draws`);
3. the interval is the central ``ci`` percentile range of the replicate shares
   (:func:`~skinmap.analysis.resampling.percentile_interval`).

With only labelled rows (one-hot vectors), step 2 reduces to the ordinary row bootstrap.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from skinmap.analysis.icd_coverage import cumulative_icd_coverage
from skinmap.analysis.resampling import percentile_interval

__all__ = [
    "categorical_probabilities",
    "interval_bin_probabilities",
    "sample_labels",
    "share_draws",
    "share_summary",
    "VIEWS",
    "view_probabilities",
    "icd_coverage_by_fst",
    "GAP_GROUP",
]


def _key(value) -> str:
    """How a class is matched: ``5``, ``5.0`` and ``"5"`` are one class."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def categorical_probabilities(
    observed: pd.Series,
    imputed: pd.Series | None,
    imputed_prob: pd.Series | None,
    classes: Sequence,
) -> np.ndarray:
    """Per-row class probabilities of a categorical field from labelled and imputed values.

    Parameters
    ----------
    observed : Series of shape (n,)
        The labelled value, NA where the field is missing.
    imputed : Series of shape (n,) or None
        The probe's chosen class where the row was imputed, NA elsewhere (``None``: labelled view).
    imputed_prob : Series of shape (n,) or None
        The probe's probability of that class (NA is read as 1: no uncertainty known).
    classes : sequence of length k
        The field's classes; values outside them count as missing.

    Returns
    -------
    ndarray of shape (n, k)
        One-hot rows for labelled values; ``p`` on the chosen class and ``1 - p`` spread over the
        other classes in proportion to their labelled frequencies for imputed values (evenly when no
        other class is labelled); a row of NaN where the row has neither.
    """
    classes = list(classes)
    index = {_key(c): j for j, c in enumerate(classes)}
    k = len(classes)
    obs = pd.Series(observed).reset_index(drop=True)
    n = len(obs)
    out = np.full((n, k), np.nan)
    obs_j = np.array([index.get(_key(v), -1) if pd.notna(v) else -1 for v in obs], dtype=int)
    has_obs = obs_j >= 0
    out[has_obs] = 0.0
    out[np.flatnonzero(has_obs), obs_j[has_obs]] = 1.0
    if imputed is None:
        return out
    freq = np.bincount(obs_j[has_obs], minlength=k).astype(float)
    imp = pd.Series(imputed).reset_index(drop=True)
    prob = (pd.Series(imputed_prob).reset_index(drop=True) if imputed_prob is not None
            else pd.Series(np.ones(n)))
    prob = pd.to_numeric(prob, errors="coerce").fillna(1.0).clip(0.0, 1.0).to_numpy()
    for i in np.flatnonzero(~has_obs):
        v = imp.iloc[i]
        j = index.get(_key(v), -1) if pd.notna(v) else -1
        if j < 0:
            continue
        rest = freq.copy()
        rest[j] = 0.0
        rest = rest / rest.sum() if rest.sum() > 0 else np.where(np.arange(k) == j, 0.0, 1.0 / max(k - 1, 1))
        row = (1.0 - prob[i]) * rest
        row[j] = prob[i] if k > 1 else 1.0
        out[i] = row / row.sum()
    return out


def interval_bin_probabilities(
    value: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    edges: Sequence[float],
) -> np.ndarray:
    """Probability of each bin of a continuous field (age) per row, from a value or an interval.

    Parameters
    ----------
    value : ndarray of shape (n,)
        The labelled value (NaN where missing).
    low, high : ndarray of shape (n,)
        An imputed row's prediction interval (NaN for labelled or missing rows); the value is read
        as uniform over ``[low, high]`` (a point when ``low == high``).
    edges : sequence of length k + 1
        Increasing bin edges; bin ``j`` is ``[edges[j], edges[j + 1])``.

    Returns
    -------
    ndarray of shape (n, k)
        One-hot for a labelled value inside the edges, interval mass per bin for an imputed row
        (renormalised to the part inside the edges), NaN rows otherwise.
    """
    edges = np.asarray(edges, dtype=float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("edges must be at least two increasing numbers")
    value, low, high = (np.asarray(a, dtype=float) for a in (value, low, high))
    n, k = value.size, edges.size - 1
    out = np.full((n, k), np.nan)
    has = np.isfinite(value) & (value >= edges[0]) & (value < edges[-1])
    j = np.clip(np.searchsorted(edges, value[has], side="right") - 1, 0, k - 1)
    out[has] = 0.0
    out[np.flatnonzero(has), j] = 1.0
    todo = np.flatnonzero(~np.isfinite(value) & np.isfinite(low) & np.isfinite(high))
    for i in todo:
        lo, hi = sorted((low[i], high[i]))
        if hi - lo <= 0:
            mass = ((edges[:-1] <= lo) & (lo < edges[1:])).astype(float)
        else:
            mass = np.clip(np.minimum(hi, edges[1:]) - np.maximum(lo, edges[:-1]), 0.0, None) / (hi - lo)
        if mass.sum() > 0:
            out[i] = mass / mass.sum()
    return out


#: The paper's two views of a demographic share: rows with the field labelled, and the whole atlas
#: with missing values imputed by the probes.
VIEWS: tuple[str, ...] = ("labelled", "imputed")


def view_probabilities(
    catalog: pd.DataFrame,
    imputed: pd.DataFrame | None,
    field: str,
    view: str,
    *,
    classes: Sequence | None = None,
    edges: Sequence[float] | None = None,
) -> np.ndarray:
    """Per-row class probabilities of one catalog field in one of the paper's :data:`VIEWS`.

    Parameters
    ----------
    catalog : DataFrame of n rows
        With ``uid`` and ``field`` (labelled values, NA where missing).
    imputed : DataFrame or None
        The imputation export (``uid``, ``<field>_imputed``, ``<field>_is_imputed`` and
        ``<field>_imputed_prob`` or ``_lo`` / ``_hi``), any row order; None: no imputation.
    field : str
    view : {"labelled", "imputed"}
    classes : sequence, optional
        Classes of a categorical field (:func:`categorical_probabilities`).
    edges : sequence of float, optional
        Bin edges of a continuous field (:func:`interval_bin_probabilities`); give exactly one of
        ``classes`` and ``edges``.

    Returns
    -------
    ndarray of shape (n, k)
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    if (classes is None) == (edges is None):
        raise ValueError("give exactly one of classes and edges")
    observed = catalog[field].reset_index(drop=True)
    n = len(observed)
    use = view == "imputed" and imputed is not None and f"{field}_imputed" in imputed
    if use:
        aligned = imputed.set_index(imputed["uid"].astype(str)).reindex(catalog["uid"].astype(str))
        flag = aligned[f"{field}_is_imputed"].fillna(False).astype(bool).to_numpy() & observed.isna().to_numpy()
    if classes is not None:
        if not use:
            return categorical_probabilities(observed, None, None, classes)
        values = aligned[f"{field}_imputed"].reset_index(drop=True).where(flag)
        prob = aligned.get(f"{field}_imputed_prob")
        prob = None if prob is None else prob.reset_index(drop=True)
        return categorical_probabilities(observed, values, prob, classes)
    value = pd.to_numeric(observed, errors="coerce").to_numpy(dtype=float)
    low = np.full(n, np.nan)
    high = np.full(n, np.nan)
    if use:
        point = pd.to_numeric(aligned[f"{field}_imputed"], errors="coerce").to_numpy(dtype=float)
        for name, out in (("lo", low), ("hi", high)):
            col = aligned.get(f"{field}_imputed_{name}")
            out[:] = point if col is None else pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
        low[~flag] = np.nan
        high[~flag] = np.nan
    return interval_bin_probabilities(value, low, high, edges)


def sample_labels(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One class index per row drawn from its probability vector (inverse-CDF, one uniform per row).

    Parameters
    ----------
    probabilities : ndarray of shape (n, k)
        Rows summing to one (no NaN rows: drop them first).
    rng : numpy Generator

    Returns
    -------
    ndarray of shape (n,), int
    """
    probabilities = np.asarray(probabilities, dtype=float)
    cdf = np.cumsum(probabilities, axis=1)
    u = rng.random(probabilities.shape[0])[:, None] * cdf[:, -1:]
    return np.minimum((u >= cdf).sum(axis=1), probabilities.shape[1] - 1)


def share_draws(
    probabilities: np.ndarray,
    *,
    n_draws: int,
    seed: int,
    resample_rows: bool = True,
) -> np.ndarray:
    """Replicate class shares under row resampling and label sampling (multiple imputation).

    Parameters
    ----------
    probabilities : ndarray of shape (n, k)
        Per-row class probabilities; NaN rows (no value) are left out.
    n_draws : int
        Number of replicates.
    seed : int
        Seed of the generator; each replicate draws ``n`` row numbers (when ``resample_rows``), then
        ``n`` uniforms for the labels, in that order.
    resample_rows : bool, default True
        Resample rows with replacement in each replicate (False: only the imputation error).

    Returns
    -------
    ndarray of shape (n_draws, k)
        Class shares of each replicate (NaN when no row has a value).
    """
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    p = np.asarray(probabilities, dtype=float)
    p = p[np.all(np.isfinite(p), axis=1)]
    n, k = p.shape
    out = np.full((n_draws, k), np.nan)
    if n == 0:
        return out
    rng = np.random.default_rng(seed)
    for b in range(n_draws):
        rows = p[rng.integers(0, n, n)] if resample_rows else p
        out[b] = np.bincount(sample_labels(rows, rng), minlength=k) / n
    return out


def share_summary(
    probabilities: np.ndarray,
    groups: dict[str, Sequence[int]],
    *,
    n_draws: int,
    ci: float,
    seed: int,
) -> pd.DataFrame:
    """Share of each named group of classes with its ``ci`` interval from :func:`share_draws`.

    Parameters
    ----------
    probabilities : ndarray of shape (n, k)
    groups : dict of name -> class indices
        E.g. ``{"V-VI": [4, 5]}`` for Fitzpatrick types 1-6 in columns 0-5.
    n_draws, ci, seed
        As in :func:`share_draws` and :func:`~skinmap.analysis.resampling.percentile_interval`.

    Returns
    -------
    DataFrame with columns ``group, share, ci_low, ci_high, n_rows, n_imputed``
        ``share`` is the expected share (mean class probability over rows with a value),
        ``n_rows`` the rows with a value and ``n_imputed`` those whose vector is not one-hot.
    """
    p = np.asarray(probabilities, dtype=float)
    p = p[np.all(np.isfinite(p), axis=1)]
    draws = share_draws(p, n_draws=n_draws, seed=seed)
    n_imputed = int((p.max(axis=1) < 1.0).sum()) if len(p) else 0
    rows = []
    for name, members in groups.items():
        members = list(members)
        share = float(p[:, members].sum(axis=1).mean()) if len(p) else float("nan")
        low, high = percentile_interval(draws[:, members].sum(axis=1), ci)
        rows.append({"group": name, "share": share, "ci_low": low, "ci_high": high,
                     "n_rows": int(len(p)), "n_imputed": n_imputed})
    return pd.DataFrame(rows, columns=["group", "share", "ci_low", "ci_high", "n_rows", "n_imputed"])


#: The group row of :func:`icd_coverage_by_fst` holding the coverage gap FST I-II minus V-VI.
GAP_GROUP = "gap"


def icd_coverage_by_fst(
    catalog: pd.DataFrame,
    fst_probabilities: np.ndarray | None,
    *,
    n_draws: int,
    ci: float,
    seed: int,
) -> pd.DataFrame:
    """Cumulative ICD-10 coverage per FST group with imputed skin types, and its imputation interval.

    Parameters
    ----------
    catalog : DataFrame of n rows
        With ``icd10_code``, ``release_year`` and ``fst`` (labelled types, NA where missing).
    fst_probabilities : ndarray of shape (n, 6) or None
        Per-row probabilities of types 1-6 (:func:`categorical_probabilities`); ``None`` gives the
        labelled view (no draws, the interval is the point).
    n_draws, ci, seed
        Replicates drawing one type per unlabelled row (the labelled types stay fixed), their
        central interval level and seed. Only the imputation's uncertainty enters: a distinct-code
        count has no unbiased row bootstrap.

    Returns
    -------
    DataFrame ``year, fst_group, n_codes, fraction, ci_low, ci_high``
        Groups ``I-II``, ``III-IV``, ``V-VI`` and :data:`GAP_GROUP` (fraction of I-II minus V-VI)
        of :func:`~skinmap.analysis.icd_coverage.cumulative_icd_coverage`; ``fraction`` is the mean over draws.
    """
    groups = ["I-II", "III-IV", "V-VI"]
    base = catalog[["icd10_code", "release_year", "fst"]].reset_index(drop=True).copy()

    def table(fst: pd.Series) -> pd.DataFrame:
        cov = cumulative_icd_coverage(base.assign(fst=fst))
        wide = cov[cov["fst_group"].isin(groups)].pivot_table(index="year", columns="fst_group",
                                                               values="fraction").reindex(columns=groups)
        wide[GAP_GROUP] = wide["I-II"] - wide["V-VI"]
        return wide

    if fst_probabilities is None:
        draws = [table(base["fst"])]
    else:
        p = np.asarray(fst_probabilities, dtype=float)
        todo = np.flatnonzero(np.all(np.isfinite(p), axis=1) & base["fst"].isna().to_numpy())
        rng = np.random.default_rng(seed)
        draws = []
        for _ in range(n_draws):
            fst = base["fst"].astype("Float64").copy()
            if todo.size:
                fst.iloc[todo] = sample_labels(p[todo], rng) + 1
            draws.append(table(fst))
    stack = np.stack([d.reindex(index=draws[0].index, columns=draws[0].columns).to_numpy(float) for d in draws])
    low, high = percentile_interval(stack, ci, axis=0) if len(draws) > 1 else (stack[0], stack[0])
    mean = np.nanmean(stack, axis=0)
    years, cols = draws[0].index, draws[0].columns
    rows = [{"year": int(y), "fst_group": g, "fraction": mean[i, j], "ci_low": low[i, j], "ci_high": high[i, j]}
            for i, y in enumerate(years) for j, g in enumerate(cols)]
    return pd.DataFrame(rows, columns=["year", "fst_group", "fraction", "ci_low", "ci_high"])
