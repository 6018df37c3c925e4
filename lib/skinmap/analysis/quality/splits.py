"""The critique's cleaning rule and a lesion-grouped, diagnosis-stratified re-split.

Cleaning (methods.md section 10), applied to the near-duplicate clusters of
:mod:`skinmap.analysis.quality.duplicates`:

1. drop every image of a *conflicting* cluster (diagnosis or FST disagree: no trustworthy label);
2. keep one image of each *homogeneous* cluster: the largest by resolution (width x height; a
   missing size counts as 0 pixels); ties go to the smallest ``uid`` in string order, so the
   choice is deterministic;
3. drop images flagged as off-topic.

A cluster spanning datasets is handled like any other: its one kept image may come from either
dataset (the largest), which removes the cross-dataset copy from the cleaned table.

Then :func:`stratified_group_split` assigns train/validation/test 70:10:20 with scikit-learn's
``StratifiedGroupKFold`` (10 folds: 7 train, 1 validation, 2 test), so that all images of one lesion
share a partition and diagnoses keep their proportions as far as groups allow.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

__all__ = ["clean_table", "stratified_group_split"]


def clean_table(
    meta: pd.DataFrame,
    clusters: np.ndarray,
    cluster_info: pd.DataFrame,
    *,
    offtopic: np.ndarray | None = None,
) -> pd.DataFrame:
    """Apply the cleaning rule; return ``meta`` with a ``clean_action`` column and ``keep`` flag.

    ``meta`` (aligned with ``clusters``) needs ``uid`` and may have ``width``/``height``;
    ``cluster_info`` is :func:`~skinmap.analysis.quality.duplicates.cluster_table`'s output.
    ``clean_action`` is one of "keep", "keep_cluster_representative", "drop_conflicting_cluster",
    "drop_duplicate", "drop_offtopic" (off-topic wins over the cluster actions).
    """
    out = meta.copy()
    n = len(out)
    clusters = np.asarray(clusters)
    if len(clusters) != n:
        raise ValueError(f"clusters ({len(clusters)}) not aligned with meta ({n})")
    action = np.full(n, "keep", dtype=object)
    conflict = dict(zip(cluster_info["cluster"], cluster_info["conflict"]))
    width = pd.to_numeric(out.get("width", pd.Series(np.nan, index=out.index)), errors="coerce").fillna(0)
    height = pd.to_numeric(out.get("height", pd.Series(np.nan, index=out.index)), errors="coerce").fillna(0)
    pixels = (width * height).to_numpy()
    uids = out["uid"].astype(str).to_numpy()
    in_cluster = np.isin(clusters, list(conflict))
    for c in np.unique(clusters[in_cluster]):
        members = np.flatnonzero(clusters == c)
        if conflict[c] != "homogeneous":
            action[members] = "drop_conflicting_cluster"
            continue
        # largest resolution first, then smallest uid: lexsort sorts by the last key first.
        best = members[np.lexsort((uids[members], -pixels[members]))[0]]
        action[members] = "drop_duplicate"
        action[best] = "keep_cluster_representative"
    if offtopic is not None:
        action[np.asarray(offtopic, dtype=bool)] = "drop_offtopic"
    out["cluster"] = clusters
    out["clean_action"] = action
    out["keep"] = np.char.startswith(action.astype(str), "keep")
    return out


def stratified_group_split(
    labels: Sequence,
    groups: Sequence,
    *,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    names: tuple[str, str, str] = ("train", "val", "test"),
) -> np.ndarray:
    """Partition names for each image: lesion-grouped, label-stratified, ``fractions`` of images.

    ``fractions`` must be multiples of 0.1 summing to 1 (they become folds of a 10-fold
    ``StratifiedGroupKFold``). Missing labels form their own stratum "unknown"; missing group ids
    make an image its own group. With fewer than 10 groups the groups are shuffled and cut at the
    cumulative fractions instead (no stratification possible).
    """
    folds = np.round(np.asarray(fractions, dtype=float) * 10).astype(int)
    if len(folds) != 3 or folds.sum() != 10 or not np.allclose(folds / 10, fractions) or (folds < 0).any():
        raise ValueError(f"fractions must be three multiples of 0.1 summing to 1, got {fractions}")
    n = len(labels)
    y = pd.Series(pd.array(labels, dtype="string")).fillna("unknown").to_numpy()
    g = pd.Series(pd.array(groups, dtype="string"))
    g = g.fillna("__singleton__" + pd.Series(np.arange(n)).astype("string")).to_numpy()
    fold_to_name = np.repeat(np.array(names, dtype=object), folds)
    out = np.empty(n, dtype=object)
    uniq = pd.unique(g)
    if len(uniq) < 10:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(uniq))
        size = pd.Series(g).value_counts().reindex(uniq[order]).to_numpy()
        cum = np.cumsum(size) / max(n, 1)
        cut = np.cumsum(folds) / 10
        part = {grp: names[int(np.searchsorted(cut, c - 1e-12))] for grp, c in zip(uniq[order], cum - size / max(n, 1) / 2)}
        return np.array([part[x] for x in g], dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has only m members"
        skf = StratifiedGroupKFold(n_splits=10, shuffle=True, random_state=seed)
        for fold, (_, idx) in enumerate(skf.split(np.zeros(n), y, g)):
            out[idx] = fold_to_name[fold]
    return out
