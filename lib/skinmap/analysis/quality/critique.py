"""What the critique reported, in the critique's own units (methods.md section 10).

Abhishek, Jain & Hamarneh (Scientific Data 2025) counted things our own rules count differently;
this module reproduces their units so the chapter can put both side by side:

``images_per_lesion``
    how many lesions have 1, 2, 3, ... images (HAM10000's lesion multiplicity);
``crossing_pairs``
    how many of a list of image pairs (the released ``newly_discovered_duplicates.csv``) still lie
    in two different partitions, per partition pair, under each partition scheme;
``exact_top_pairs`` / ``pair_ranks`` / ``top_pair_review``
    the critique's "missed duplicates" review: the most similar image pairs of an embedding,
    exactly (every pair, not a k-NN shortlist), reviewed in intervals of ``bin_size`` ranks against
    the metadata (same lesion or not), and the rank of any given pair among all pairs;
``pair_conflicts`` / ``pair_conflict_summary``
    near-duplicate pairs with their conflicts counted **per pair** as the critique did (diagnosis
    differs; Fitzpatrick type differs by at least 1 and by more than 1); the per-cluster convention
    is :func:`skinmap.analysis.quality.duplicates.duplicate_summary`;
``extended_test_set``
    DermaMNIST-E's test partition built from ISIC 2018 Task 3's own test partition minus the
    "easter egg" image;
``qc_summary``
    the quality-control column of a table (Fitzpatrick17k's ``qc``): how many rows were reviewed
    and how they were judged.

Conventions: a missing label or skin type is never evidence of a conflict; pairs are unordered
(``i < j``); similarities are cosine similarities of l2-normalised vectors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations

import numpy as np
import pandas as pd

__all__ = [
    "EASTER_EGG",
    "images_per_lesion",
    "crossing_pairs",
    "exact_top_pairs",
    "pair_ranks",
    "same_group",
    "top_pair_review",
    "pair_conflicts",
    "pair_conflict_summary",
    "threshold_counts",
    "extended_test_set",
    "qc_summary",
]

#: The ISIC 2018 Task 3 test image the critique drops from DermaMNIST-E (not a skin lesion).
EASTER_EGG = "ISIC_0035068"


def images_per_lesion(groups: Sequence) -> pd.DataFrame:
    """How many lesions have 1, 2, 3, ... images.

    Parameters
    ----------
    groups : sequence of length n_images
        Each image's lesion id; a missing id makes the image its own lesion.

    Returns
    -------
    DataFrame indexed by ``images_per_lesion`` (1, 2, ..., max) with ``lesions`` (count),
    ``images`` (= lesions x images_per_lesion) and ``share_of_lesions``; every multiplicity from 1
    to the maximum has a row (zero counts included).
    """
    g = pd.Series(pd.array(groups, dtype="string"))
    g = g.fillna("__singleton__" + pd.Series(np.arange(len(g))).astype("string"))
    sizes = g.value_counts().to_numpy()
    if len(sizes) == 0:
        return pd.DataFrame({"lesions": [], "images": [], "share_of_lesions": []},
                            index=pd.Index([], name="images_per_lesion"))
    counts = np.bincount(sizes)[1:]
    mult = np.arange(1, len(counts) + 1)
    out = pd.DataFrame({"lesions": counts, "images": counts * mult, "share_of_lesions": counts / counts.sum()},
                       index=pd.Index(mult, name="images_per_lesion"))
    return out


def crossing_pairs(
    pairs: Iterable[tuple[str, str]],
    image_ids: Sequence,
    schemes: Mapping[str, Sequence],
) -> pd.DataFrame:
    """How many image pairs lie in two different partitions, per partition pair and scheme.

    Parameters
    ----------
    pairs : iterable of (image_a, image_b)
        Unordered pairs of image ids (e.g. the released newly discovered duplicates).
    image_ids : sequence of length n
        The ids the partitions refer to.
    schemes : mapping name -> sequence of length n
        Each scheme's partition of every image (``original``, corrections ...).

    Returns
    -------
    DataFrame with one row per scheme and partition pair (``"train|test"``; the pair's two
    partitions in train, val, test order), plus ``"same partition"`` and ``"not found"`` rows:
    ``scheme, partitions, n_pairs``. Each pair counts once per scheme.
    """
    pairs = [(str(a), str(b)) for a, b in pairs]
    ids = pd.Series(np.arange(len(image_ids)), index=pd.Index(pd.array(image_ids, dtype="string")))
    order = {"train": 0, "val": 1, "valid": 1, "validation": 1, "test": 2}
    rows = []
    for name, split in schemes.items():
        split = np.asarray(pd.array(split, dtype="string"), dtype=object)
        if len(split) != len(ids):
            raise ValueError(f"scheme {name!r} has {len(split)} entries, expected {len(ids)}")
        parts = sorted({p for p in split if p is not pd.NA and p is not None}, key=lambda p: (order.get(p, 9), p))
        counts = {"|".join(c): 0 for c in combinations(parts, 2)}
        same = missing = 0
        for a, b in pairs:
            if a not in ids.index or b not in ids.index:
                missing += 1
                continue
            pa, pb = split[ids[a]], split[ids[b]]
            if pa is pd.NA or pb is pd.NA:
                missing += 1
            elif pa == pb:
                same += 1
            else:
                key = "|".join(sorted((pa, pb), key=lambda p: (order.get(p, 9), p)))
                counts[key] = counts.get(key, 0) + 1
        for key, n in counts.items():
            rows.append({"scheme": name, "partitions": key, "n_pairs": n})
        rows.append({"scheme": name, "partitions": "same partition", "n_pairs": same})
        rows.append({"scheme": name, "partitions": "not found", "n_pairs": missing})
    return pd.DataFrame(rows, columns=["scheme", "partitions", "n_pairs"]).astype({"n_pairs": int})


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1)


def exact_top_pairs(embeddings: np.ndarray, n_top: int, *, block: int = 512) -> pd.DataFrame:
    """The ``n_top`` most similar unordered pairs ``i < j`` among all ``n (n - 1) / 2`` pairs.

    Exact: every pair is scored (block by block, memory ``block x n``), unlike a k-NN shortlist,
    which misses pairs of an image with more than k close partners.

    Parameters
    ----------
    embeddings : array of shape (n, d)
        Vectors (l2-normalised here).
    n_top : int
        How many pairs to return (fewer when there are fewer pairs).

    Returns
    -------
    DataFrame ``rank (1..), i, j, similarity`` sorted by decreasing similarity (ties by i, j).
    """
    z = _unit(embeddings)
    n = len(z)
    if n_top < 1:
        raise ValueError(f"n_top must be >= 1, got {n_top}")
    best_i = np.array([], np.int64)
    best_j = np.array([], np.int64)
    best_s = np.array([], np.float32)
    for start in range(0, n, block):
        stop = min(start + block, n)
        s = z[start:stop] @ z.T
        rows, cols = np.nonzero(np.arange(n)[None, :] > np.arange(start, stop)[:, None])
        vals = s[rows, cols]
        if len(vals) > n_top:  # only this block's n_top best can enter the overall n_top
            keep = np.argpartition(-vals, n_top - 1)[:n_top]
            rows, cols, vals = rows[keep], cols[keep], vals[keep]
        if len(best_s) >= n_top:
            floor = best_s[-1]
            keep = vals >= floor
            rows, cols, vals = rows[keep], cols[keep], vals[keep]
        best_i = np.concatenate([best_i, rows + start])
        best_j = np.concatenate([best_j, cols])
        best_s = np.concatenate([best_s, vals])
        order = np.lexsort((best_j, best_i, -best_s))[:n_top]
        best_i, best_j, best_s = best_i[order], best_j[order], best_s[order]
    return pd.DataFrame({"rank": np.arange(1, len(best_s) + 1), "i": best_i, "j": best_j,
                         "similarity": np.minimum(best_s, 1.0)})


def pair_ranks(embeddings: np.ndarray, i: Sequence[int], j: Sequence[int], *, block: int = 512) -> pd.DataFrame:
    """The rank of given pairs among all unordered pairs of ``embeddings`` by similarity.

    Rank 1 is the most similar pair; a pair's rank is ``1 +`` the number of pairs strictly more
    similar (ties share the best rank). Exact, block by block.

    Returns
    -------
    DataFrame ``i, j, similarity, rank`` in the order given.
    """
    z = _unit(embeddings)
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    n = len(z)
    blocks = []
    s_q = np.full(len(i), np.nan, dtype=np.float32)
    for start in range(0, n, block):  # first pass: the queries' similarities exactly as the counts see them
        stop = min(start + block, n)
        s = z[start:stop] @ z.T
        mine = (lo >= start) & (lo < stop)
        s_q[mine] = s[lo[mine] - start, hi[mine]]
        upper = np.arange(n)[None, :] > np.arange(start, stop)[:, None]
        blocks.append(np.sort(s[upper]))
    order = np.sort(s_q)
    above = np.zeros(len(order), dtype=np.int64)  # pairs strictly above each sorted query similarity
    for vals in blocks:
        above += len(vals) - np.searchsorted(vals, order, side="right")
    rank = 1 + above[np.searchsorted(order, s_q)] if len(s_q) else np.array([], np.int64)
    return pd.DataFrame({"i": i, "j": j, "similarity": np.minimum(s_q, 1.0), "rank": rank})


def same_group(i: Sequence[int], j: Sequence[int], groups: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """For pairs ``(i[k], j[k])``: whether both group ids are known, and whether they are equal
    (False when either is missing). Returns two boolean arrays of the pairs' length."""
    g = np.asarray(pd.array(groups, dtype="string"), dtype=object)
    ga, gb = g[np.asarray(i, dtype=np.int64)], g[np.asarray(j, dtype=np.int64)]
    known = np.array([a is not pd.NA and b is not pd.NA for a, b in zip(ga, gb)], dtype=bool)
    same = np.array([bool(k) and a == b for a, b, k in zip(ga, gb, known)], dtype=bool)
    return known, same


