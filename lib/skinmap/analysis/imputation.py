"""Imputation of missing metadata by linear probes, and the coverage it adds (paper §3).

Imputation writes *separate* columns and never overwrites an observed value:
``<field>_imputed`` (the observed value where observed, otherwise the probe's prediction, NA where
neither exists), ``<field>_imputed_prob`` (categorical: probability of the predicted class) or
``<field>_imputed_lo`` / ``<field>_imputed_hi`` (continuous: split-conformal prediction interval),
and ``<field>_is_imputed`` (True exactly where the value came from the probe). The probes are
those of :mod:`skinmap.analysis.probes`, fitted with the same :class:`~skinmap.analysis.probes.ProbeConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits

from skinmap.analysis.probes import (
    Kind,
    ProbeConfig,
    cv_splitter,
    fit_probe,
    leakage_groups,
    probe_target,
    within_one_accuracy,
)
from skinmap.config import with_knobs

__all__ = [
    "impute_field",
    "impute_catalog",
    "coverage_expansion",
    "coverage_table",
    "imputation_agreement",
]


def impute_field(
    name: str,
    y: pd.Series,
    kind: Kind,
    X: np.ndarray,
    groups: np.ndarray,
    *,
    has_vector: np.ndarray | None = None,
    min_class_count: int = 5,
    interval_level: float = 0.9,
    seed: int = 0,
    probe: ProbeConfig | None = None,
    **probe_knobs,
) -> pd.DataFrame:
    """Fill the unobserved values of one field from a probe trained on every observed row.

    ``X`` has one row per entry of ``y`` (rows without an image can be given any values and
    flagged ``has_vector=False``; they are neither used nor imputed). Returns a frame aligned with
    ``y`` with ``<name>_imputed`` (observed value kept as is; prediction only where unobserved),
    ``<name>_is_imputed``, and ``<name>_imputed_prob`` (categorical: probability of the chosen
    class) or ``<name>_imputed_lo``/``_hi`` (continuous: split-conformal interval whose half-width
    is the ``interval_level`` quantile of out-of-fold absolute residuals, with the usual
    ``ceil((n+1) level)/n`` finite-sample correction; predictions and intervals are clipped to the
    range of the observed training values). Probability / interval are NA on observed
    rows. The probe is fitted with ``probe`` (single knobs also as keyword arguments). Raises
    ``ValueError`` if nothing can be learnt (fewer than two classes or rows).
    """
    probe_config = with_knobs(ProbeConfig, probe, probe_knobs)
    y = pd.Series(y).reset_index(drop=True)
    n = len(y)
    X = np.asarray(X)
    has_vector = np.ones(n, dtype=bool) if has_vector is None else np.asarray(has_vector, dtype=bool)
    observed = y.notna().to_numpy()
    target, train = probe_target(y, kind, observed & has_vector, min_class_count)
    train_idx = np.flatnonzero(train)
    if train_idx.size < 2:
        raise ValueError(f"{name}: fewer than two observed rows with vectors; cannot impute")
    probe = fit_probe(X[train_idx], target[train_idx], groups[train_idx], kind, probe_config, seed=seed)
    todo = np.flatnonzero(~observed & has_vector)
    if kind == "categorical":
        out = _fill_categorical(name, y, target, probe, X, train_idx, todo)
    else:
        out = _fill_continuous(name, target, probe, X, groups, train_idx, todo, interval_level, seed)
    flag = np.zeros(n, dtype=bool)
    flag[todo] = True
    out[f"{name}_is_imputed"] = flag
    out.attrs["best_params"] = probe.best_params_
    return out


def _fill_categorical(name: str, y: pd.Series, target: np.ndarray, probe, X: np.ndarray,
                      train_idx: np.ndarray, todo: np.ndarray) -> pd.DataFrame:
    """``<name>_imputed`` (most probable class where unobserved) and ``<name>_imputed_prob``."""
    n = len(y)
    out = pd.DataFrame(index=y.index)
    # Probes see labels as strings; map predictions back to the field's own values/dtype.
    original = dict(zip(target[train_idx], y.iloc[train_idx]))
    filled = y.copy()
    prob = np.full(n, np.nan)
    if todo.size:
        proba = probe.predict_proba(X[todo])
        chosen = probe.classes_[proba.argmax(axis=1)]
        filled.iloc[todo] = pd.Series([original[c] for c in chosen], dtype=y.dtype).to_numpy()
        prob[todo] = proba.max(axis=1)
    out[f"{name}_imputed"] = filled
    out[f"{name}_imputed_prob"] = prob
    return out


def _conformal_half_width(target: np.ndarray, probe, X: np.ndarray, groups: np.ndarray, train_idx: np.ndarray,
                          interval_level: float, seed: int) -> float:
    """Split-conformal half-width: the corrected ``interval_level`` quantile of out-of-fold residuals."""
    cv = cv_splitter("continuous", target[train_idx], groups[train_idx], 5, seed)
    if cv is None:
        resid = np.abs(target[train_idx] - probe.predict(X[train_idx]))
    else:
        # Out-of-fold residuals of the chosen model (alpha fixed) give honest interval widths.
        fixed = make_pipeline(*(step for _, step in probe.steps[:-1]), Ridge(alpha=probe.best_params_["alpha"]))
        with threadpool_limits(limits=1, user_api="blas"):
            oof = cross_val_predict(fixed, X[train_idx], target[train_idx], groups=groups[train_idx], cv=cv)
        resid = np.abs(target[train_idx] - oof)
    m = resid.size
    q_level = min(1.0, np.ceil((m + 1) * interval_level) / m)
    return float(np.quantile(resid, q_level, method="higher"))


def _fill_continuous(name: str, target: np.ndarray, probe, X: np.ndarray, groups: np.ndarray,
                     train_idx: np.ndarray, todo: np.ndarray, interval_level: float, seed: int) -> pd.DataFrame:
    """``<name>_imputed`` (clipped prediction where unobserved) and its interval ``_lo`` / ``_hi``."""
    n = target.size
    out = pd.DataFrame(index=pd.RangeIndex(n))
    filled = target.copy()
    lo = np.full(n, np.nan)
    hi = np.full(n, np.nan)
    if todo.size:
        half = _conformal_half_width(target, probe, X, groups, train_idx, interval_level, seed)
        # A linear probe extrapolates freely (negative ages on paediatric cohorts); keep
        # predictions and intervals inside the range of the observed training values.
        floor, ceil = float(target[train_idx].min()), float(target[train_idx].max())
        pred = np.clip(probe.predict(X[todo]), floor, ceil)
        filled[todo] = pred
        lo[todo] = np.clip(pred - half, floor, ceil)
        hi[todo] = np.clip(pred + half, floor, ceil)
    out[f"{name}_imputed"] = filled
    out[f"{name}_imputed_lo"] = lo
    out[f"{name}_imputed_hi"] = hi
    return out


def coverage_expansion(observed: pd.Series, is_imputed: pd.Series) -> dict[str, float]:
    """Coverage of one field before and after imputation, in percent and percentage points."""
    observed = pd.Series(observed)
    is_imputed = pd.Series(is_imputed, index=observed.index).fillna(False).astype(bool)
    n = len(observed)
    if n == 0:
        return {"n_rows": 0, "observed_pct": np.nan, "with_imputed_pct": np.nan, "expansion_pp": np.nan}
    obs = observed.notna()
    if (obs & is_imputed).any():
        raise ValueError("a row is flagged imputed although its value is observed")
    before = 100.0 * obs.mean()
    after = 100.0 * (obs | is_imputed).mean()
    return {"n_rows": n, "observed_pct": before, "with_imputed_pct": after, "expansion_pp": after - before}


def impute_catalog(
    catalog: pd.DataFrame,
    vectors: np.ndarray,
    vector_uids: Sequence[str],
    fields: Sequence[str],
    *,
    continuous: Sequence[str] = ("age",),
    progress: bool = True,
    groups: np.ndarray | None = None,
    **kwargs,
) -> tuple[pd.DataFrame, list[str]]:
    """Imputed columns for every catalog row (``imputed.parquet`` layout) and notes.

    One row per catalog ``uid`` in catalog order. Rows without a vector (metadata-only) keep
    their observed values and are never imputed. A field that cannot be learnt is written with
    its observed values only (flag all False) and a note. ``groups`` (one per catalog row; default
    :func:`~skinmap.analysis.probes.leakage_groups`) keep the CV folds of model selection and of the
    conformal residuals group-aware; pass the evaluation split's groups. ``kwargs`` (imputation
    knobs, ``probe`` or single probe knobs) go to :func:`impute_field`.
    """
    from tqdm.auto import tqdm

    catalog = catalog.reset_index(drop=True)
    pos = pd.Index(pd.Series(vector_uids).astype(str)).get_indexer(catalog["uid"].astype(str))
    has_vector = pos >= 0
    X = np.zeros((len(catalog), vectors.shape[1]), dtype=np.float32)
    X[has_vector] = vectors[pos[has_vector]]
    groups = leakage_groups(catalog) if groups is None else np.asarray(groups)
    if groups.shape != (len(catalog),):
        raise ValueError(f"groups has shape {groups.shape}, the catalog {len(catalog)} rows")
    out = pd.DataFrame({"uid": catalog["uid"].to_numpy()})
    notes = []
    for name in tqdm(list(fields), desc="imputation", disable=not progress):
        if name not in catalog:
            notes.append(f"{name}: not a catalog column; not imputed")
            continue
        kind: Kind = "continuous" if name in continuous else "categorical"
        try:
            cols = impute_field(name, catalog[name], kind, X, groups, has_vector=has_vector, **kwargs)
        except ValueError as exc:
            notes.append(f"{name}: {exc}; observed values only")
            cols = pd.DataFrame({f"{name}_imputed": catalog[name]})
            if kind == "categorical":
                cols[f"{name}_imputed_prob"] = np.nan
            else:
                cols[f"{name}_imputed_lo"] = np.nan
                cols[f"{name}_imputed_hi"] = np.nan
            cols[f"{name}_is_imputed"] = False
        out = pd.concat([out, cols.reset_index(drop=True)], axis=1)
    return out, notes


def coverage_table(catalog: pd.DataFrame, imputed: pd.DataFrame, fields: Sequence[str]) -> pd.DataFrame:
    """Coverage per field before/after imputation, over all rows and over rows with images.

    Columns: ``field, scope, n_rows, observed_pct, with_imputed_pct, expansion_pp``.
    """
    merged = catalog.reset_index(drop=True)
    if not merged["uid"].astype(str).equals(imputed["uid"].astype(str).reset_index(drop=True)):
        imputed = imputed.set_index("uid").reindex(merged["uid"]).reset_index()
    with_image = merged["path"].notna().to_numpy() if "path" in merged else np.ones(len(merged), bool)
    rows = []
    for name in fields:
        flag_col = f"{name}_is_imputed"
        if name not in merged or flag_col not in imputed:
            continue
        for scope, mask in (("all rows", np.ones(len(merged), bool)), ("rows with images", with_image)):
            cov = coverage_expansion(merged.loc[mask, name], imputed.loc[mask, flag_col].to_numpy())
            rows.append({"field": name, "scope": scope, **cov})
    return pd.DataFrame(rows, columns=["field", "scope", "n_rows", "observed_pct", "with_imputed_pct", "expansion_pp"])


def imputation_agreement(
    uids: Sequence[str], imputed: Sequence, is_imputed: Sequence[bool], truth: Mapping[str, object]
) -> dict[str, float]:
    """How often imputed values equal a hidden truth (synthetic atlas only: ``fst_true``).

    Only rows that were imputed *and* have a truth entry count. Returns ``n``, ``exact`` (share
    equal) and ``within_one`` (share at most one ordinal step off, for numeric values).
    """
    frame = pd.DataFrame({"uid": pd.Series(uids).astype(str), "value": pd.Series(imputed).to_numpy(),
                          "flag": np.asarray(is_imputed, dtype=bool)})
    frame["truth"] = frame["uid"].map(truth)
    frame = frame[frame["flag"] & frame["truth"].notna() & frame["value"].notna()]
    if frame.empty:
        return {"n": 0, "exact": float("nan"), "within_one": float("nan")}
    exact = float((frame["value"].astype(str) == frame["truth"].astype(str)).mean())
    try:
        within = within_one_accuracy(frame["truth"].astype(float), frame["value"].astype(float))
    except (TypeError, ValueError):
        within = float("nan")
    return {"n": int(len(frame)), "exact": exact, "within_one": within}
