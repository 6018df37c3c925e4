"""Leakage of lesions across a dataset's partitions, corrected partitions, cross-dataset reuse.

The critique (Abhishek, Jain & Hamarneh 2025; methods.md section 10) found that DermaMNIST spreads the
images of one HAM10000 lesion over its train, validation and test partitions. Published leakage
counts differ because they count different things, so :func:`partition_leakage` reports every
convention side by side, for each pair of partitions and for all of them together:

``lesions``
    lesions (groups) with at least one image in *each* listed partition, whatever they have
    elsewhere ("inclusive": a lesion in all three partitions counts for every pair).
``lesions_exclusive``
    lesions with images in exactly the listed partitions and no other.
``images``
    images of the ``lesions`` that lie in the listed partitions (the sum of the sides);
    ``images_in_<partition>`` gives each side.
``images_exclusive``
    the same for ``lesions_exclusive``.
``pairs``
    cross-partition image tuples of one lesion: for a pair of partitions
    :math:`\\sum_l n_{l,a} n_{l,b}` (image pairs); for all three :math:`\\sum_l n_{l,a} n_{l,b} n_{l,c}`
    (triples).

A last row ``partitions == "any"`` counts lesions with images in two or more partitions, all their
images, and all their cross-partition image pairs (summed over pairs of partitions).

Defined behaviour on bad input (tested):

* an image whose group id is missing is its own group: it cannot leak;
* a dataset whose group ids are all missing gets one row with ``status == "no group ids"``;
* a dataset with fewer than two partitions gets one row with ``status == "single partition"``;
* images with a missing partition are ignored for leakage (``status`` says how many).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import combinations

import numpy as np
import pandas as pd

__all__ = [
    "partition_leakage",
    "leakage_table",
    "correct_move_to_train",
    "correct_multi_partition_to_train",
    "partition_summary",
    "cross_dataset_id_reuse",
    "cross_dataset_embedding_reuse",
    "CONVENTIONS",
]

CONVENTIONS: dict[str, str] = {
    "lesions": "lesions with >= 1 image in each listed partition (other partitions allowed)",
    "lesions_exclusive": "lesions with images in exactly the listed partitions",
    "images": "images of the `lesions` lying in the listed partitions (sum of the sides)",
    "images_exclusive": "images of the `lesions_exclusive` (sum of the sides)",
    "pairs": "cross-partition image pairs (triples for three partitions) of one lesion",
}

_STATUS_OK = "ok"


def _group_keys(groups: pd.Series, index_like: pd.Series) -> pd.Series:
    """Group ids with missing ids replaced by a unique per-image key (a singleton group)."""
    groups = groups.astype("string")
    fill = "__singleton__" + index_like.astype("string")
    return groups.fillna(fill)


def _partition_order(splits: Iterable[str]) -> list[str]:
    """train, val(idation), test first in that order, then any other names sorted."""
    known = ["train", "val", "valid", "validation", "test"]
    names = sorted(set(splits))
    return [s for s in known if s in names] + [s for s in names if s not in known]


def partition_leakage(
    splits: Sequence,
    groups: Sequence,
    *,
    dataset: str = "",
    group_by: str = "lesion_id",
) -> pd.DataFrame:
    """Leakage counts of one dataset under every convention in :data:`CONVENTIONS`.

    ``splits[i]`` is image i's partition, ``groups[i]`` its lesion (or patient) id. Returns one
    row per pair of partitions and one for all partitions together (when there are three or more),
    with columns ``dataset, group_by, partitions ("train|val"), n_partitions, lesions,
    lesions_exclusive, images, images_exclusive, pairs, images_in_<p>..., status``.
    """
    splits = pd.Series(pd.array(splits, dtype="string"), name="split")
    raw_groups = pd.Series(pd.array(groups, dtype="string"), name="group")
    if len(splits) != len(raw_groups):
        raise ValueError(f"splits ({len(splits)}) and groups ({len(raw_groups)}) differ in length")
    n_missing_split = int(splits.isna().sum())
    base = {"dataset": dataset, "group_by": group_by}
    parts = _partition_order(splits.dropna().unique())
    status_extra = f"; {n_missing_split} image(s) without partition ignored" if n_missing_split else ""
    if len(parts) < 2:
        return pd.DataFrame([{**base, "partitions": "|".join(parts) or pd.NA, "n_partitions": len(parts),
                              "status": "single partition" + status_extra}])
    if raw_groups.notna().sum() == 0:
        return pd.DataFrame([{**base, "partitions": "|".join(parts), "n_partitions": len(parts),
                              "status": f"no group ids ({group_by} missing)" + status_extra}])
    keys = _group_keys(raw_groups, pd.Series(np.arange(len(splits))).astype("string"))
    keep = splits.notna()
    counts = pd.crosstab(keys[keep], splits[keep]).reindex(columns=parts, fill_value=0)
    present = counts > 0
    n_present = present.sum(axis=1)
    subsets = [list(c) for c in combinations(parts, 2)]
    if len(parts) >= 3:
        subsets.append(parts)
    rows = []
    for sub in subsets:
        inclusive = present[sub].all(axis=1)
        exclusive = inclusive & (n_present == len(sub))
        row = {
            **base,
            "partitions": "|".join(sub),
            "n_partitions": len(sub),
            "lesions": int(inclusive.sum()),
            "lesions_exclusive": int(exclusive.sum()),
            "images": int(counts.loc[inclusive, sub].to_numpy().sum()),
            "images_exclusive": int(counts.loc[exclusive, sub].to_numpy().sum()),
            "pairs": int(counts.loc[inclusive, sub].prod(axis=1).sum()),
        }
        for p in parts:
            row[f"images_in_{p}"] = int(counts.loc[inclusive, p].sum()) if p in sub else pd.NA
        row["status"] = _STATUS_OK + status_extra
        rows.append(row)
    # "any": lesions in two or more partitions, all their images, all cross-partition pairs.
    leaky = n_present >= 2
    pair_total = sum(int(counts.loc[leaky, list(c)].prod(axis=1).sum()) for c in combinations(parts, 2))
    row = {**base, "partitions": "any", "n_partitions": pd.NA, "lesions": int(leaky.sum()),
           "lesions_exclusive": pd.NA, "images": int(counts.loc[leaky].to_numpy().sum()),
           "images_exclusive": pd.NA, "pairs": pair_total}
    for p in parts:
        row[f"images_in_{p}"] = int(counts.loc[leaky, p].sum())
    row["status"] = _STATUS_OK + status_extra
    rows.append(row)
    out = pd.DataFrame(rows)
    int_cols = ["n_partitions"]
    int_cols += ["lesions", "lesions_exclusive", "images", "images_exclusive", "pairs"]
    int_cols += [c for c in out.columns if c.startswith("images_in_")]
    return out.astype({c: "Int64" for c in int_cols})


def leakage_table(
    catalog: pd.DataFrame,
    *,
    split_col: str = "split",
    group_cols: Sequence[str] = ("lesion_id", "patient_id"),
) -> pd.DataFrame:
    """:func:`partition_leakage` for every dataset of a catalog.

    Each dataset is grouped by the first of ``group_cols`` that has any value in it (lesion id,
    else patient id); the chosen column is reported in ``group_by``. Datasets without a
    partition column value at all get a "single partition" row like any one-partition dataset.
    """
    frames = []
    for name, sub in catalog.groupby("dataset", sort=True, dropna=False):
        group_by = next((c for c in group_cols if c in sub and sub[c].notna().any()), group_cols[0])
        groups = sub[group_by] if group_by in sub else pd.Series(pd.NA, index=sub.index)
        splits = sub[split_col] if split_col in sub else pd.Series(pd.NA, index=sub.index)
        frames.append(partition_leakage(splits, groups, dataset=str(name), group_by=group_by))
    if not frames:
        return pd.DataFrame(columns=["dataset", "group_by", "partitions", "status"])
    out = pd.concat(frames, ignore_index=True)
    first = ["dataset", "group_by", "partitions", "n_partitions", "lesions", "lesions_exclusive",
             "images", "images_exclusive", "pairs"]
    for col in first[3:]:  # the same columns even when no dataset has usable group ids
        if col not in out:
            out[col] = pd.array([pd.NA] * len(out), dtype="Int64")
    return out[first + [c for c in out.columns if c not in first]]


def correct_move_to_train(splits: Sequence, groups: Sequence, *, train: str = "train") -> pd.Series:
    """Corrected partition (a), the critique's rule as worded: every image of a lesion that has any
    image in ``train`` moves to ``train``. Leakage between the other partitions stays."""
    splits = pd.Series(pd.array(splits, dtype="string"))
    keys = _group_keys(pd.Series(pd.array(groups, dtype="string")), pd.Series(np.arange(len(splits))).astype("string"))
    in_train = keys.isin(set(keys[splits == train]))
    return splits.mask(in_train, train)


def correct_multi_partition_to_train(
    splits: Sequence,
    groups: Sequence,
    image_ids: Sequence,
    *,
    duplicate_pairs: Iterable[tuple[str, str]] = (),
    train: str = "train",
) -> pd.Series:
    """Corrected partition (b): every lesion present in more than one partition moves to ``train``;
    then every confirmed duplicate pair (``image_a, image_b``) whose images still lie in different
    partitions moves to ``train``, each image together with all images of its lesion (so that the
    move creates no new lesion leakage). Pairs naming unknown images are ignored."""
    splits = pd.Series(pd.array(splits, dtype="string"))
    ids = pd.Series(pd.array(image_ids, dtype="string"))
    keys = _group_keys(pd.Series(pd.array(groups, dtype="string")), ids.fillna(pd.Series(np.arange(len(ids))).astype("string")))
    n_parts = splits.groupby(keys).nunique()
    multi = set(n_parts.index[n_parts > 1])
    out = splits.mask(keys.isin(multi), train)
    pos = pd.Series(np.arange(len(ids)), index=ids.to_numpy())
    move: set[str] = set()
    for a, b in duplicate_pairs:
        if a not in pos.index or b not in pos.index:
            continue
        ia, ib = int(pos[a]), int(pos[b])
        if out.iloc[ia] != out.iloc[ib]:
            move.update({keys.iloc[ia], keys.iloc[ib]})
    return out.mask(keys.isin(move), train)


def partition_summary(splits: Sequence, labels: Sequence, *, name: str = "") -> pd.DataFrame:
    """Partition sizes and per-diagnosis counts: one row per partition, one column per label
    (plus ``n_images``); ``name`` labels the partition scheme."""
    df = pd.DataFrame({"split": pd.array(splits, dtype="string"),
                       "label": pd.array(labels, dtype="string").fillna("unknown")})
    table = pd.crosstab(df["split"], df["label"])
    table = table.reindex(_partition_order(table.index))
    table.insert(0, "n_images", table.sum(axis=1))
    table.insert(0, "scheme", name)
    return table.reset_index().rename_axis(columns=None)


def cross_dataset_id_reuse(catalog: pd.DataFrame, *, id_col: str = "image_id") -> pd.DataFrame:
    """Images whose identifier occurs in more than one dataset (id-level reuse).

    Returns one row per (dataset_a, dataset_b) pair with ``n_shared`` ids, plus the evidence
    from the catalog's ``also_in`` column where present (``n_also_in``: rows of dataset_a that
    name dataset_b in ``also_in``). Missing ids never match.
    """
    ids = catalog[["dataset", id_col]].dropna().drop_duplicates()
    merged = ids.merge(ids, on=id_col, suffixes=("_a", "_b"))
    merged = merged[merged["dataset_a"] < merged["dataset_b"]]
    out = merged.groupby(["dataset_a", "dataset_b"]).size().rename("n_shared").reset_index()
    if "also_in" in catalog:
        rows = []
        also = catalog[["dataset", "also_in"]].dropna()
        names = sorted(catalog["dataset"].dropna().unique())
        for a in names:
            sub = also.loc[also["dataset"] == a, "also_in"].astype(str)
            for b in names:
                if a != b:
                    n = int(sub.str.contains(rf"(?:^|[;,|\s]){b}(?:/|$|[;,|\s])", regex=True).sum())
                    if n:
                        rows.append({"dataset_a": a, "dataset_b": b, "n_also_in": n})
        if rows:
            ev = pd.DataFrame(rows)
            ev[["dataset_a", "dataset_b"]] = np.sort(ev[["dataset_a", "dataset_b"]].to_numpy(), axis=1)
            ev = ev.groupby(["dataset_a", "dataset_b"], as_index=False)["n_also_in"].max()
            out = out.merge(ev, on=["dataset_a", "dataset_b"], how="outer")
    out["n_shared"] = out["n_shared"].fillna(0).astype(int)
    return out.sort_values(["dataset_a", "dataset_b"]).reset_index(drop=True)


def cross_dataset_embedding_reuse(pairs: pd.DataFrame, datasets: pd.Series | Sequence) -> pd.DataFrame:
    """Near-identical image pairs (from :func:`~skinmap.analysis.quality.duplicates.near_duplicate_pairs`,
    columns ``i, j, similarity``) whose images belong to different datasets.

    Returns one row per unordered dataset pair with ``n_pairs``, ``n_images_a``, ``n_images_b``
    (distinct images of each side involved) and ``max_similarity``.
    """
    datasets = np.asarray(pd.array(datasets, dtype="string").fillna("unknown"), dtype=object)
    cols = ["dataset_a", "dataset_b", "n_pairs", "n_images_a", "n_images_b", "max_similarity"]
    if len(pairs) == 0:
        return pd.DataFrame(columns=cols)
    da, db = datasets[pairs["i"].to_numpy()], datasets[pairs["j"].to_numpy()]
    cross = da != db
    if not cross.any():
        return pd.DataFrame(columns=cols)
    i, j = pairs["i"].to_numpy()[cross], pairs["j"].to_numpy()[cross]
    da, db = da[cross], db[cross]
    swap = da > db
    a_img, b_img = np.where(swap, j, i), np.where(swap, i, j)
    df = pd.DataFrame({"dataset_a": np.where(swap, db, da), "dataset_b": np.where(swap, da, db),
                       "img_a": a_img, "img_b": b_img,
                       "similarity": pairs["similarity"].to_numpy()[cross]})
    out = df.groupby(["dataset_a", "dataset_b"]).agg(
        n_pairs=("similarity", "size"), n_images_a=("img_a", "nunique"),
        n_images_b=("img_b", "nunique"), max_similarity=("similarity", "max")).reset_index()
    return out[cols]