def top_pair_review(top: pd.DataFrame, groups: Sequence, *, bin_size: int = 100) -> pd.DataFrame:
    """The critique's review of the most similar pairs, in intervals of ``bin_size`` ranks.

    Parameters
    ----------
    top : DataFrame with ``rank, i, j``
        :func:`exact_top_pairs`.
    groups : sequence
        Each image's lesion id (missing: confirmed by nothing).

    Returns
    -------
    DataFrame indexed by ``ranks`` ("1-100", ...) with ``pairs``, ``same_lesion`` (the metadata
    confirms the pair), ``different_lesion`` (both ids known and different), ``unknown`` (an id is
    missing) and ``confirmed_per_100`` (same-lesion pairs per 100 pairs of the interval).
    """
    known, same = same_group(top["i"].to_numpy(), top["j"].to_numpy(), groups)
    b = (top["rank"].to_numpy() - 1) // bin_size
    df = pd.DataFrame({"bin": b, "same": same, "different": known & ~same, "unknown": ~known})
    out = df.groupby("bin").agg(pairs=("same", "size"), same_lesion=("same", "sum"),
                                different_lesion=("different", "sum"), unknown=("unknown", "sum"))
    out.index = [f"{k * bin_size + 1}-{(k + 1) * bin_size}" for k in out.index]
    out.index.name = "ranks"
    out = out.astype(int)
    out["confirmed_per_100"] = 100 * out["same_lesion"] / out["pairs"]
    return out


