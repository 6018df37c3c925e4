"""Copy detection scored against planted copies: pair precision and recall, per transform and per rule.

The synthetic atlas plants exact, mirrored, cropped and colour-jittered copies (its ground truth);
a predicted pair is correct when both images lie in one planted duplicate group (the transitive
closure of the planted pairs: two copies of one original are duplicates of each other too).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from skinmap.analysis.quality.duplicates import duplicate_clusters, named_pairs, near_duplicate_pairs, thresholded

__all__ = ["pair_precision_recall", "recall_by_transform", "evaluate_rules", "planted_pair_mask"]


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


def recall_by_transform(predicted: Sequence[tuple[str, str]], truth: pd.DataFrame) -> pd.DataFrame:
    """Recall of planted pairs (``a, b, transform``) per transform: ``transform, n, found, recall``."""
    pred = {frozenset(p) for p in predicted}
    hit = [frozenset((a, b)) in pred for a, b in zip(truth["a"], truth["b"])]
    df = truth.assign(found=hit)
    out = df.groupby("transform").agg(n=("found", "size"), found=("found", "sum")).reset_index()
    out["recall"] = out["found"] / out["n"]
    return out


def evaluate_rules(
    variants: dict[str, tuple[np.ndarray, int] | pd.DataFrame | Callable[[float], pd.DataFrame]],
    uids: Sequence[str],
    planted: pd.DataFrame,
    thresholds: Sequence[float],
    *,
    n_neighbors: int = 20,
) -> pd.DataFrame:
    """Precision and recall against planted pairs (``a, b, transform``) of several duplicate rules.

    ``variants`` maps a rule name to ``(vectors aligned with uids, mutual_top)`` (pairs searched
    here with ``n_neighbors``), to already scored candidate pairs ``i, j, similarity`` (e.g.
    :func:`~skinmap.analysis.quality.duplicates.rescored_pairs`, thresholded here) or to a function
    of the threshold returning the accepted pairs (e.g. ``functools.partial(accepted_pairs, scored,
    config=config)``, :func:`~skinmap.analysis.quality.verification.accepted_pairs`). One row per rule
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
                     else near_duplicate_pairs(spec[0], t, n_neighbors=n_neighbors, mutual_top=spec[1]))
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
