"""Linear probes on frozen embeddings: metadata prediction, evaluation and imputation (paper §3).

One probe per attribute: scikit-learn ``LogisticRegression`` for categorical targets (FST as six
types and as three groups, sex, body site, origin) and ``Ridge`` for continuous ones (age), both
behind a ``StandardScaler``. The regularisation strength is chosen by cross-validation on the
training rows only, with group-aware folds, so that hyperparameters never see a test image.

Leakage: images of the same lesion or the same patient stay on one side of every split.
:func:`leakage_groups` joins rows that share a (dataset-qualified) lesion id or patient id into
connected components; every split and every CV fold in this module is made over those groups.

Evaluation (paper §3): macro-F1 (categorical) or R² (continuous) on an internal group-held-out
split and on whole datasets excluded from training, with percentile bootstrap 95% intervals
(B = 1,000 by default, computed in one vectorised pass) that resample lesion/patient groups, not
single images, against a random baseline and against each ensemble member alone.

Imputation writes *separate* columns and never overwrites an observed value:
``<field>_imputed`` (the observed value where observed, otherwise the probe's prediction, NA where
neither exists), ``<field>_imputed_prob`` (categorical: probability of the predicted class) or
``<field>_imputed_lo`` / ``<field>_imputed_hi`` (continuous: split-conformal prediction interval),
and ``<field>_is_imputed`` (True exactly where the value came from the probe).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.decomposition import PCA
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge, RidgeCV
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    GroupShuffleSplit,
    StratifiedGroupKFold,
    cross_val_predict,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

__all__ = [
    "Kind",
    "FST_GROUPS",
    "fst_group",
    "leakage_groups",
    "internal_split",
    "fit_probe",
    "bootstrap_macro_f1",
    "bootstrap_r2",
    "bootstrap_score",
    "random_baseline",
    "ProbeEvaluation",
    "evaluate_attribute",
    "ordinal_confusion",
    "within_one_accuracy",
    "impute_field",
    "coverage_expansion",
    "attribute_values",
    "ProbeReport",
    "evaluate_probes",
    "impute_catalog",
    "coverage_table",
    "imputation_agreement",
]

Kind = Literal["categorical", "continuous"]
FST_GROUPS = ("I-II", "III-IV", "V-VI")


def fst_group(fst: pd.Series) -> pd.Series:
    """Map Fitzpatrick types 1-6 to the paper's three groups I-II / III-IV / V-VI (NA stays NA)."""
    values = pd.to_numeric(fst, errors="coerce")
    bad = values.notna() & ~values.isin([1, 2, 3, 4, 5, 6])
    if bad.any():
        raise ValueError(f"FST values outside 1-6: {sorted(values[bad].unique().tolist())}")
    groups = pd.Series(pd.NA, index=fst.index, dtype="string")
    for lo, name in zip((1, 3, 5), FST_GROUPS):
        groups[values.isin([lo, lo + 1])] = name
    return groups


def leakage_groups(catalog: pd.DataFrame) -> np.ndarray:
    """Integer group per row such that rows sharing a lesion or a patient share a group.

    Lesion and patient ids are qualified by dataset (ids are only unique within a source). Rows
    are nodes; each distinct id is a hub node; the connected components of that bipartite graph
    are the groups, so a lesion photographed at two visits of one patient and a second lesion of
    the same patient all end up together. Rows without either id are their own group.
    """
    n = len(catalog)
    dataset = catalog["dataset"].astype("string").fillna("?") if "dataset" in catalog else None
    rows, hubs, n_hubs = [], [], 0
    for col in ("lesion_id", "patient_id"):
        if col not in catalog:
            continue
        ids = catalog[col].astype("string")
        if dataset is not None:
            ids = dataset + "\x1f" + col + "\x1f" + ids
        known = ids.notna().to_numpy()
        codes, _ = pd.factorize(ids[known])
        rows.append(np.flatnonzero(known))
        hubs.append(codes + n + n_hubs)
        n_hubs += int(codes.max()) + 1 if codes.size else 0
    if not rows:
        return np.arange(n)
    r = np.concatenate(rows)
    h = np.concatenate(hubs)
    size = n + n_hubs
    graph = coo_matrix((np.ones(r.size, dtype=np.int8), (r, h)), shape=(size, size))
    _, labels = connected_components(graph, directed=False)
    _, groups = np.unique(labels[:n], return_inverse=True)
    return groups