def pair_conflicts(pairs: pd.DataFrame, labels: Sequence, fst: Sequence) -> pd.DataFrame:
    """Each pair's own conflicts, the critique's per-pair convention.

    Parameters
    ----------
    pairs : DataFrame with ``i, j``
        Image index pairs.
    labels, fst : sequences of length n_images
        Diagnosis and Fitzpatrick type (1-6) of every image; missing values allowed.

    Returns
    -------
    ``pairs`` with ``diagnosis_differs`` (both known and different), ``fst_difference``
    (``|FST_i - FST_j|``, NaN when either is missing), ``fst_differs_at_least_1`` (difference >= 1)
    and ``fst_differs_more_than_1`` (difference > 1).
    """
    lab = np.asarray(pd.array(labels, dtype="string"), dtype=object)
    f = pd.to_numeric(pd.Series(fst), errors="coerce").to_numpy(dtype=float)
    i, j = pairs["i"].to_numpy(np.int64), pairs["j"].to_numpy(np.int64)
    la, lb = lab[i], lab[j]
    known = np.array([a is not pd.NA and b is not pd.NA for a, b in zip(la, lb)], dtype=bool)
    out = pairs.copy()
    out["diagnosis_differs"] = known & np.array([k and a != b for a, b, k in zip(la, lb, known)], dtype=bool)
    diff = np.abs(f[i] - f[j])
    out["fst_difference"] = diff
    with np.errstate(invalid="ignore"):
        out["fst_differs_at_least_1"] = np.nan_to_num(diff, nan=0.0) >= 1
        out["fst_differs_more_than_1"] = np.nan_to_num(diff, nan=0.0) > 1
    return out


