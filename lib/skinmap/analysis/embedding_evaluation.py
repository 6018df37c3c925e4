"""How good and how consistent the members and the fused space are (chapter 03).

Pure evaluation over arrays: the vectors come from the embedding chapter; nothing here embeds.

``knn_overlap``     agreement of two spaces: mean over points of |N_a(i) & N_b(i)| / k, with
                    N(i) the k = ``n_neighbors`` nearest neighbours (cosine, self excluded).
                    1 = identical neighbourhoods; the chance level for random spaces is about
                    k / (n - 1).
``linear_probe``    diagnosis predictability: a multinomial logistic regression on a stratified,
                    ungrouped held-out split (superseded in the book by the evaluation split).
``retrieval_against_chance``
                    whole-atlas diagnosis-match retrieval P@k of several spaces on the same held-out
                    queries under the strict protocol (the query's lesion, patient and near-duplicate
                    group excluded, as :mod:`skinmap.analysis.retrieval`), each against the chance level
                    of its queries and against a reference space, with paired group-bootstrap intervals.
``select_members``  the fusion rule: which members enter the fused space.
``zero_shot``       classification by the contrastive members' text towers: argmax over labels of
                    cos(image, text("a photo of {label}")), against chance 1/L and the majority rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from skinmap.analysis.knn import knn_search

__all__ = ["knn_overlap", "overlap_matrix", "linear_probe", "zero_shot_accuracy", "retrieval_chance",
           "retrieval_against_chance", "select_members", "FUSION_RULES"]

#: How members are chosen for the fused space: only those beating chance on the selection queries
#: (the default), or all of them (as the paper did).
FUSION_RULES: tuple[str, ...] = ("beats_chance", "all")


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


def retrieval_chance(label_codes: np.ndarray, groups: np.ndarray, query_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each query's chance precision and its number of relevant candidates, whole atlas, strict.

    A query ``q`` may retrieve every row outside its group; ``R_q`` of those ``N_q`` rows share its
    label. A ranking drawn at random from the allowed rows has expected precision ``R_q / N_q`` at
    every cutoff (the label's frequency among the allowed rows): the chance level.

    Parameters
    ----------
    label_codes : ndarray of shape (n,), int
        Label of each atlas row, -1 = unknown (never relevant).
    groups : ndarray of shape (n,)
        Group of each row (lesion, patient, near-duplicate cluster).
    query_rows : ndarray of shape (n_queries,), int

    Returns
    -------
    chance : ndarray of shape (n_queries,), float
        ``R_q / N_q`` (NaN when ``N_q = 0``).
    n_relevant : ndarray of shape (n_queries,), int
    """
    from skinmap.analysis.retrieval import relevant_counts

    label_codes = np.asarray(label_codes, dtype=np.int64)
    g = pd.factorize(pd.Series(np.asarray(groups, dtype=object)))[0]
    query_rows = np.asarray(query_rows, dtype=np.int64)
    pool = np.arange(len(label_codes))
    n_relevant = relevant_counts(label_codes, query_rows, pool, groups=g, protocol="strict")
    n_allowed = len(label_codes) - np.bincount(g)[g[query_rows]]
    with np.errstate(divide="ignore", invalid="ignore"):
        chance = np.where(n_allowed > 0, n_relevant / n_allowed, np.nan)
    return chance, n_relevant