def internal_split(
    y: np.ndarray,
    groups: np.ndarray,
    kind: Kind,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Group-aware train/test row indices for the internal held-out evaluation.

    Categorical targets use ``StratifiedGroupKFold`` with ``round(1/test_fraction)`` folds and
    keep the first fold as test (class balance preserved as far as groups allow); continuous
    targets use ``GroupShuffleSplit``. No group ever appears on both sides.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_groups = np.unique(groups).size
    if n_groups < 2:
        raise ValueError("an internal split needs at least two lesion/patient groups")
    if kind == "categorical":
        n_splits = int(min(max(2, round(1 / test_fraction)), n_groups))
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        train, test = next(splitter.split(np.zeros(len(y)), y, groups))
    else:
        splitter = GroupShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed)
        train, test = next(splitter.split(np.zeros(len(y)), y, groups))
    return np.sort(train), np.sort(test)


def _cv_splitter(kind: Kind, y: np.ndarray, groups: np.ndarray, cv_folds: int, seed: int):
    n_groups = np.unique(groups).size
    folds = min(cv_folds, n_groups)
    if kind == "categorical":
        # Every class needs rows in every training fold; fall back to fewer folds if not.
        smallest = pd.Series(groups).groupby(pd.Series(y)).nunique().min()
        folds = min(folds, int(smallest))
        if folds < 2:
            return None
        return StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    if folds < 2:
        return None
    return GroupKFold(n_splits=folds)


