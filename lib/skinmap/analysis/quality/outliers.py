"""Off-topic and erroneous images: a k-nearest-neighbour outlier score.

An image that is not a skin image (histology, radiology, plants, animals, slides of text) lies far
from everything else in an embedding of skin images. Its score is one minus the mean cosine
similarity to its ``k`` = ``n_neighbors`` nearest neighbours (the image itself excluded),

.. math::  o(i) = 1 - \\frac{1}{k} \\sum_{l=1}^{k} s(i, \\mathrm{nn}_l(i)) ,

so high = likely off-topic (methods.md section 10). A planted group of similar off-topic images
needs ``n_neighbors`` larger than the group, or its members vouch for each other. Images are flagged by a
robust z-score of ``o`` (median and MAD), which needs no count of off-topic images in advance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import average_precision_score

from skinmap.analysis.knn import knn_search

__all__ = ["offtopic_scores", "robust_z", "flag_offtopic", "offtopic_average_precision"]


def offtopic_scores(embeddings: np.ndarray, *, n_neighbors: int = 10) -> np.ndarray:
    """Outlier score ``o(i)`` above for each row (float64; NaN only when there is no other row)."""
    n = len(embeddings)
    if n < 2:
        return np.full(n, np.nan)
    res = knn_search(embeddings, embeddings, min(n_neighbors, n - 1), exclude_self=True)
    sims = np.where(res.indices >= 0, res.similarities, np.nan).astype(np.float64)
    return 1.0 - np.nanmean(sims, axis=1)


def robust_z(scores: np.ndarray) -> np.ndarray:
    """``(x - median) / (1.4826 * MAD)``; all zeros when the MAD is zero (no spread, no outlier)."""
    scores = np.asarray(scores, dtype=np.float64)
    med = np.nanmedian(scores)
    mad = 1.4826 * np.nanmedian(np.abs(scores - med))
    if not np.isfinite(mad) or mad == 0:
        return np.zeros_like(scores)
    return (scores - med) / mad


def flag_offtopic(scores: np.ndarray, *, z_threshold: float = 5.0) -> np.ndarray:
    """Boolean mask of images whose robust z-score exceeds ``z_threshold``."""
    return robust_z(scores) > z_threshold


def offtopic_average_precision(scores: np.ndarray, is_offtopic: Sequence[bool]) -> float:
    """Average precision of the ranking by ``scores`` against planted off-topic images
    (NaN when none is planted)."""
    y = np.asarray(is_offtopic, dtype=bool)
    if not y.any():
        return float("nan")
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    return float(average_precision_score(y, s))
