"""Near-duplicate pairs, union-find clusters, label conflicts, evaluation and human review.

Following the critique (methods.md section 10): two images are candidate near-duplicates when the
cosine similarity of their l2-normalised embeddings is at least a threshold :math:`\\tau`
(0.90 and 0.95),

.. math::  s(i, j) = \\langle z_i, z_j \\rangle \\ge \\tau ,

found with an exact faiss k-NN search (:func:`skinmap.analysis.knn.knn_search`) instead of a dense
``n x n`` matrix; an image with more than ``k`` partners above the threshold is reported as
*saturated* (raise ``k``). Pairs are merged into clusters (connected components = union-find).
A cluster is *homogeneous* when all its members share the diagnosis and the Fitzpatrick type;
otherwise it conflicts by diagnosis and/or by FST, where an FST spread of exactly one type is
counted apart from larger spreads because FST labels are often off by one. Missing labels are not
evidence of a conflict (only known values are compared).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

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
    "duplicate_clusters",
    "cluster_table",
    "pair_precision_recall",
    "review_template",
    "read_review",
    "apply_review",
    "REVIEW_DECISIONS",
    "recall_by_transform",
    "named_pairs",
    "find_duplicates",
    "duplicate_summary",
    "evaluate_rules",
    "planted_pair_mask",
]

REVIEW_DECISIONS = ("duplicate", "different", "unclear")


def near_duplicate_pairs(
    embeddings: np.ndarray, threshold: float, *, k: int = 20, mutual_top: int = 0
) -> pd.DataFrame:
    """All pairs ``i < j`` among each image's ``k`` nearest neighbours with similarity >= threshold.

    ``mutual_top = r > 0`` additionally keeps a pair only when each image is among the other's
    ``r`` nearest neighbours (ties with the r-th similarity count as inside, so a group of
    identical copies stays whole). It trades a little recall for precision in crowded regions of
    an embedding, where many distinct images exceed the threshold; 0 (default) is the plain rule.

    Returns columns ``i, j, similarity`` sorted by decreasing similarity. ``df.attrs["saturated"]``
    counts images whose k-th neighbour is still above the threshold (their pair list may be
    incomplete: raise ``k``). Exact duplicates (similarity 1) are kept: self-matches are removed by
    row identity, not by similarity.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    n = len(embeddings)
    empty = pd.DataFrame({"i": np.array([], int), "j": np.array([], int), "similarity": np.array([], np.float32)})
    if n < 2:
        empty.attrs["saturated"] = 0
        return empty
    res = knn_search(embeddings, embeddings, min(k, n - 1), exclude_self=True)
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


