"""Linear probes on frozen embeddings: metadata prediction and its evaluation (paper §3).

One probe per attribute: scikit-learn ``LogisticRegression`` for categorical targets (FST as six
types and as three groups, sex, body site, origin) and ``Ridge`` for continuous ones (age), both
behind a ``StandardScaler``. The regularisation strength is chosen by cross-validation on the
training rows only, with group-aware folds, so that hyperparameters never see a test image. The
probe's knobs travel as one :class:`ProbeConfig`.

Leakage: images of the same lesion or the same patient stay on one side of every split.
:func:`leakage_groups` joins rows that share a (dataset-qualified) lesion id or patient id into
connected components; every split and every CV fold in this module is made over those groups.

Evaluation (paper §3): macro-F1 (categorical) or R² (continuous) on an internal group-held-out
split and on whole datasets excluded from training, with percentile bootstrap 95% intervals
(``n_bootstrap`` = 1,000 by default, computed in one vectorised pass) that resample lesion/patient
groups, not single images, against a random baseline and against each ensemble member alone.

Filling missing metadata with these probes is :mod:`skinmap.analysis.imputation`.
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
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from skinmap.analysis.resampling import bootstrap_weights, percentile_interval
from skinmap.config import check_knobs, check_range, knob, with_knobs
from skinmap.data.schema import fst_group

__all__ = [
    "Kind",
    "TEST_FRACTION_BOUNDS",
    "ProbeConfig",
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
    "attribute_values",
    "ProbeReport",
    "evaluate_probes",
]

Kind = Literal["categorical", "continuous"]
#: Allowed shares of lesion/patient groups in the internal test split (:func:`internal_split`).
TEST_FRACTION_BOUNDS = {"gt": 0.0, "lt": 0.9}


@dataclass(frozen=True)
class ProbeConfig:
    """How a probe is fitted (:func:`fit_probe`): the regularisation grids, CV and solver knobs."""

    c_grid: Sequence[float] = knob((0.01, 0.1, 1.0), description="LogisticRegression C values searched")
    alpha_grid: Sequence[float] = knob((1.0, 10.0, 100.0, 1000.0), description="Ridge alpha values searched")
    cv_folds: int = knob(3, ge=2, le=20,
                         description="group-aware CV folds for choosing the regularisation (training rows only)")
    max_iter: int = knob(500, ge=50, le=100_000, description="LogisticRegression iterations")
    tol: float = knob(1e-3, gt=0.0, description="LogisticRegression stopping tolerance")
    max_dims: int = knob(
        0, ge=0, description="spaces wider than this are PCA-reduced inside the probe (fitted on training rows); 0 = never")

    def __post_init__(self) -> None:
        check_knobs(self)


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
    check_range("test_fraction", test_fraction, **TEST_FRACTION_BOUNDS)
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


def cv_splitter(kind: Kind, y: np.ndarray, groups: np.ndarray, cv_folds: int, seed: int):
    """Group-aware CV folds over these rows, or ``None`` when the groups allow fewer than two."""
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
    config: ProbeConfig | None = None,
    *,
    seed: int = 0,
    **knobs,
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
    when the groups are too few for two folds the middle of the grid is used unchecked. The knobs
    come from ``config`` (:class:`ProbeConfig`), single ones also as keyword arguments.
    """
    cfg = with_knobs(ProbeConfig, config, knobs)
    c_grid, alpha_grid, cv_folds, max_iter, tol, max_dims = (
        cfg.c_grid, cfg.alpha_grid, cfg.cv_folds, cfg.max_iter, cfg.tol, cfg.max_dims)
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
    if kind == "categorical" and np.unique(y).size < 2:
        raise ValueError("a categorical probe needs at least two classes in its training rows")
    grid = list(c_grid) if kind == "categorical" else list(alpha_grid)
    splitter = cv_splitter(kind, y, groups, cv_folds, seed) if len(grid) > 1 else None
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


