"""Near-duplicate pairs, union-find clusters and label conflicts.

Following the critique (methods.md section 10): two images are candidate near-duplicates when the
cosine similarity of their l2-normalised embeddings is at least a threshold :math:`\\tau`
(0.90 and 0.95),

.. math::  s(i, j) = \\langle z_i, z_j \\rangle \\ge \\tau ,

found with an exact faiss k-NN search (:func:`skinmap.analysis.knn.knn_search`) instead of a dense
``n x n`` matrix; an image with more than ``n_neighbors`` partners above the threshold is reported
as *saturated* (raise ``n_neighbors``). Pairs are merged into clusters (connected components =
union-find). A cluster is *homogeneous* when all its members share the diagnosis and the
Fitzpatrick type; otherwise it conflicts by diagnosis and/or by FST, where an FST spread of exactly
one type is counted apart from larger spreads because FST labels are often off by one. Missing
labels are not evidence of a conflict (only known values are compared).

Scoring the pairs against planted copies is :mod:`~skinmap.analysis.quality.evaluation`; the human
review of candidate pairs :mod:`~skinmap.analysis.quality.review`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from skinmap.analysis.knn import knn_search

__all__ = [
    "near_duplicate_pairs",
    "rescored_pairs",
    "thresholded",
    "distinct_pairs",
    "named_pairs",
    "duplicate_clusters",
    "cluster_table",
    "find_duplicates",
    "duplicate_summary",
]


def near_duplicate_pairs(
    embeddings: np.ndarray, threshold: float, *, n_neighbors: int = 20, mutual_top: int = 0
) -> pd.DataFrame:
    """All pairs ``i < j`` among each image's ``n_neighbors`` nearest neighbours with similarity >= threshold.

    ``mutual_top = r > 0`` additionally keeps a pair only when each image is among the other's
    ``r`` nearest neighbours (ties with the r-th similarity count as inside, so a group of
    identical copies stays whole). It trades a little recall for precision in crowded regions of
    an embedding, where many distinct images exceed the threshold; 0 (default) is the plain rule.

    Returns columns ``i, j, similarity`` sorted by decreasing similarity. ``df.attrs["saturated"]``
    counts images whose last (``n_neighbors``-th) neighbour is still above the threshold (their pair
    list may be incomplete: raise ``n_neighbors``). Exact duplicates (similarity 1) are kept: self-matches are removed by
    row identity, not by similarity.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    n = len(embeddings)
    empty = pd.DataFrame({"i": np.array([], int), "j": np.array([], int), "similarity": np.array([], np.float32)})
    if n < 2:
        empty.attrs["saturated"] = 0
        return empty
    res = knn_search(embeddings, embeddings, min(n_neighbors, n - 1), exclude_self=True)
    rows = np.repeat(np.arange(n), res.indices.shape[1])
    cols = res.indices.ravel()
    sims = res.similarities.ravel()
    # float32 inner products of identical unit vectors can land a hair under 1.0 or over it.
    hit = (cols >= 0) & (sims >= threshold - 1e-6)
    if mutual_top > 0:
        r = min(mutual_top, res.similarities.shape[1])
        rth = res.similarities[:, r - 1]  # similarity of each image's r-th neighbour
        safe = np.where(cols >= 0, cols, 0)
        hit &= (sims >= rth[rows] - 1e-6) & (sims >= rth[safe] - 1e-6)
    i, j = np.minimum(rows[hit], cols[hit]), np.maximum(rows[hit], cols[hit])
    df = pd.DataFrame({"i": i, "j": j, "similarity": np.minimum(sims[hit], 1.0)})
    df = df.groupby(["i", "j"], as_index=False)["similarity"].max()
    df = df.sort_values(["similarity", "i", "j"], ascending=[False, True, True], kind="stable")
    df = df.reset_index(drop=True)
    df.attrs["saturated"] = int((res.similarities[:, -1] >= threshold).sum()) if res.indices.shape[1] else 0
    return df