def thresholded(pairs: pd.DataFrame, threshold: float, *, k: int | None = None) -> pd.DataFrame:
    """The scored pairs with ``similarity >= threshold``. With ``k`` (candidates searched per image),
    ``attrs["saturated"]`` counts images with at least ``k`` pairs kept: every candidate they had
    passed, so their list may be incomplete (raise the candidate ``k``)."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    return _marked_saturated(pairs[pairs["similarity"] >= threshold - 1e-6].reset_index(drop=True), k)


def _marked_saturated(out: pd.DataFrame, k: int | None) -> pd.DataFrame:
    """``out`` with ``attrs["saturated"]``: the images with at least ``k`` kept pairs (none without ``k``)."""
    if k is not None:
        degree = pd.concat([out["i"], out["j"]]).value_counts()
        out.attrs["saturated"] = int((degree >= k).sum())
    return out


def distinct_pairs(
    pairs: pd.DataFrame, threshold: float, *, floor: float, ratio: float, k: int | None = None
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
    ``accepted_by`` (``"threshold"`` or ``"ratio"``); ``k`` sets ``attrs["saturated"]`` as in
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
    return _marked_saturated(out.reset_index(drop=True), k)


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


def pair_precision_recall(
    predicted: Sequence[tuple[str, str]],
    truth: Sequence[tuple[str, str]],
    *,
    universe: set[str] | None = None,
) -> dict[str, float]:
    """Pair-level precision and recall of predicted duplicate pairs against planted ones.

    A predicted pair is correct when both images lie in the same planted duplicate group (the
    transitive closure of ``truth``: two copies of one original are duplicates of each other
    too). Recall is the fraction of the listed ``truth`` pairs that were predicted, as unordered
    pairs. ``universe`` (uids with embeddings) drops truth pairs that could not be found at all.
    Returns ``precision, recall, n_predicted, n_truth, true_positives``; precision is NaN with no
    prediction and recall NaN with no truth.
    """
    truth = [tuple(p) for p in truth if universe is None or (p[0] in universe and p[1] in universe)]
    nodes = sorted({u for p in truth for u in p})
    pos = {u: k for k, u in enumerate(nodes)}
    if nodes:
        lab = duplicate_clusters(len(nodes), [pos[a] for a, _ in truth], [pos[b] for _, b in truth])
        group = {u: int(lab[pos[u]]) for u in nodes}
    else:
        group = {}
    pred = {frozenset(p) for p in predicted if p[0] != p[1]}
    tp = 0
    for p in pred:
        a, b = tuple(p)
        tp += int(a in group and b in group and group[a] == group[b])
    truth_set = {frozenset(p) for p in truth}
    found = len(truth_set & pred)
    return {
        "precision": tp / len(pred) if pred else float("nan"),
        "recall": found / len(truth_set) if truth_set else float("nan"),
        "n_predicted": len(pred),
        "n_truth": len(truth_set),
        "true_positives": tp,
    }


def review_template(pairs: pd.DataFrame) -> pd.DataFrame:
    """The CSV a reviewer fills in: ``image_a, image_b, similarity, decision, note`` with an empty
    decision (one of :data:`REVIEW_DECISIONS`) and pairs ordered by decreasing similarity."""
    out = pairs[["image_a", "image_b", "similarity"]].copy()
    out = out.sort_values("similarity", ascending=False, kind="stable").reset_index(drop=True)
    out["decision"] = ""
    out["note"] = ""
    return out


def read_review(path: str | Path) -> pd.DataFrame:
    """Read a filled review CSV; blank decisions are dropped, unknown decisions are an error."""
    df = pd.read_csv(path, dtype={"image_a": "string", "image_b": "string", "decision": "string"})
    missing = {"image_a", "image_b", "decision"} - set(df.columns)
    if missing:
        raise ValueError(f"review file {path} lacks column(s) {sorted(missing)}")
    df["decision"] = df["decision"].str.strip().str.lower()
    df = df[df["decision"].notna() & (df["decision"] != "")]
    bad = sorted(set(df["decision"]) - set(REVIEW_DECISIONS))
    if bad:
        raise ValueError(f"review file {path}: unknown decision(s) {bad}; allowed {REVIEW_DECISIONS}")
    return df.reset_index(drop=True)


def apply_review(pairs: pd.DataFrame, review: pd.DataFrame | None) -> pd.DataFrame:
    """Apply reviewer decisions to candidate pairs (columns ``image_a, image_b, similarity``).

    "different" removes the pair; "duplicate" keeps it, or adds it when the search missed it
    (similarity NaN); "unclear" and unreviewed pairs stay candidates (the cleaning is
    conservative: an unresolved pair may still cost an image). The last decision on a pair wins.
    A ``review`` column records the decision ("" when none).
    """
    out = pairs.copy()
    out["review"] = ""
    if review is None or len(review) == 0:
        return out
    key = lambda a, b: tuple(sorted((str(a), str(b))))  # noqa: E731
    decisions = {key(a, b): d for a, b, d in review[["image_a", "image_b", "decision"]].itertuples(index=False)}
    out_keys = [key(a, b) for a, b in zip(out["image_a"], out["image_b"])]
    out["review"] = [decisions.get(k, "") for k in out_keys]
    out = out[out["review"] != "different"]
    added = [k for k, d in decisions.items() if d == "duplicate" and k not in set(out_keys)]
    if added:
        extra = pd.DataFrame({"image_a": [a for a, _ in added], "image_b": [b for _, b in added],
                              "similarity": np.nan, "review": "duplicate"})
        out = pd.concat([out, extra], ignore_index=True)
    return out.reset_index(drop=True)


def recall_by_transform(predicted: Sequence[tuple[str, str]], truth: pd.DataFrame) -> pd.DataFrame:
    """Recall of planted pairs (``a, b, transform``) per transform: ``transform, n, found, recall``."""
    pred = {frozenset(p) for p in predicted}
    hit = [frozenset((a, b)) in pred for a, b in zip(truth["a"], truth["b"])]
    df = truth.assign(found=hit)
    out = df.groupby("transform").agg(n=("found", "size"), found=("found", "sum")).reset_index()
    out["recall"] = out["found"] / out["n"]
    return out


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


def evaluate_rules(
    variants: dict[str, tuple[np.ndarray, int] | pd.DataFrame | Callable[[float], pd.DataFrame]],
    uids: Sequence[str],
    planted: pd.DataFrame,
    thresholds: Sequence[float],
    *,
    k: int = 20,
) -> pd.DataFrame:
    """Precision and recall against planted pairs (``a, b, transform``) of several duplicate rules.

    ``variants`` maps a rule name to ``(vectors aligned with uids, mutual_top)`` (pairs searched
    here), to already scored candidate pairs ``i, j, similarity`` (e.g. :func:`rescored_pairs`,
    thresholded here) or to a function of the threshold returning the accepted pairs (e.g.
    :func:`distinct_pairs` with its floor and ratio). One row per rule
    and threshold: ``rule, threshold, precision, recall, n_predicted, n_truth, true_positives`` and
    a ``recall_<transform>`` column per planted transform (see :func:`pair_precision_recall`,
    :func:`recall_by_transform`). Planted pairs with an image outside ``uids`` are left out.
    """
    uids = list(uids)
    known = set(uids)
    planted = planted[planted["a"].isin(known) & planted["b"].isin(known)]
    truth = list(zip(planted["a"], planted["b"]))
    rows = []
    for rule, spec in variants.items():
        for t in thresholds:
            pairs = (thresholded(spec, t) if isinstance(spec, pd.DataFrame) else spec(t) if callable(spec)
                     else near_duplicate_pairs(spec[0], t, k=k, mutual_top=spec[1]))
            named = named_pairs(pairs, uids)
            predicted = list(zip(named["image_a"], named["image_b"]))
            by_t = recall_by_transform(predicted, planted).set_index("transform")["recall"]
            rows.append({"rule": rule, "threshold": t, **pair_precision_recall(predicted, truth),
                         **{f"recall_{name}": float(r) for name, r in by_t.items()}})
    return pd.DataFrame(rows)


def planted_pair_mask(predicted: Sequence[tuple[str, str]], truth: Sequence[tuple[str, str]]) -> np.ndarray:
    """For each predicted pair, whether both images lie in one planted duplicate group (the
    transitive closure of ``truth``, as in :func:`pair_precision_recall`); False marks a false positive."""
    truth = [tuple(p) for p in truth]
    nodes = sorted({u for p in truth for u in p})
    pos = {u: k for k, u in enumerate(nodes)}
    lab = duplicate_clusters(len(nodes), [pos[a] for a, _ in truth], [pos[b] for _, b in truth]) if nodes else []
    group = {u: int(lab[pos[u]]) for u in nodes}
    return np.array([a != b and a in group and b in group and group[a] == group[b] for a, b in predicted], dtype=bool)