def pair_conflict_summary(conflicts: pd.DataFrame) -> dict[str, int]:
    """Counts of :func:`pair_conflicts`: ``pairs``, ``images`` (distinct images in any pair),
    ``diagnosis_differs``, ``fst_differs_at_least_1``, ``fst_differs_more_than_1``,
    ``fst_known`` (pairs whose two skin types are known) and ``conflicting`` (pairs with a
    diagnosis difference or an FST difference >= 1)."""
    if len(conflicts) == 0:
        return dict.fromkeys(["pairs", "images", "diagnosis_differs", "fst_differs_at_least_1",
                              "fst_differs_more_than_1", "fst_known", "conflicting"], 0)
    return {
        "pairs": int(len(conflicts)),
        "images": int(len(np.unique(np.concatenate([conflicts["i"].to_numpy(), conflicts["j"].to_numpy()])))),
        "diagnosis_differs": int(conflicts["diagnosis_differs"].sum()),
        "fst_differs_at_least_1": int(conflicts["fst_differs_at_least_1"].sum()),
        "fst_differs_more_than_1": int(conflicts["fst_differs_more_than_1"].sum()),
        "fst_known": int(np.isfinite(conflicts["fst_difference"].to_numpy(dtype=float)).sum()),
        "conflicting": int((conflicts["diagnosis_differs"] | conflicts["fst_differs_at_least_1"]).sum()),
    }


def threshold_counts(similarities: np.ndarray, i: np.ndarray, j: np.ndarray,
                     thresholds: Sequence[float]) -> pd.DataFrame:
    """Pairs at or above each threshold and the distinct images they involve (step 1 of the
    critique's near-duplicate search).

    Returns
    -------
    DataFrame indexed by ``threshold`` with ``pairs`` and ``images``.
    """
    s = np.asarray(similarities, dtype=float)
    i, j = np.asarray(i), np.asarray(j)
    rows = []
    for t in thresholds:
        hit = s >= t - 1e-6
        rows.append({"threshold": float(t), "pairs": int(hit.sum()),
                     "images": int(len(np.unique(np.concatenate([i[hit], j[hit]]))))})
    return pd.DataFrame(rows).set_index("threshold")


def extended_test_set(image_ids: Sequence, *, drop: Sequence[str] = (EASTER_EGG,)) -> pd.DataFrame:
    """DermaMNIST-E's test partition: ISIC 2018 Task 3's own test images minus ``drop``.

    Returns
    -------
    DataFrame ``image_id, kept, reason`` (reason "easter egg" for the dropped ids, "" otherwise),
    one row per input id.
    """
    ids = pd.Series(pd.array(image_ids, dtype="string")).str.strip()
    dropped = ids.isin(set(drop))
    return pd.DataFrame({"image_id": ids, "kept": ~dropped.to_numpy(),
                         "reason": np.where(dropped, "easter egg", "")})


def qc_summary(qc: Sequence) -> pd.DataFrame:
    """Counts of a quality-control column: ``not reviewed`` for missing values, otherwise each
    judgement as written (e.g. Fitzpatrick17k's ``"1 Diagnostic"``, ``"3 Wrongly labelled"``).

    Returns
    -------
    DataFrame indexed by ``qc`` with ``images`` and ``share_of_reviewed`` (NaN for ``not
    reviewed``), judgements first in sorted order, ``not reviewed`` last.
    """
    s = pd.Series(pd.array(qc, dtype="string")).str.strip().replace("", pd.NA)
    counts = s.value_counts().sort_index()
    reviewed = int(counts.sum())
    out = pd.DataFrame({"images": counts.astype(int), "share_of_reviewed": counts / reviewed if reviewed else np.nan})
    out.loc["not reviewed"] = [int(s.isna().sum()), np.nan]
    out["images"] = out["images"].astype(int)
    out.index.name = "qc"
    return out