def rescored_pairs(candidates: pd.DataFrame, scores: np.ndarray) -> pd.DataFrame:
    """Candidate pairs (``i, j, similarity``) rescored by a verification step.

    ``similarity`` becomes ``scores`` (e.g. :func:`skinmap.analysis.quality.registration.
    registered_similarity`), the embedding's similarity is kept as ``embedding_similarity``; pairs
    with a NaN score (an image could not be verified) are dropped. Sorted like
    :func:`near_duplicate_pairs`.
    """
    scores = np.asarray(scores, dtype=np.float32)
    if scores.shape != (len(candidates),):
        raise ValueError(f"expected {len(candidates)} scores, got shape {scores.shape}")
    out = candidates[["i", "j"]].copy()
    out["similarity"] = scores
    out["embedding_similarity"] = candidates["similarity"].to_numpy()
    out = out[np.isfinite(scores)]
    return out.sort_values(["similarity", "i", "j"], ascending=[False, True, True], kind="stable").reset_index(drop=True)


def thresholded(pairs: pd.DataFrame, threshold: float, *, n_candidates: int | None = None) -> pd.DataFrame:
    """The scored pairs with ``similarity >= threshold``. With ``n_candidates`` (candidates searched
    per image), ``attrs["saturated"]`` counts images with at least ``n_candidates`` pairs kept: every
    candidate they had passed, so their list may be incomplete (raise ``n_candidates``)."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    return _marked_saturated(pairs[pairs["similarity"] >= threshold - 1e-6].reset_index(drop=True), n_candidates)


def _marked_saturated(out: pd.DataFrame, n_candidates: int | None) -> pd.DataFrame:
    """``out`` with ``attrs["saturated"]``: the images with at least ``n_candidates`` kept pairs
    (none without ``n_candidates``)."""
    if n_candidates is not None:
        degree = pd.concat([out["i"], out["j"]]).value_counts()
        out.attrs["saturated"] = int((degree >= n_candidates).sum())
    return out


def distinct_pairs(
    pairs: pd.DataFrame, threshold: float, *, floor: float, ratio: float, n_candidates: int | None = None
) -> pd.DataFrame:
    """The scored pairs a copy detector accepts at ``threshold``: every pair with ``similarity >=
    threshold``, and a pair in ``[floor, threshold)`` that stands out from everything else its two
    images were compared with -- Lowe's ratio test (2004) on the dissimilarity ``1 - s``:

    .. math::  1 - s(a, b) \\le \\rho \\, \\big(1 - c(a, b)\\big)

    where the *competitor* ``c(a, b)`` is the best similarity of ``a`` or ``b`` to any third image
    outside the clusters of ``a`` and ``b`` that the pairs at or above ``threshold`` form (so a second
    copy of the same picture is not a competitor) and ``rho`` is ``ratio``. A copy is far more like
    its source than like anything else; a family of look-alikes (a series of near-identical renders,
    photographs of one device's flat background) is not, so its members compete with each other and
    stay out. A pair whose images were compared with nothing else has no competitor (NaN) and is
    accepted only by the threshold: there is nothing to stand out from. ``floor >= threshold`` or
    ``ratio = 0`` is plain thresholding (:func:`thresholded`).

    Returns the accepted rows of ``pairs`` (``i, j, similarity``, ...) with ``competitor`` and
    ``accepted_by`` (``"threshold"`` or ``"ratio"``); ``n_candidates`` sets ``attrs["saturated"]`` as in
    :func:`thresholded`.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must be in [0, 1], got {ratio}")
    i = pairs["i"].to_numpy(np.int64)
    j = pairs["j"].to_numpy(np.int64)
    s = pairs["similarity"].to_numpy(np.float64)
    strong = s >= threshold - 1e-6
    grey = ~strong & (s >= floor - 1e-6)
    competitor = np.full(len(pairs), np.nan)
    if grey.any():
        n = int(max(i.max(), j.max())) + 1
        cluster = duplicate_clusters(n, i[strong], j[strong])
        # every pair seen from each of its two images: (image, other image, similarity)
        ends = pd.DataFrame({"node": np.concatenate([i, j]), "other": np.concatenate([j, i]),
                             "s": np.concatenate([s, s])})
        ends["other_cluster"] = cluster[ends["other"].to_numpy()]
        rows = np.flatnonzero(grey)
        probe = pd.DataFrame({"pair": np.concatenate([rows, rows]), "node": np.concatenate([i[rows], j[rows]]),
                              "ca": np.concatenate([cluster[i[rows]]] * 2), "cb": np.concatenate([cluster[j[rows]]] * 2)})
        seen = probe.merge(ends, on="node")
        seen = seen[(seen["other_cluster"] != seen["ca"]) & (seen["other_cluster"] != seen["cb"])]
        best = seen.groupby("pair")["s"].max()
        competitor[best.index.to_numpy()] = best.to_numpy()
    with np.errstate(invalid="ignore"):
        by_ratio = grey & np.isfinite(competitor) & (1 - s <= ratio * (1 - competitor) + 1e-9)
    keep = strong | by_ratio
    out = pairs[keep].copy()
    out["competitor"] = competitor[keep]
    out["accepted_by"] = np.where(strong[keep], "threshold", "ratio")
    return _marked_saturated(out.reset_index(drop=True), n_candidates)


def duplicate_clusters(n: int, i: Sequence[int], j: Sequence[int]) -> np.ndarray:
    """Cluster label of each of ``n`` images from duplicate edges ``(i, j)`` (union-find, i.e.
    connected components). Images in no pair are singleton clusters. Labels are renumbered so
    that clusters with more than one image come first, in order of their smallest member."""
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    if n == 0:
        return np.array([], dtype=np.int64)
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    first = np.full(labels.max() + 1, n, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(n))
    order = np.lexsort((first, sizes <= 1))  # multi-image clusters first, then by first member
    remap = np.empty_like(order)
    remap[order] = np.arange(len(order))
    return remap[labels]


def _fst_spread(values: pd.Series) -> float:
    known = pd.to_numeric(values, errors="coerce").dropna()
    return float(known.max() - known.min()) if len(known) else np.nan


def cluster_table(
    clusters: np.ndarray,
    meta: pd.DataFrame,
    *,
    label_col: str = "diagnosis",
    fst_col: str = "fst",
) -> pd.DataFrame:
    """One row per cluster with more than one image.

    Columns: ``cluster, size, uids ("a;b"), datasets, spans_datasets, n_diagnoses,
    diagnosis_conflict, fst_spread, fst_conflict ("none", "by_1", "by_more"), conflict`` where
    ``conflict`` is "homogeneous", or a "+"-joined list of "diagnosis", "fst_by_1", "fst_by_more".
    ``meta`` is aligned with ``clusters`` and needs ``uid`` and ``dataset``; a missing label or FST
    column counts as all-missing (never a conflict).
    """
    clusters = np.asarray(clusters)
    sizes = np.bincount(clusters) if len(clusters) else np.array([], int)
    multi = np.flatnonzero(sizes > 1)
    cols = ["cluster", "size", "uids", "datasets", "spans_datasets", "n_diagnoses", "diagnosis_conflict",
            "fst_spread", "fst_conflict", "conflict"]
    if len(multi) == 0:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame({
        "cluster": clusters,
        "uid": meta["uid"].to_numpy(),
        "dataset": meta["dataset"].astype("string").fillna("unknown").to_numpy(),
        "label": meta[label_col].astype("string").to_numpy() if label_col in meta else pd.NA,
        "fst": pd.to_numeric(meta[fst_col], errors="coerce").to_numpy() if fst_col in meta else np.nan,
    })
    df = df[df["cluster"].isin(multi)]
    g = df.groupby("cluster", sort=True)
    out = pd.DataFrame({
        "size": g.size(),
        "uids": g["uid"].agg(lambda s: ";".join(map(str, s))),
        "datasets": g["dataset"].agg(lambda s: ";".join(sorted(set(s)))),
        "n_diagnoses": g["label"].agg(lambda s: s.dropna().nunique()),
        "fst_spread": g["fst"].agg(_fst_spread),
    }).reset_index()
    out["spans_datasets"] = out["datasets"].str.contains(";")
    out["diagnosis_conflict"] = out["n_diagnoses"] > 1
    out["fst_conflict"] = np.select([out["fst_spread"] == 1, out["fst_spread"] > 1], ["by_1", "by_more"], "none")
    parts = pd.DataFrame({
        "diagnosis": np.where(out["diagnosis_conflict"], "diagnosis", ""),
        "fst": np.where(out["fst_conflict"] == "none", "", "fst_" + out["fst_conflict"]),
    })
    out["conflict"] = parts.apply(lambda r: "+".join(x for x in r if x) or "homogeneous", axis=1)
    return out[cols]


def named_pairs(pairs: pd.DataFrame, uids: Sequence[str]) -> pd.DataFrame:
    """``pairs`` (``i, j, similarity``) with the images' uids as ``image_a, image_b``."""
    uids = np.asarray(uids, dtype=object)
    out = pairs.copy()
    out.insert(0, "image_b", uids[pairs["j"].to_numpy()] if len(pairs) else np.array([], dtype=object))
    out.insert(0, "image_a", uids[pairs["i"].to_numpy()] if len(pairs) else np.array([], dtype=object))
    return out


def find_duplicates(
    pairs: pd.DataFrame, meta: pd.DataFrame, *, label_col: str = "diagnosis"
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Clusters of named pairs (``image_a, image_b, similarity``) over the images of ``meta``.

    Returns ``(near_duplicates, clusters, cluster_info)``: the pairs with their ``cluster`` and its
    ``conflict``; the cluster label of every row of ``meta``; :func:`cluster_table`. Pairs naming
    images absent from ``meta`` are an error (a review file with a typo must not pass silently).
    Clusters spanning datasets are treated like any other (flagged ``spans_datasets``); compare
    labels across datasets with a harmonised ``label_col`` (e.g. ``icd10_code``), since original
    label strings differ between datasets.
    """
    pos = pd.Series(np.arange(len(meta)), index=meta["uid"].to_numpy())
    unknown = sorted((set(pairs["image_a"]) | set(pairs["image_b"])) - set(pos.index))
    if unknown:
        raise ValueError(f"{len(unknown)} pair image(s) not in the table, e.g. {unknown[:3]}")
    i = pos.reindex(pairs["image_a"]).to_numpy()
    j = pos.reindex(pairs["image_b"]).to_numpy()
    clusters = duplicate_clusters(len(meta), i, j)
    info = cluster_table(clusters, meta, label_col=label_col)
    conflict = dict(zip(info["cluster"], info["conflict"]))
    out = pairs[["image_a", "image_b", "similarity"]].copy()
    out["cluster"] = clusters[i] if len(i) else np.array([], dtype=np.int64)
    out["conflict"] = [conflict.get(c, "homogeneous") for c in out["cluster"]]
    if "review" in pairs:
        out["review"] = pairs["review"].to_numpy()
    return out.reset_index(drop=True), clusters, info


def duplicate_summary(pairs: pd.DataFrame, info: pd.DataFrame) -> dict[str, int]:
    """Counts for one threshold: pairs, clusters, images in clusters, clusters by kind, clusters
    spanning datasets and saturated images (``pairs.attrs["saturated"]`` when present)."""
    return {
        "pairs": len(pairs),
        "clusters": len(info),
        "images_in_clusters": int(info["size"].sum()) if len(info) else 0,
        "homogeneous": int((info["conflict"] == "homogeneous").sum()),
        "diagnosis_conflict": int(info["diagnosis_conflict"].sum()) if len(info) else 0,
        "fst_differs_by_1": int((info["fst_conflict"] == "by_1").sum()),
        "fst_differs_by_more": int((info["fst_conflict"] == "by_more").sum()),
        "spanning_datasets": int(info["spans_datasets"].sum()) if len(info) else 0,
        "saturated_images": int(pairs.attrs.get("saturated", 0)),
    }