def retrieval_against_chance(spaces: dict[str, np.ndarray], labels, groups: np.ndarray,
                             eval_sets: dict[str, np.ndarray], *, n_neighbors: int = 10, max_neighbors: int = 50,
                             reference: str | None = None, n_bootstrap: int = 1000, ci: float = 0.95,
                             seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Whole-atlas retrieval of every space on the same held-out queries, against chance.

    For each eval set, its labelled rows query every space (exact cosine search over the whole atlas,
    the query's group excluded: :func:`skinmap.analysis.retrieval.neighbours_outside_group`); a hit
    shares the query's label. Queries with no allowed relevant row (``R = 0``) are left out, as in
    :func:`skinmap.analysis.retrieval.retrieval_curves`. All spaces, the chance level
    (:func:`retrieval_chance`) and the differences share one bootstrap over query groups, so every
    difference is paired.

    Parameters
    ----------
    spaces : dict of str to ndarray of shape (n, d_s)
        Embeddings of the same ``n`` atlas rows.
    labels : array-like of shape (n,)
        The label a hit must share (strings; NA never matches and never queries).
    groups : ndarray of shape (n,)
        Group of each row.
    eval_sets : dict of str to ndarray of int
        Candidate query rows of each eval set (unlabelled ones are dropped).
    n_neighbors : int
        Cutoff ``k`` of the table.
    max_neighbors : int
        Longest cutoff of the curves (means only).
    reference : str, optional
        A space the others are compared with (``reference - space``), e.g. the fused space.
    n_bootstrap, ci, seed
        Group bootstrap (one stream per eval set).

    Returns
    -------
    table : DataFrame
        One row per (eval_set, space): ``precision`` with ``ci_low``/``ci_high`` at ``k``, ``chance`` with
        its interval, ``above_chance`` = precision - chance with its interval, ``reference_minus``
        (reference - space) with its interval, ``n_queries``, ``n_no_relevant``, ``n_query_groups``.
    curves : DataFrame
        ``eval_set``, ``space``, ``n_neighbors`` (1..max_neighbors), mean ``precision`` and ``chance``.
    """
    from skinmap.analysis.knn import l2_normalize
    from skinmap.analysis.resampling import percentile_interval
    from skinmap.analysis.retrieval import group_bootstrap_means, neighbours_outside_group

    names = list(spaces)
    if reference is not None and reference not in spaces:
        raise KeyError(f"reference space {reference!r} is not among {names}")
    lab = pd.Series(np.asarray(labels, dtype=object)).astype("string")
    codes = np.where(lab.isna(), -1, pd.factorize(lab.fillna(""))[0]).astype(np.int64)
    g = pd.factorize(pd.Series(np.asarray(groups, dtype=object)))[0]
    n = len(codes)
    for name, x in spaces.items():
        if len(x) != n:
            raise ValueError(f"space {name!r} has {len(x)} rows, labels have {n}")
    normed = {name: l2_normalize(np.asarray(x, np.float32)) for name, x in spaces.items()}
    K = max(n_neighbors, max_neighbors)
    rows_out, curve_rows = [], []
    pool = np.arange(n)
    for e, (eval_set, cand) in enumerate(eval_sets.items()):
        cand = np.asarray(cand, dtype=np.int64)
        q = cand[codes[cand] >= 0]
        chance, n_rel = retrieval_chance(codes, g, q)
        ok = n_rel > 0
        q, chance = q[ok], chance[ok]
        if q.size == 0:
            continue
        precision = {}
        for name in names:
            nb = neighbours_outside_group(normed[name], q, pool, K, groups=g, protocol="strict")
            rel = (nb >= 0) & (codes[np.maximum(nb, 0)] == codes[q][:, None])
            precision[name] = np.cumsum(rel, axis=1) / np.arange(1, K + 1)
        at_k = np.column_stack([chance] + [precision[s][:, n_neighbors - 1] for s in names])
        means, reps = group_bootstrap_means(at_k, g[q], n_bootstrap=n_bootstrap, rng=np.random.default_rng([seed, e]))

        def interval(r):
            lo, hi = percentile_interval(r[np.isfinite(r)], ci)
            return float(lo), float(hi)

        c_lo, c_hi = interval(reps[:, 0])
        ref = names.index(reference) + 1 if reference is not None else None
        for j, name in enumerate(names, start=1):
            lo, hi = interval(reps[:, j])
            d_lo, d_hi = interval(reps[:, j] - reps[:, 0])
            row = {"eval_set": eval_set, "space": name, "n_neighbors": n_neighbors,
                   "precision": float(means[j]), "ci_low": lo, "ci_high": hi,
                   "chance": float(means[0]), "chance_ci_low": c_lo, "chance_ci_high": c_hi,
                   "above_chance": float(means[j] - means[0]), "above_chance_ci_low": d_lo, "above_chance_ci_high": d_hi}
            if ref is not None:
                r_lo, r_hi = interval(reps[:, ref] - reps[:, j])
                row.update(reference_minus=float(means[ref] - means[j]), reference_minus_ci_low=r_lo,
                           reference_minus_ci_high=r_hi)
            row.update(n_queries=int(q.size), n_no_relevant=int((~ok).sum()), n_query_groups=int(np.unique(g[q]).size))
            rows_out.append(row)
            curve_rows.append(pd.DataFrame({"eval_set": eval_set, "space": name, "n_neighbors": np.arange(1, K + 1),
                                            "precision": precision[name].mean(axis=0), "chance": float(chance.mean())}))
    table = pd.DataFrame(rows_out)
    curves = pd.concat(curve_rows, ignore_index=True) if curve_rows else pd.DataFrame(
        columns=["eval_set", "space", "n_neighbors", "precision", "chance"])
    return table, curves


def select_members(table: pd.DataFrame, rule: str, eval_sets, members) -> tuple[list[str], dict[str, str]]:
    """The fusion rule: which of ``members`` enter the fused space.

    ``rule="all"`` keeps every member (the paper's fusion). ``rule="beats_chance"`` keeps a member when,
    on every eval set in ``eval_sets``, the lower end of its ``above_chance`` interval (paired
    bootstrap of precision - chance, :func:`retrieval_against_chance`) is above zero. If no member
    qualifies, the best one by mean ``above_chance`` is kept (a fused space needs one).

    Returns
    -------
    kept : list of str
        In the order of ``members``.
    reasons : dict of str to str
        Why each member is kept or left out.
    """
    if rule not in FUSION_RULES:
        raise ValueError(f"fusion rule must be one of {FUSION_RULES}, got {rule!r}")
    members, eval_sets = list(members), list(eval_sets)
    sub = table[table["space"].isin(members) & table["eval_set"].isin(eval_sets)] if len(table) else table
    reasons, kept = {}, []
    if rule == "beats_chance" and len(sub) == 0:  # nothing to judge on: the rule cannot leave anything out
        return members, {m: "kept: no labelled selection queries to judge it on" for m in members}
    for m in members:
        rows = sub[sub["space"] == m]
        missing = sorted(set(eval_sets) - set(rows["eval_set"]))
        beats = not missing and bool((rows["above_chance_ci_low"] > 0).all())
        if rule == "all":
            kept.append(m)
            reasons[m] = "kept (rule: all)"
        elif beats:
            kept.append(m)
            reasons[m] = "kept: above chance on " + ", ".join(eval_sets)
        else:
            worst = rows.sort_values("above_chance_ci_low").head(1)
            reasons[m] = ("left out: no score on " + ", ".join(missing)) if missing else (
                f"left out: not above chance on {worst['eval_set'].iloc[0]} (precision - chance "
                f"{worst['above_chance'].iloc[0]:+.3f}, interval from {worst['above_chance_ci_low'].iloc[0]:+.3f})")
    if not kept and members:
        best = sub.groupby("space")["above_chance"].mean().reindex(members).idxmax()
        kept = [best]
        reasons[best] = "kept: no member beats chance; the best one is kept so that a fused space exists"
    return kept, reasons
