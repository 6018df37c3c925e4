"""Intervals whose tests can fail (issue 21, section 5).

Each test here was checked against a small realistic bug (a mutant applied by hand, one at a time)
that the rest of the suite let through: interval quantiles at ``alpha`` instead of ``alpha / 2``,
a percentile interval with the wrong tail, a row bootstrap where a cluster bootstrap is due, CV
folds that ignore lesion groups. They assert against independent computations: brute-force
resamples scored by scikit-learn / scipy, coverage on synthetic replications with a known truth,
and a hand-made clustered example.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import linalg
from sklearn.metrics import f1_score, r2_score

from skinmap.analysis import probes
from skinmap.analysis.knn import l2_normalize
from skinmap.analysis.similarity import dataset_similarity


def _sqrtm_fd(x: np.ndarray, y: np.ndarray) -> float:
    """Eq. 8 from np.cov and scipy's general matrix square root (independent of skinmap.frechet)."""
    sa, sb = np.cov(x, rowvar=False, ddof=1), np.cov(y, rowvar=False, ddof=1)
    diff = x.mean(axis=0) - y.mean(axis=0)
    return float(diff @ diff + np.trace(sa) + np.trace(sb) - 2 * np.trace(linalg.sqrtm(sa @ sb)).real)


def test_fd_bootstrap_interval_is_the_central_quantile_range_of_brute_force_resamples(rng):
    # The raw FD bootstrap (dataset_similarity) draws, dataset after dataset, rng.integers(0, n, (1, n))
    # from default_rng(seed) (documented in skinmap.analysis.resampling). Rebuilding those resamples
    # as copied rows and scoring them with sqrtm must give the same replicates; the interval must be
    # their 2.5 % / 97.5 % quantiles (a 90 % interval, alpha instead of alpha/2, is 20-40 % narrower).
    d, n_boot, seed = 6, 200, 3
    groups = {"a": rng.standard_normal((120, d)), "b": rng.standard_normal((80, d)) * 1.3 + 0.4}
    res = dataset_similarity(groups, covariance="empirical", n_bootstrap=n_boot, ci=0.95, seed=seed, progress=False)
    xs = [l2_normalize(groups[k]).astype(np.float64) for k in ("a", "b")]
    brute_rng = np.random.default_rng(seed)
    brute = []
    for _ in range(n_boot):
        idx = [brute_rng.integers(0, len(x), size=(1, len(x)))[0] for x in xs]
        brute.append(_sqrtm_fd(xs[0][idx[0]], xs[1][idx[1]]))
    np.testing.assert_allclose(res.replicates[:, 0, 1], brute, rtol=1e-6, atol=1e-9)
    row = res.table.iloc[0]
    assert row["ci_low"] == pytest.approx(np.quantile(brute, 0.025), rel=1e-6)
    assert row["ci_high"] == pytest.approx(np.quantile(brute, 0.975), rel=1e-6)


# --------------------------------------------------------------------------- probe score intervals


def test_probe_intervals_are_the_central_quantiles_of_brute_force_resamples(rng):
    # Same documented draws as the probes (one rng.integers(0, n, (B, n)) call while B * n <= 2e6),
    # scored by scikit-learn; a 90 % interval (wrong tail) misses the 2.5 / 97.5 % quantiles by far
    # more than the tolerance.
    n, n_boot, seed = 300, 400, 11
    t = rng.normal(size=n)
    p = t + 0.6 * rng.normal(size=n)
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    brute = np.array([r2_score(t[i], p[i]) for i in draws])
    _, lo, hi = probes.bootstrap_r2(t, p, n_bootstrap=n_boot, seed=seed)
    assert lo == pytest.approx(np.quantile(brute, 0.025), abs=1e-9)
    assert hi == pytest.approx(np.quantile(brute, 0.975), abs=1e-9)

    labels = np.array(["a", "b", "c"])
    yt = labels[rng.integers(0, 3, n)]
    yp = np.where(rng.random(n) < 0.7, yt, labels[rng.integers(0, 3, n)])
    brute = np.array([f1_score(yt[i], yp[i], average="macro") for i in draws])
    _, lo, hi = probes.bootstrap_macro_f1(yt, yp, n_bootstrap=n_boot, seed=seed)
    assert lo == pytest.approx(np.quantile(brute, 0.025), abs=1e-9)
    assert hi == pytest.approx(np.quantile(brute, 0.975), abs=1e-9)


def test_probe_r2_interval_coverage_on_synthetic_replications():
    # A fixed predictor y_hat = y + e with y ~ N(0, 1), e ~ N(0, 0.5^2): population R^2 = 1 - 0.25.
    # The nominal 95 % percentile interval must cover it in [0.925, 0.985] of 400 replications
    # (binomial sd 0.011); a 90 % interval (the wrong tail) covers about 0.89.
    truth, reps, n = 0.75, 400, 200
    hits = 0
    for r in range(reps):
        g = np.random.default_rng(5000 + r)
        y = g.normal(size=n)
        y_hat = y + 0.5 * g.normal(size=n)
        _, lo, hi = probes.bootstrap_r2(y, y_hat, n_bootstrap=300, seed=r)
        hits += lo <= truth <= hi
    assert 0.925 <= hits / reps <= 0.985