def fit_probe(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    kind: Kind,
    *,
    c_grid: Sequence[float] = (0.01, 0.1, 1.0),
    alpha_grid: Sequence[float] = (1.0, 10.0, 100.0, 1000.0),
    cv_folds: int = 3,
    max_iter: int = 500,
    tol: float = 1e-3,
    max_dims: int = 0,
    seed: int = 0,
):
    """Fit a linear probe, choosing its regularisation by group-aware CV on these rows only.

    Categorical: ``LogisticRegression`` with ``C`` from ``c_grid`` chosen by macro-F1 in a grid
    search (``tol`` 1e-3: probes need ranking-quality fits, not 4-digit coefficients). Continuous:
    ``RidgeCV`` over ``alpha_grid`` scored by R². Both sit behind a ``StandardScaler`` fitted on
    the training rows, and both use the same group-aware folds (no lesion or patient in two
    folds). ``max_dims > 0`` inserts a PCA to that many components (fitted on the training rows,
    inside the pipeline) for spaces wider than that: the probe stays a linear map of the
    embedding, and a 1,280-d member costs what a 256-d one does. Returns the refitted
    ``Pipeline`` with ``best_params_`` and ``cv_folds_`` attached;
    when the groups are too few for two folds the middle of the grid is used unchecked.
    """
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
    if kind == "categorical" and np.unique(y).size < 2:
        raise ValueError("a categorical probe needs at least two classes in its training rows")
    grid = list(c_grid) if kind == "categorical" else list(alpha_grid)
    splitter = _cv_splitter(kind, y, groups, cv_folds, seed) if len(grid) > 1 else None
    splits = list(splitter.split(X, y, groups)) if splitter is not None else None
    if kind == "categorical":
        if splits is None:
            model = LogisticRegression(C=grid[len(grid) // 2], max_iter=max_iter, tol=tol, random_state=seed)
        else:
            # A grid search of separate fits: LogisticRegressionCV mishandles string labels with
            # macro-F1 scoring in binary problems (pos_label clash) in current scikit-learn.
            model = GridSearchCV(
                LogisticRegression(max_iter=max_iter, tol=tol, random_state=seed),
                {"C": grid}, scoring="f1_macro", cv=splits, error_score=np.nan,
            )
    else:
        if splits is None:
            model = Ridge(alpha=grid[len(grid) // 2])
        else:
            model = RidgeCV(alphas=grid, cv=splits, scoring="r2")
    steps = []
    if 0 < max_dims < min(X.shape):
        # PCA on the raw embedding (before scaling) keeps its highest-variance directions.
        steps.append(PCA(n_components=max_dims, svd_solver="randomized", random_state=seed))
    probe = make_pipeline(*steps, StandardScaler(), model)
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        # Unconverged lbfgs at a loose tol is expected on noise-only targets; scores tell the truth.
        warnings.simplefilter("ignore", ConvergenceWarning)
        # Probe-sized problems gain nothing from BLAS threads; on a shared machine they lose ~10x.
        probe.fit(X, y)
    fitted = probe[-1]
    if kind == "categorical":
        probe.best_params_ = {"C": float(fitted.best_params_["C"]) if splits is not None else fitted.C}
    else:
        probe.best_params_ = {"alpha": float(fitted.alpha_) if splits is not None else fitted.alpha}
    probe.cv_folds_ = len(splits) if splits is not None else 0
    return probe


# --------------------------------------------------------------------------- bootstrap metrics


def _percentile_ci(replicates: np.ndarray, level: float) -> tuple[float, float]:
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(finite, [tail, 1.0 - tail])
    return float(lo), float(hi)


def _bootstrap_weights(groups: np.ndarray | None, n: int, B: int, rng: np.random.Generator, chunk: int):
    """Row weights of B resamples, ``chunk`` at a time: (b, n) arrays of multiplicities.

    Without groups a resample draws n rows with replacement; with groups it draws as many
    *groups* (lesions/patients) with replacement and keeps all rows of each drawn group (the
    cluster bootstrap): images of one lesion are not independent evidence, and resampling them
    one by one would make the interval too narrow. Groups = one per row reduces to the former.
    """
    g = np.arange(n) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    n_groups = int(g.max()) + 1
    for start in range(0, B, chunk):
        b = min(chunk, B - start)
        draws = rng.integers(0, n_groups, size=(b, n_groups))
        counts = np.bincount((np.arange(b)[:, None] * n_groups + draws).ravel(), minlength=b * n_groups)
        yield counts.reshape(b, n_groups)[:, g].astype(np.float64)


def _macro_f1_from_confusion(conf: np.ndarray) -> np.ndarray:
    """Macro-F1 of a stack of confusion matrices (..., K, K), sklearn's convention.

    As in ``sklearn.metrics.f1_score(average="macro")`` the mean runs over the labels present in
    the true or predicted values of that sample; F1 of a present label with 2TP+FP+FN = 0 cannot
    occur, so no zero-division case arises.
    """
    tp = np.diagonal(conf, axis1=-2, axis2=-1).astype(np.float64)
    fp = conf.sum(axis=-2) - tp
    fn = conf.sum(axis=-1) - tp
    denom = 2 * tp + fp + fn
    present = denom > 0
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=present)
    return f1.sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)


def bootstrap_macro_f1(
    y_true: Sequence, y_pred: Sequence, *, B: int = 1000, level: float = 0.95, seed: int = 0,
    groups: Sequence | None = None,
) -> tuple[float, float, float]:
    """Macro-F1 with a percentile bootstrap interval (paper §3); cluster bootstrap over ``groups``.

    Returns ``(value, ci_low, ci_high)``. All B resamples are scored at once from stacked,
    weighted confusion matrices (one ``bincount`` per chunk), so B = 1,000 costs about as much as
    a few probe fits.
    """
    y_true = np.asarray(y_true, dtype=object)
    y_pred = np.asarray(y_pred, dtype=object)
    n = y_true.size
    if n == 0 or n != y_pred.size:
        raise ValueError(f"need equal, non-zero lengths (got {y_true.size} and {y_pred.size})")
    codes, _ = pd.factorize(np.concatenate([y_true, y_pred]).astype(str))
    t, p = codes[:n], codes[n:]
    K = int(codes.max()) + 1
    pair = t * K + p
    value = float(_macro_f1_from_confusion(np.bincount(pair, minlength=K * K).reshape(K, K)))
    rng = np.random.default_rng(seed)
    reps = []
    chunk = max(1, min(B, 2_000_000 // max(n, 1)))
    for w in _bootstrap_weights(None if groups is None else np.asarray(groups), n, B, rng, chunk):
        b = w.shape[0]
        flat = (np.arange(b)[:, None] * (K * K) + pair[None, :]).ravel()
        conf = np.bincount(flat, weights=w.ravel(), minlength=b * K * K).reshape(b, K, K)
        reps.append(_macro_f1_from_confusion(conf))
    lo, hi = _percentile_ci(np.concatenate(reps), level)
    return value, lo, hi


def bootstrap_r2(
    y_true: Sequence, y_pred: Sequence, *, B: int = 1000, level: float = 0.95, seed: int = 0,
    groups: Sequence | None = None,
) -> tuple[float, float, float]:
    """R² = 1 - SS_res / SS_tot with a percentile (cluster) bootstrap interval, vectorised over B."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    n = y_true.size
    if n == 0 or n != y_pred.size:
        raise ValueError(f"need equal, non-zero lengths (got {y_true.size} and {y_pred.size})")

    def r2(w: np.ndarray) -> np.ndarray:
        total = w.sum(axis=-1, keepdims=True)
        mean = (w * y_true).sum(axis=-1, keepdims=True) / total
        ss_res = (w * (y_true - y_pred) ** 2).sum(axis=-1)
        ss_tot = (w * (y_true - mean) ** 2).sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)

    value = float(r2(np.ones((1, n)))[0])
    rng = np.random.default_rng(seed)
    chunk = max(1, min(B, 2_000_000 // max(n, 1)))
    g = None if groups is None else np.asarray(groups)
    reps = [r2(w) for w in _bootstrap_weights(g, n, B, rng, chunk)]
    lo, hi = _percentile_ci(np.concatenate(reps), level)
    return value, lo, hi


def bootstrap_score(
    y_true, y_pred, kind: Kind, *, B: int = 1000, level: float = 0.95, seed: int = 0, groups=None
) -> tuple[str, float, float, float]:
    """``(metric_name, value, ci_low, ci_high)``: macro-F1 or R² depending on ``kind``."""
    if kind == "categorical":
        return ("macro_f1", *bootstrap_macro_f1(y_true, y_pred, B=B, level=level, seed=seed, groups=groups))
    return ("r2", *bootstrap_r2(y_true, y_pred, B=B, level=level, seed=seed, groups=groups))


def random_baseline(kind: Kind, y_train: np.ndarray, *, seed: int = 0):
    """The random reference: class draws at training frequencies, or the training mean.

    Categorical: ``DummyClassifier(strategy="stratified")`` (expected macro-F1 = chance for the
    class mix). Continuous: ``DummyRegressor(strategy="mean")`` (R² ≈ 0 by construction; drawing
    random training ages instead would score about -1 and flatter every probe).
    """
    if kind == "categorical":
        model = DummyClassifier(strategy="stratified", random_state=seed)
    else:
        model = DummyRegressor(strategy="mean")
    return model.fit(np.zeros((len(y_train), 1)), y_train)


# --------------------------------------------------------------------------- evaluation


@dataclass
class ProbeEvaluation:
    """Scores of one attribute: a tidy table plus the predictions behind it."""

    scores: pd.DataFrame
    #: (eval_set, model) -> (y_true, y_pred) arrays, for confusion matrices and error plots.
    predictions: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: model -> chosen hyperparameters.
    best_params: dict[str, dict] = field(default_factory=dict)
    #: why the attribute (or an eval set) was skipped, if it was.
    notes: list[str] = field(default_factory=list)


SCORE_COLUMNS = [
    "attribute",
    "eval_set",
    "model",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "n_train",
    "n_eval",
]


def _keep_frequent(y: pd.Series, min_class_count: int) -> pd.Series:
    counts = y.value_counts()
    return y.isin(counts[counts >= min_class_count].index)


def evaluate_attribute(
    attribute: str,
    y: pd.Series,
    kind: Kind,
    embeddings: Mapping[str, np.ndarray],
    groups: np.ndarray,
    datasets: Sequence[str],
    *,
    held_out_datasets: Sequence[str] = (),
    test_fraction: float = 0.2,
    min_class_count: int = 5,
    min_eval_rows: int = 10,
    B: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    **fit_kwargs,
) -> ProbeEvaluation:
    """Train each embedding's probe once and score it internally and on held-out datasets.

    ``y`` is aligned with the rows of every array in ``embeddings`` (NA = unobserved; those rows
    are ignored). Training rows: observed rows of datasets *not* in ``held_out_datasets``, minus
    the internal test groups. Classes with fewer than ``min_class_count`` training rows are
    dropped from training and internal test (they cannot be learnt or stratified); the held-out
    datasets keep every row, so an unseen class simply counts as an error there. Eval sets with
    fewer than ``min_eval_rows`` rows are skipped with a note. The model ``random`` is
    :func:`random_baseline`. Returns scores in the ``probe_scores.csv`` layout.
    """
    y = pd.Series(y).reset_index(drop=True)
    datasets = pd.Series(np.asarray(datasets, dtype=object)).astype("string")
    groups = np.asarray(groups)
    observed = y.notna().to_numpy()
    held = datasets.isin(list(held_out_datasets)).to_numpy()
    result = ProbeEvaluation(scores=pd.DataFrame(columns=SCORE_COLUMNS))
    pool = observed & ~held
    if kind == "categorical":
        y_str = y.astype("string")
        pool &= _keep_frequent(y_str[pool], min_class_count).reindex(y.index, fill_value=False)
        target = y_str.to_numpy(dtype=object)
    else:
        target = pd.to_numeric(y, errors="coerce").to_numpy(dtype=np.float64)
    pool_idx = np.flatnonzero(pool)
    if pool_idx.size < 2 * min_eval_rows or (
        kind == "categorical" and np.unique(target[pool_idx]).size < 2
    ):
        result.notes.append(
            f"{attribute}: only {pool_idx.size} usable training rows"
            + (" or fewer than two classes" if kind == "categorical" else "")
            + "; skipped"
        )
        return result
    tr, te = internal_split(target[pool_idx], groups[pool_idx], kind, test_fraction=test_fraction, seed=seed)
    train_idx, test_idx = pool_idx[tr], pool_idx[te]
    eval_sets = {"internal": test_idx}
    for name in held_out_datasets:
        rows = np.flatnonzero(observed & (datasets == name).to_numpy())
        if rows.size < min_eval_rows:
            result.notes.append(f"{attribute}: held-out dataset {name!r} has {rows.size} labelled rows; skipped")
            continue
        eval_sets[name] = rows
    rows_out = []

    def score(model_name: str, preds: dict[str, np.ndarray]) -> None:
        for eval_set, rows in eval_sets.items():
            y_true = target[rows]
            metric, value, lo, hi = bootstrap_score(
                y_true, preds[eval_set], kind, B=B, level=level, seed=seed, groups=groups[rows]
            )
            rows_out.append((attribute, eval_set, model_name, metric, value, lo, hi, train_idx.size, rows.size))
            result.predictions[(eval_set, model_name)] = (y_true, preds[eval_set])

    for model_name, X in embeddings.items():
        X = np.asarray(X)
        if X.shape[0] != len(y):
            raise ValueError(f"embedding {model_name!r} has {X.shape[0]} rows, labels have {len(y)}")
        probe = fit_probe(X[train_idx], target[train_idx], groups[train_idx], kind, seed=seed, **fit_kwargs)
        result.best_params[model_name] = probe.best_params_
        score(model_name, {name: probe.predict(X[rows]) for name, rows in eval_sets.items()})
    dummy = random_baseline(kind, target[train_idx], seed=seed)
    score("random", {name: dummy.predict(np.zeros((rows.size, 1))) for name, rows in eval_sets.items()})
    result.scores = pd.DataFrame(rows_out, columns=SCORE_COLUMNS)
    return result


def ordinal_confusion(y_true, y_pred, labels: Sequence) -> pd.DataFrame:
    """Confusion counts (rows = true, columns = predicted) over ordered ``labels``."""
    labels = list(labels)
    as_str = [str(v) for v in labels]
    conf = confusion_matrix(
        np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str), labels=as_str
    )
    return pd.DataFrame(conf, index=pd.Index(labels, name="true"), columns=pd.Index(labels, name="predicted"))


def within_one_accuracy(y_true, y_pred) -> float:
    """Share of predictions at most one ordinal step from the truth (errors near the diagonal)."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    return float(np.mean(np.abs(t - p) <= 1)) if t.size else float("nan")


# --------------------------------------------------------------------------- imputation


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
    **fit_kwargs,
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
    rows. Raises ``ValueError`` if nothing can be learnt (fewer than two classes or rows).
    """
    y = pd.Series(y).reset_index(drop=True)
    n = len(y)
    X = np.asarray(X)
    has_vector = np.ones(n, dtype=bool) if has_vector is None else np.asarray(has_vector, dtype=bool)
    observed = y.notna().to_numpy()
    if kind == "categorical":
        values = y.astype("string")
        train = observed & has_vector
        train &= _keep_frequent(values[train], min_class_count).reindex(y.index, fill_value=False).to_numpy()
        target = values.to_numpy(dtype=object)
    else:
        values = pd.to_numeric(y, errors="coerce")
        train = observed & has_vector
        target = values.to_numpy(dtype=np.float64)
    train_idx = np.flatnonzero(train)
    if train_idx.size < 2:
        raise ValueError(f"{name}: fewer than two observed rows with vectors; cannot impute")
    probe = fit_probe(X[train_idx], target[train_idx], groups[train_idx], kind, seed=seed, **fit_kwargs)
    todo = np.flatnonzero(~observed & has_vector)
    out = pd.DataFrame(index=y.index)
    flag = np.zeros(n, dtype=bool)
    flag[todo] = True
    if kind == "categorical":
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
    else:
        filled = target.copy()
        lo = np.full(n, np.nan)
        hi = np.full(n, np.nan)
        if todo.size:
            cv = _cv_splitter(kind, target[train_idx], groups[train_idx], 5, seed)
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
            half = float(np.quantile(resid, q_level, method="higher"))
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
    out[f"{name}_is_imputed"] = flag
    out.attrs["best_params"] = probe.best_params_
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


# --------------------------------------------------------------------------- chapter level


def attribute_values(metadata: pd.DataFrame, attribute: str) -> pd.Series:
    """The target of ``attribute``: a catalog column, or ``fst_group`` derived from ``fst``."""
    if attribute == "fst_group" and "fst" in metadata:
        return fst_group(metadata["fst"])
    if attribute not in metadata:
        raise KeyError(f"attribute {attribute!r} is not a catalog column")
    return metadata[attribute]


@dataclass
class ProbeReport:
    """All attributes' scores (``probe_scores.csv`` layout) and their evaluations."""

    scores: pd.DataFrame
    evaluations: dict[str, ProbeEvaluation]
    notes: list[str]


def evaluate_probes(
    metadata: pd.DataFrame,
    embeddings: Mapping[str, np.ndarray],
    attributes: Sequence[str],
    *,
    continuous: Sequence[str] = ("age",),
    progress: bool = True,
    **kwargs,
) -> ProbeReport:
    """:func:`evaluate_attribute` for every attribute, with lesion/patient groups from ``metadata``.

    ``metadata`` has one row per embedding row (``dataset`` plus the attribute columns and,
    where known, ``lesion_id``/``patient_id``). ``kwargs`` go to :func:`evaluate_attribute`.
    """
    from tqdm.auto import tqdm

    groups = leakage_groups(metadata)
    datasets = metadata["dataset"].astype("string").to_numpy(dtype=object)
    evaluations, frames, notes = {}, [], []
    for attribute in tqdm(list(attributes), desc="probes", disable=not progress):
        try:
            y = attribute_values(metadata, attribute)
        except KeyError as exc:
            notes.append(str(exc.args[0]))
            continue
        kind: Kind = "continuous" if attribute in continuous else "categorical"
        ev = evaluate_attribute(attribute, y.reset_index(drop=True), kind, embeddings, groups, datasets, **kwargs)
        evaluations[attribute] = ev
        notes.extend(ev.notes)
        if not ev.scores.empty:
            frames.append(ev.scores)
    scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SCORE_COLUMNS)
    return ProbeReport(scores=scores, evaluations=evaluations, notes=notes)


def impute_catalog(
    catalog: pd.DataFrame,
    vectors: np.ndarray,
    vector_uids: Sequence[str],
    fields: Sequence[str],
    *,
    continuous: Sequence[str] = ("age",),
    progress: bool = True,
    **kwargs,
) -> tuple[pd.DataFrame, list[str]]:
    """Imputed columns for every catalog row (``imputed.parquet`` layout) and notes.

    One row per catalog ``uid`` in catalog order. Rows without a vector (metadata-only) keep
    their observed values and are never imputed. A field that cannot be learnt is written with
    its observed values only (flag all False) and a note. ``kwargs`` go to :func:`impute_field`.
    """
    from tqdm.auto import tqdm

    catalog = catalog.reset_index(drop=True)
    pos = pd.Index(pd.Series(vector_uids).astype(str)).get_indexer(catalog["uid"].astype(str))
    has_vector = pos >= 0
    X = np.zeros((len(catalog), vectors.shape[1]), dtype=np.float32)
    X[has_vector] = vectors[pos[has_vector]]
    groups = leakage_groups(catalog)
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
