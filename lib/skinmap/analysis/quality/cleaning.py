"""The critique's cleaning pipeline end to end, and the cleaned dataset's datasheet.

:func:`clean_dataset` runs, on one table of images and their vectors, every step of methods.md
section 10 in order: near-duplicate pairs at a cosine threshold
(:func:`~skinmap.analysis.quality.duplicates.near_duplicate_pairs`), union-find clusters and their
label conflicts (:func:`~skinmap.analysis.quality.duplicates.find_duplicates`), off-topic scores
(:mod:`~skinmap.analysis.quality.outliers`), the cleaning rule
(:func:`~skinmap.analysis.quality.splits.clean_table`) and the lesion-grouped, diagnosis-stratified
70:10:20 re-split (:func:`~skinmap.analysis.quality.splits.stratified_group_split`). A user who has
a dataset's images (e.g. Fitzpatrick17k, whose images are distributed as URLs) gets the cleaned
table and its split from one call.

:func:`cleaned_rows` turns the chapter's cleaned table into the documented export (one row per
image: kept or dropped, the reason, the original and the new partition) and :func:`datasheet` into
the numbers a user cites (counts per dataset and reason, the rules and thresholds applied).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from skinmap.analysis.quality import duplicates, outliers, splits

__all__ = ["REASONS", "clean_dataset", "cleaned_rows", "datasheet"]

#: Why a row is kept or dropped (the ``clean_action`` of :func:`~skinmap.analysis.quality.splits.clean_table`).
REASONS: dict[str, str] = {
    "keep": "kept: in no near-duplicate cluster and not off-topic",
    "keep_cluster_representative": "kept: the largest image of a homogeneous near-duplicate cluster",
    "drop_duplicate": "dropped: another image of its homogeneous cluster is kept",
    "drop_conflicting_cluster": "dropped: its near-duplicate cluster disagrees on diagnosis or skin type",
    "drop_offtopic": "dropped: off-topic (far from every other image)",
}


def clean_dataset(
    meta: pd.DataFrame,
    vectors: np.ndarray,
    *,
    threshold: float = 0.95,
    n_neighbors: int = 20,
    label_col: str = "diagnosis",
    group_col: str | None = "lesion_id",
    offtopic_n_neighbors: int = 10,
    offtopic_z: float = 5.0,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean one dataset by the critique's rule and re-split it.

    Parameters
    ----------
    meta : DataFrame of n rows
        Needs ``uid``, ``dataset``, ``label_col``; ``fst``, ``width``, ``height`` and ``group_col``
        are used when present.
    vectors : array of shape (n, d)
        One embedding row per ``meta`` row (cosine similarity is taken on l2-normalised rows).
    threshold : float
        Cosine threshold of a near-duplicate pair.

    Returns
    -------
    cleaned : DataFrame
        ``meta`` with ``cluster``, ``clean_action``, ``keep`` and ``split_clean`` (NA for dropped rows).
    pairs : DataFrame
        The near-duplicate pairs (``image_a, image_b, similarity, cluster, conflict``).
    """
    if len(meta) != len(vectors):
        raise ValueError(f"meta has {len(meta)} rows but vectors {len(vectors)}")
    meta = meta.reset_index(drop=True)
    raw = duplicates.near_duplicate_pairs(np.asarray(vectors, np.float32), threshold, n_neighbors=n_neighbors)
    pairs, clusters, info = duplicates.find_duplicates(duplicates.named_pairs(raw, meta["uid"]), meta,
                                                       label_col=label_col)
    k = max(1, min(offtopic_n_neighbors, len(meta) - 1))
    flagged = outliers.flag_offtopic(outliers.offtopic_scores(vectors, n_neighbors=k), z_threshold=offtopic_z)
    cleaned = splits.clean_table(meta, clusters, info, offtopic=flagged)
    kept = cleaned["keep"].to_numpy()
    if group_col and group_col in cleaned:
        groups = cleaned[group_col].astype("string").fillna(cleaned["uid"].astype("string"))
    else:
        groups = cleaned["uid"].astype("string")
    split = pd.Series(pd.NA, index=cleaned.index, dtype="string")
    if kept.any():
        split[kept] = splits.stratified_group_split(cleaned.loc[kept, label_col], groups[kept],
                                                    fractions=fractions, seed=seed)
    cleaned["split_clean"] = split
    return cleaned, pairs


def cleaned_rows(cleaned: pd.DataFrame) -> pd.DataFrame:
    """The documented export of a cleaned table: one row per image with ``dataset, uid, image_id,
    kept, reason, clean_action, cluster, split (original), split_clean``."""
    out = pd.DataFrame({
        "dataset": cleaned["dataset"].astype("string"),
        "uid": cleaned["uid"].astype("string"),
        "image_id": cleaned["image_id"].astype("string") if "image_id" in cleaned else pd.NA,
        "kept": cleaned["keep"].astype(bool),
        "reason": cleaned["clean_action"].map(REASONS),
        "clean_action": cleaned["clean_action"],
        "cluster": cleaned["cluster"].astype(int),
        "split": cleaned["split"].astype("string") if "split" in cleaned else pd.NA,
        "split_clean": cleaned["split_clean"].astype("string") if "split_clean" in cleaned else pd.NA,
    })
    return out.sort_values(["dataset", "uid"], kind="stable").reset_index(drop=True)


def datasheet(rows: pd.DataFrame, rules: Mapping[str, object], versions: Mapping[str, str]) -> dict:
    """What a user cites for the cleaned datasets: per dataset the input, kept and dropped counts,
    the dropped count per reason and the new partition sizes; the rules and thresholds applied;
    the software versions. ``rows`` is :func:`cleaned_rows`."""
    per = {}
    for name, sub in rows.groupby("dataset", sort=True):
        per[str(name)] = {
            "images": int(len(sub)),
            "kept": int(sub["kept"].sum()),
            "dropped": int((~sub["kept"]).sum()),
            "by_action": {str(k): int(v) for k, v in sub["clean_action"].value_counts().sort_index().items()},
            "split_clean": {str(k): int(v) for k, v in sub["split_clean"].dropna().value_counts().sort_index().items()},
        }
    return {"datasets": per, "reasons": dict(REASONS), "rules": dict(rules), "versions": dict(versions),
            "totals": {"images": int(len(rows)), "kept": int(rows["kept"].sum()),
                       "dropped": int((~rows["kept"]).sum())}}
