"""How good and how consistent the members and the fused space are (chapter 03).

Pure evaluation over arrays: the vectors come from the embedding chapter; nothing here embeds.

``knn_overlap``     agreement of two spaces: mean over points of |N_a(i) & N_b(i)| / k, with
                    N(i) the k = ``n_neighbors`` nearest neighbours (cosine, self excluded).
                    1 = identical neighbourhoods; the chance level for random spaces is about
                    k / (n - 1).
``linear_probe``    diagnosis predictability: a multinomial logistic regression on a stratified,
                    ungrouped held-out split (superseded in the book by the evaluation split).
``zero_shot``       classification by the contrastive members' text towers: argmax over labels of
                    cos(image, text("a photo of {label}")), against chance 1/L and the majority rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from skinmap.analysis.knn import knn_search

__all__ = ["knn_overlap", "overlap_matrix", "linear_probe", "zero_shot_accuracy"]


def knn_overlap(a: np.ndarray, b: np.ndarray, n_neighbors: int) -> float:
    """Mean fraction of shared k-NN (self excluded) between two embeddings of the same rows.

    Parameters
    ----------
    a, b : ndarray of shape (n, d_a) and (n, d_b)
        Two embeddings of the same ``n`` rows (any scale: cosine neighbourhoods).
    n_neighbors : int
        Neighbours per row, capped at ``n - 1``.

    Returns
    -------
    float
        Mean over rows of ``|N_a(i) & N_b(i)| / k``.
    """
    if a.shape[0] != b.shape[0]:
        raise ValueError("both spaces must embed the same rows")
    k = min(n_neighbors, a.shape[0] - 1)
    if k < 1:
        raise ValueError("need at least two rows")
    na = knn_search(a, a, k, exclude_self=True).indices
    nb = knn_search(b, b, k, exclude_self=True).indices
    shared = [len(set(x) & set(y)) for x, y in zip(na.tolist(), nb.tolist())]
    return float(np.mean(shared) / k)


def overlap_matrix(spaces: dict[str, np.ndarray], n_neighbors: int) -> pd.DataFrame:
    """Symmetric table of :func:`knn_overlap` between every pair of named spaces (1 on the diagonal)."""
    names = list(spaces)
    m = np.eye(len(names))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            m[i, j] = m[j, i] = knn_overlap(spaces[names[i]], spaces[names[j]], n_neighbors)
    return pd.DataFrame(m, index=names, columns=names)


def linear_probe(x: np.ndarray, y, *, test_fraction: float = 0.3, seed: int = 0, min_class: int = 5) -> dict:
    """Held-out macro-F1/accuracy of a logistic-regression probe; classes rarer than ``min_class`` dropped.

    The split is an ungrouped ``train_test_split``: images of one lesion can sit on both sides. The
    book no longer uses it (issue 15); the embedding chapter scores its diagnosis probe with
    :func:`skinmap.analysis.probes.evaluate_attribute` on the evaluation split's test and holdout rows.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split

    y = pd.Series(y).astype("string")
    counts = y.value_counts()
    keep = y.notna().to_numpy() & (y.map(counts).fillna(0).to_numpy().astype(float) >= min_class)
    x, y = np.asarray(x)[keep], y[keep].to_numpy().astype(str)
    if len(np.unique(y)) < 2:
        return {"macro_f1": float("nan"), "accuracy": float("nan"), "n_classes": int(len(np.unique(y))), "n": int(len(y))}
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    clf = LogisticRegression(max_iter=2000, C=1.0).fit(xtr, ytr)
    pred = clf.predict(xte)
    majority = pd.Series(ytr).value_counts().index[0]
    return {"macro_f1": float(f1_score(yte, pred, average="macro")), "accuracy": float(accuracy_score(yte, pred)),
            "majority_accuracy": float(np.mean(yte == majority)), "n_classes": int(len(np.unique(y))), "n": int(len(y))}


def zero_shot_accuracy(scores: np.ndarray, y, labels: list[str]) -> dict:
    """Accuracy and macro-F1 of argmax-over-labels predictions, with chance and majority rates."""
    from sklearn.metrics import f1_score

    y = pd.Series(y).astype("string")
    keep = (y.notna() & y.isin(labels)).to_numpy(dtype=bool)
    pred = np.asarray(labels)[np.argmax(np.asarray(scores)[keep], axis=1)]
    truth = y[keep].to_numpy().astype(str)
    return {"accuracy": float(np.mean(pred == truth)), "macro_f1": float(f1_score(truth, pred, average="macro")),
            "chance": 1.0 / len(labels), "majority": float(pd.Series(truth).value_counts(normalize=True).iloc[0]),
            "n": int(keep.sum())}