def _resamples(n: int, n_bootstrap: int, seed: int, groups: Sequence | None):
    """The (cluster) bootstrap row weights of both score intervals, in chunks of ~2 M cells."""
    chunk = max(1, min(n_bootstrap, 2_000_000 // max(n, 1)))
    return bootstrap_weights(n, n_bootstrap, np.random.default_rng(seed),
                             groups=None if groups is None else np.asarray(groups), chunk=chunk)


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
    y_true: Sequence, y_pred: Sequence, *, n_bootstrap: int = 1000, ci: float = 0.95, seed: int = 0,
    groups: Sequence | None = None,
) -> tuple[float, float, float]:
    """Macro-F1 with a percentile bootstrap interval (paper §3); cluster bootstrap over ``groups``.

    Returns ``(value, ci_low, ci_high)``. All ``n_bootstrap`` resamples
    (:func:`skinmap.analysis.resampling.bootstrap_weights`) are scored at once from stacked,
    weighted confusion matrices (one ``bincount`` per chunk), so 1,000 resamples cost about as much
    as a few probe fits.
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
    reps = []
    for w in _resamples(n, n_bootstrap, seed, groups):
        b = w.shape[0]
        flat = (np.arange(b)[:, None] * (K * K) + pair[None, :]).ravel()
        conf = np.bincount(flat, weights=w.ravel(), minlength=b * K * K).reshape(b, K, K)
        reps.append(_macro_f1_from_confusion(conf))
    lo, hi = percentile_interval(np.concatenate(reps), ci)
    return value, lo, hi


def bootstrap_r2(
    y_true: Sequence, y_pred: Sequence, *, n_bootstrap: int = 1000, ci: float = 0.95, seed: int = 0,
    groups: Sequence | None = None,
) -> tuple[float, float, float]:
    """R² = 1 - SS_res / SS_tot with a percentile (cluster) bootstrap interval, vectorised over resamples."""
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
    reps = [r2(w) for w in _resamples(n, n_bootstrap, seed, groups)]
    lo, hi = percentile_interval(np.concatenate(reps), ci)
    return value, lo, hi


def bootstrap_score(
    y_true, y_pred, kind: Kind, *, n_bootstrap: int = 1000, ci: float = 0.95, seed: int = 0, groups=None
) -> tuple[str, float, float, float]:
    """``(metric_name, value, ci_low, ci_high)``: macro-F1 or R² depending on ``kind``."""
    score = bootstrap_macro_f1 if kind == "categorical" else bootstrap_r2
    value, low, high = score(y_true, y_pred, n_bootstrap=n_bootstrap, ci=ci, seed=seed, groups=groups)
    return ("macro_f1" if kind == "categorical" else "r2", value, low, high)


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


def frequent_classes(y: pd.Series, min_class_count: int) -> pd.Series:
    """Rows whose class has at least ``min_class_count`` rows (a probe cannot learn rarer ones)."""
    counts = y.value_counts()
    return y.isin(counts[counts >= min_class_count].index)


def probe_target(y: pd.Series, kind: Kind, usable: np.ndarray, min_class_count: int) -> tuple[np.ndarray, np.ndarray]:
    """The probe's target per row (strings or floats) and the rows it may be trained on.

    ``usable`` marks observed rows the caller allows; of those, categorical targets keep only
    classes with at least ``min_class_count`` rows.
    """
    if kind == "categorical":
        values = y.astype("string")
        train = usable & frequent_classes(values[usable], min_class_count).reindex(y.index, fill_value=False).to_numpy()
        return values.to_numpy(dtype=object), train
    return pd.to_numeric(y, errors="coerce").to_numpy(dtype=np.float64), usable


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
    n_bootstrap: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    probe: ProbeConfig | None = None,
    roles: Sequence[str] | None = None,
    **probe_knobs,
) -> ProbeEvaluation:
    """Train each embedding's probe once and score it internally and on held-out datasets.

    ``y`` is aligned with the rows of every array in ``embeddings`` (NA = unobserved; those rows
    are ignored). Training rows: observed rows of datasets *not* in ``held_out_datasets``, minus
    the internal test groups. Classes with fewer than ``min_class_count`` training rows are
    dropped from training and internal test (they cannot be learnt or stratified); the held-out
    datasets keep every row, so an unseen class simply counts as an error there. Eval sets with
    fewer than ``min_eval_rows`` rows are skipped with a note. The model ``random`` is
    :func:`random_baseline`. Probes are fitted with ``probe`` (:class:`ProbeConfig`; single knobs
    also as keyword arguments). Returns scores in the ``probe_scores.csv`` layout.

    With ``roles`` (one of ``"train"``, ``"test"``, ``"holdout"`` per row: the evaluation split of
    :mod:`skinmap.analysis.evaluation_split`, decided before the embedding was trained) the split is
    not drawn here: the probe and its CV model selection see ``train`` rows only, eval set ``"test"``
    is the observed ``test`` rows (of the classes the probe could learn) and each held-out dataset's
    eval set is its observed ``holdout`` rows; ``test_fraction`` is unused. ``groups`` should then be
    the split's groups (lesion, patient and near-duplicate), so CV folds and bootstrap resamples follow
    the same rule.
    """
    if roles is not None:
        return _evaluate_by_roles(attribute, y, kind, embeddings, groups, datasets, roles,
                                  held_out_datasets=held_out_datasets, min_class_count=min_class_count,
                                  min_eval_rows=min_eval_rows, n_bootstrap=n_bootstrap, ci=ci, seed=seed,
                                  probe=with_knobs(ProbeConfig, probe, probe_knobs))
    probe = with_knobs(ProbeConfig, probe, probe_knobs)
    y = pd.Series(y).reset_index(drop=True)
    datasets = pd.Series(np.asarray(datasets, dtype=object)).astype("string")
    groups = np.asarray(groups)
    observed = y.notna().to_numpy()
    held = datasets.isin(list(held_out_datasets)).to_numpy()
    result = ProbeEvaluation(scores=pd.DataFrame(columns=SCORE_COLUMNS))
    # 1. the target and the rows it may be learnt from
    target, pool = probe_target(y, kind, observed & ~held, min_class_count)
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
    # 2. the internal split and the held-out datasets with enough labelled rows
    tr, te = internal_split(target[pool_idx], groups[pool_idx], kind, test_fraction=test_fraction, seed=seed)
    train_idx, test_idx = pool_idx[tr], pool_idx[te]
    eval_sets = {"internal": test_idx}
    for name in held_out_datasets:
        rows = np.flatnonzero(observed & (datasets == name).to_numpy())
        if rows.size < min_eval_rows:
            result.notes.append(f"{attribute}: held-out dataset {name!r} has {rows.size} labelled rows; skipped")
            continue
        eval_sets[name] = rows

    return _score_eval_sets(result, attribute, kind, embeddings, target, groups, train_idx, eval_sets,
                            len(y), n_bootstrap=n_bootstrap, ci=ci, seed=seed, probe=probe)


def _evaluate_by_roles(attribute: str, y: pd.Series, kind: Kind, embeddings: Mapping[str, np.ndarray],
                       groups: np.ndarray, datasets: Sequence[str], roles: Sequence[str], *,
                       held_out_datasets: Sequence[str], min_class_count: int, min_eval_rows: int,
                       n_bootstrap: int, ci: float, seed: int, probe: ProbeConfig) -> ProbeEvaluation:
    """:func:`evaluate_attribute` on a given evaluation split (train / test / holdout roles)."""
    y = pd.Series(y).reset_index(drop=True)
    roles = np.asarray(roles, dtype=object)
    if roles.shape != (len(y),):
        raise ValueError(f"roles has shape {roles.shape}, labels have {len(y)} rows")
    datasets = pd.Series(np.asarray(datasets, dtype=object)).astype("string")
    groups = np.asarray(groups)
    observed = y.notna().to_numpy()
    result = ProbeEvaluation(scores=pd.DataFrame(columns=SCORE_COLUMNS))
    target, train = probe_target(y, kind, observed & (roles == "train"), min_class_count)
    train_idx = np.flatnonzero(train)
    if train_idx.size < min_eval_rows or (kind == "categorical" and np.unique(target[train_idx]).size < 2):
        result.notes.append(f"{attribute}: only {train_idx.size} usable train rows"
                            + (" or fewer than two classes" if kind == "categorical" else "") + "; skipped")
        return result
    test = observed & (roles == "test")
    if kind == "categorical":  # as the internal split: classes the probe could learn
        test &= pd.Series(target).isin(set(target[train_idx])).to_numpy()
    eval_sets: dict[str, np.ndarray] = {}
    candidates = {"test": np.flatnonzero(test)}
    for name in held_out_datasets:
        candidates[str(name)] = np.flatnonzero(observed & (roles == "holdout") & (datasets == name).to_numpy())
    for name, rows in candidates.items():
        if rows.size < min_eval_rows:
            result.notes.append(f"{attribute}: eval set {name!r} has {rows.size} labelled rows; skipped")
            continue
        eval_sets[name] = rows
    return _score_eval_sets(result, attribute, kind, embeddings, target, groups, train_idx, eval_sets,
                            len(y), n_bootstrap=n_bootstrap, ci=ci, seed=seed, probe=probe)


def _score_eval_sets(result: ProbeEvaluation, attribute: str, kind: Kind, embeddings: Mapping[str, np.ndarray],
                     target: np.ndarray, groups: np.ndarray, train_idx: np.ndarray,
                     eval_sets: dict[str, np.ndarray], n_rows: int, *, n_bootstrap: int, ci: float, seed: int,
                     probe: ProbeConfig) -> ProbeEvaluation:
    """One probe per embedding (fitted on ``train_idx``) and the random baseline, scored on every eval set."""
    rows_out = []

    def score(model_name: str, preds: dict[str, np.ndarray]) -> None:
        for eval_set, rows in eval_sets.items():
            y_true = target[rows]
            metric, value, lo, hi = bootstrap_score(
                y_true, preds[eval_set], kind, n_bootstrap=n_bootstrap, ci=ci, seed=seed, groups=groups[rows]
            )
            rows_out.append((attribute, eval_set, model_name, metric, value, lo, hi, train_idx.size, rows.size))
            result.predictions[(eval_set, model_name)] = (y_true, preds[eval_set])

    for model_name, X in embeddings.items():
        X = np.asarray(X)
        if X.shape[0] != n_rows:
            raise ValueError(f"embedding {model_name!r} has {X.shape[0]} rows, labels have {n_rows}")
        fitted = fit_probe(X[train_idx], target[train_idx], groups[train_idx], kind, probe, seed=seed)
        result.best_params[model_name] = fitted.best_params_
        score(model_name, {name: fitted.predict(X[rows]) for name, rows in eval_sets.items()})
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

# --------------------------------------------------------------------------- every attribute


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
    groups: np.ndarray | None = None,
    **kwargs,
) -> ProbeReport:
    """:func:`evaluate_attribute` for every attribute, with lesion/patient groups from ``metadata``.

    ``metadata`` has one row per embedding row (``dataset`` plus the attribute columns and,
    where known, ``lesion_id``/``patient_id``). ``groups`` (default :func:`leakage_groups`) are the
    evaluation split's groups when ``roles`` is given. ``kwargs`` (evaluation knobs, ``roles``,
    ``probe`` or single probe knobs) go to :func:`evaluate_attribute`.
    """
    from tqdm.auto import tqdm

    groups = leakage_groups(metadata) if groups is None else np.asarray(groups)
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