# --------------------------------------------------------------------------- group-aware resampling


def _clustered_example(rng):
    """Hand-made lesions: every image of a lesion has (almost) the same vector and the same label.

    Training dataset: 80 lesions x 4 images; held-out dataset: 30 lesions x 10 images. The target
    is linear in the lesion's vector plus lesion-level noise, so a probe's errors are shared by all
    images of a lesion: 300 held-out images carry the evidence of 30 lesions.
    """
    d = 6
    w = rng.normal(size=d)
    rows = []
    for lesion in range(110):
        dataset, size = ("train", 4) if lesion < 80 else ("held", 10)
        centre = rng.normal(size=d)
        target = centre @ w + 1.2 * rng.normal()
        for _ in range(size):
            rows.append((dataset, lesion, centre + 0.01 * rng.normal(size=d), target))
    datasets = np.array([r[0] for r in rows])
    lesions = np.array([r[1] for r in rows])
    X = np.array([r[2] for r in rows], dtype=np.float32)
    y = pd.Series([r[3] for r in rows])
    return X, y, lesions, datasets


def _brute_r2_interval(y_true, y_pred, clusters, n_boot, seed):
    """Percentile interval of R^2 over resampled clusters (clusters=None: single rows)."""
    g = np.random.default_rng(seed)
    ids = np.arange(len(y_true)) if clusters is None else clusters
    members = [np.flatnonzero(ids == c) for c in np.unique(ids)]
    reps = []
    for _ in range(n_boot):
        rows = np.concatenate([members[i] for i in g.integers(0, len(members), len(members))])
        reps.append(r2_score(y_true[rows], y_pred[rows]))
    return np.quantile(reps, [0.025, 0.975])


def test_evaluate_attribute_resamples_lesions_not_images(rng):
    X, y, lesions, datasets = _clustered_example(rng)
    groups = probes.leakage_groups(pd.DataFrame({"dataset": datasets, "lesion_id": lesions.astype(str)}))
    ev = probes.evaluate_attribute("age", y, "continuous", {"emb": X}, groups, datasets,
                                   held_out_datasets=["held"], n_bootstrap=1000, seed=0, min_eval_rows=10)
    row = ev.scores.set_index(["eval_set", "model"]).loc[("held", "emb")]
    y_true, y_pred = ev.predictions[("held", "emb")]
    held_lesions = lesions[datasets == "held"]  # eval rows are the held-out dataset's rows, in order
    by_lesion = _brute_r2_interval(y_true, y_pred, held_lesions, 2000, seed=1)
    by_image = _brute_r2_interval(y_true, y_pred, None, 2000, seed=1)
    width = row["ci_high"] - row["ci_low"]
    lesion_width, image_width = np.diff(by_lesion)[0], np.diff(by_image)[0]
    # 10 images per lesion: the image bootstrap is about sqrt(10) ~ 3x too narrow
    assert lesion_width > 2.0 * image_width
    assert 0.75 * lesion_width <= width <= 1.33 * lesion_width
    assert row["ci_low"] == pytest.approx(by_lesion[0], abs=0.25 * lesion_width)
    assert row["ci_high"] == pytest.approx(by_lesion[1], abs=0.25 * lesion_width)


def _duplicated_noise(rng, n_groups=60, copies=5, d=120):
    """Groups of near-identical rows whose target is pure noise shared within the group."""
    centres = rng.normal(size=(n_groups, d))
    X = np.repeat(centres, copies, axis=0) + 0.01 * rng.normal(size=(n_groups * copies, d))
    y = np.repeat(rng.normal(size=n_groups), copies)
    groups = np.repeat(np.arange(n_groups), copies)
    return X.astype(np.float32), y, groups


def test_fit_probe_cv_folds_keep_groups_together(rng):
    # Every CV fold the probe searched over keeps each group on one side (both kinds of target).
    X, y, groups = _duplicated_noise(rng)
    for kind, target in (("continuous", y), ("categorical", np.where(y > 0, "p", "n"))):
        probe = probes.fit_probe(X, target, groups, kind, cv_folds=3, seed=0)
        folds = probe[-1].cv
        assert probe.cv_folds_ == len(folds) == 3
        for train, test in folds:
            assert not set(groups[train]) & set(groups[test])


def test_fit_probe_regularisation_is_chosen_on_unseen_groups(rng):
    # Planted answer: the target is noise shared by 5 near-copies of each vector (d = 120 > the
    # number of groups, so a weakly regularised ridge memorises). On unseen groups nothing is
    # predictable and the strongest penalty of the grid is best; folds that split groups let
    # copies of a test row into training, memorising "works" and the weakest penalty wins.
    X, y, groups = _duplicated_noise(rng)
    grid = (1.0, 10.0, 100.0, 1000.0)
    probe = probes.fit_probe(X, y, groups, "continuous", alpha_grid=grid, cv_folds=3, seed=0)
    assert probe.best_params_["alpha"] == max(grid)
    # the independent check of the premise: row-level folds would have picked the weakest penalty
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = make_pipeline(StandardScaler(), RidgeCV(alphas=grid, cv=KFold(3, shuffle=True, random_state=0),
                                                   scoring="r2")).fit(X, y)
    assert rows[-1].alpha_ == min(grid)
