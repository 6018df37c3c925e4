"""The leak-free retrieval protocol (issue 15, item 4), checked against independent computations.

* group ids: union-find against a brute-force transitive closure;
* exclusions: a hand-made atlas where a query's nearest neighbour is its own lesion, and random
  atlases against a brute-force search of the allowed rows;
* P@k, R@k, AP@k for k = 1..K against a plain loop over ranks;
* the whole benchmark's point estimates against a brute-force benchmark;
* coverage of the query-group bootstrap on synthetic clustered data (and the row bootstrap's
  under-coverage on the same data, so the test can tell the two apart);
* a planted leak: legacy P@1 = 1, strict P@1 at chance.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from skinmap.analysis import retrieval
from skinmap.analysis.evaluation_split import group_ids
from skinmap.analysis.resampling import percentile_interval


# ----------------------------------------------------------------------------------- brute force


def closure_groups(*keys):
    """Group of each row by repeated merging until nothing changes (no union-find)."""
    n = len(keys[0])
    label = list(range(n))
    changed = True
    while changed:
        changed = False
        for a, b in itertools.combinations(range(n), 2):
            linked = any(k[a] is not None and k[b] is not None and k[a] == k[b] for k in keys)
            if linked and label[a] != label[b]:
                old, new = max(label[a], label[b]), min(label[a], label[b])
                label = [new if x == old else x for x in label]
                changed = True
    return np.array(label)


def same_partition(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return all((a[i] == a[j]) == (b[i] == b[j]) for i in range(len(a)) for j in range(len(a)))


def brute_neighbours(X, q, pool, groups, protocol, K):
    """Rows of the K most similar allowed pool rows, by a full sort of a masked similarity row."""
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    allowed = [r for r in pool if (r != q if protocol == "legacy" else groups[r] != groups[q])]
    sims = np.array([Xn[r] @ Xn[q] for r in allowed])
    order = np.argsort(-sims, kind="stable")[:K]
    out = [allowed[i] for i in order]
    return out + [-1] * (K - len(out))


def brute_metrics(rel, R, K):
    """P@k, R@k, AP@k for k = 1..K by plain loops over ranks."""
    P, Rc, AP = [], [], []
    for k in range(1, K + 1):
        hits = sum(rel[:k])
        P.append(hits / k)
        Rc.append(hits / R if R > 0 else np.nan)
        ap = sum(sum(rel[:i]) / i for i in range(1, k + 1) if rel[i - 1])
        AP.append(ap / min(k, R) if R > 0 else np.nan)
    return np.array(P), np.array(Rc), np.array(AP)


def brute_benchmark(X, labels, datasets, eval_set, groups, setting, protocol, K):
    """Mean P@k, R@k, AP@k (k = 1..K) over queries with R > 0, all by loops."""
    n = len(labels)
    pool = [r for r in range(n) if setting == "whole_atlas" or datasets[r] == eval_set]
    per = []
    for q in range(n):
        if datasets[q] != eval_set or labels[q] is None:
            continue
        nn = brute_neighbours(X, q, pool, groups, protocol, K)
        rel = [r >= 0 and labels[r] == labels[q] for r in nn]
        allowed = [r for r in pool if (r != q if protocol == "legacy" else groups[r] != groups[q])]
        R = sum(labels[r] == labels[q] for r in allowed)
        if R > 0:
            per.append(brute_metrics(rel, R, K))
    return np.mean([p[0] for p in per], axis=0), np.mean([p[1] for p in per], axis=0), \
        np.mean([p[2] for p in per], axis=0), len(per)


# ----------------------------------------------------------------------------------- groups


def one_dataset_groups(*keys):
    """Retrieval's groups for rows of one dataset, each key a global label column."""
    return group_ids(["D"] * len(keys[0]), clusters=keys)


def test_groups_chain_lesion_patient_and_cluster():
    lesion = ["L1", "L1", "L2", None, None, "L3", None]
    patient = [None, "P1", "P1", "P2", None, None, None]
    cluster = [None, None, None, "C1", "C1", None, None]
    g = group_ids(["D"] * 7, lesion_ids=lesion, patient_ids=patient, clusters=[cluster])
    # rows 0-2: lesion L1 chains to patient P1 chains to lesion L2; rows 3-4: patient P2 + cluster C1
    assert g[0] == g[1] == g[2] and g[3] == g[4]
    assert len({g[0], g[3], g[5], g[6]}) == 4
    assert sorted(set(g.tolist())) == list(range(4))  # labels 0..G-1


def test_groups_match_closure_on_random_keys(rng):
    for _ in range(20):
        n = int(rng.integers(2, 15))
        keys = [[None if rng.random() < 0.4 else f"{name}{rng.integers(0, 4)}" for _ in range(n)]
                for name in ("l", "p", "c")]
        assert same_partition(one_dataset_groups(*keys), closure_groups(*keys))


# ----------------------------------------------------------------------------------- exclusions


def hand_atlas():
    """Points on the unit circle. Query 0 (lesion A) has its own lesion's second image (row 1) as
    nearest neighbour, then a different lesion of the same diagnosis (row 2), then a miss (row 3)."""
    ang = np.array([0.0, 0.01, 0.05, 0.08, 1.5, 1.51])
    X = np.c_[np.cos(ang), np.sin(ang)]
    labels = ["mel", "mel", "mel", "nev", "nev", "nev"]
    lesion = ["A", "A", "B", "C", "D", "E"]
    datasets = ["Q"] * 6
    return X, labels, lesion, datasets


def test_own_lesion_is_not_a_candidate_by_hand():
    X, labels, lesion, datasets = hand_atlas()
    groups = one_dataset_groups(lesion)
    nn_strict = retrieval.neighbours_outside_group(X, np.array([0]), np.arange(6), 3, groups=groups)
    nn_legacy = retrieval.neighbours_outside_group(X, np.array([0]), np.arange(6), 3, groups=groups,
                                                   protocol="legacy")
    assert nn_legacy[0].tolist() == [1, 2, 3]  # its own lesion's twin first
    assert nn_strict[0].tolist() == [2, 3, 4]  # the twin is gone
    codes = pd.factorize(pd.Series(labels))[0]
    # R: other mel images the query may retrieve: legacy {1, 2}, strict {2}
    assert retrieval.relevant_counts(codes, np.array([0]), np.arange(6), groups=groups).tolist() == [1]
    assert retrieval.relevant_counts(codes, np.array([0]), np.arange(6), groups=groups,
                                     protocol="legacy").tolist() == [2]
    mask = retrieval.excluded_from_candidates(np.array([0, 2]), np.arange(6), groups)
    assert mask.tolist() == [[True, True, False, False, False, False], [False, False, True, False, False, False]]
    # P@1 of query 0: legacy counts the twin as a hit (1.0), strict retrieves row 2, also mel (1.0);
    # query 1 likewise; query 2 (lesion B): nearest is row 1 (mel) under both protocols.
    # Query 3 (nev): legacy nearest row 2 (mel, miss); strict the same. Check the whole table:
    out = retrieval.retrieval_curves(X, labels, datasets, ["Q"], groups=groups, max_neighbors=3, n_neighbors=1,
                                     n_bootstrap=20, settings=("same_dataset",))
    table = out.table().set_index("protocol")
    for protocol in ("strict", "legacy"):
        P, _, _, n = brute_benchmark(X, labels, datasets, "Q", groups, "same_dataset", protocol, 1)
        assert table.loc[protocol, "precision"] == pytest.approx(P[0])
        assert table.loc[protocol, "n_queries"] == n


def test_exclusions_and_benchmark_match_brute_force(rng):
    n, K = 60, 7
    X = rng.normal(size=(n, 4))
    lesion = [f"L{rng.integers(0, 25)}" if rng.random() < 0.8 else None for _ in range(n)]
    patient = [f"P{rng.integers(0, 12)}" if rng.random() < 0.3 else None for _ in range(n)]
    groups = one_dataset_groups(lesion, patient)
    labels = [None if rng.random() < 0.1 else str(rng.integers(0, 3)) for _ in range(n)]
    datasets = [("Q" if i % 3 else "A") for i in range(n)]
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    q_rows = np.array([i for i in range(n) if datasets[i] == "Q"])
    for protocol in ("strict", "legacy"):
        for pool in (np.arange(n), q_rows):
            nn = retrieval.neighbours_outside_group(Xn, q_rows, pool, K, groups=groups, protocol=protocol)
            for i, q in enumerate(q_rows):
                assert nn[i].tolist() == brute_neighbours(X, q, list(pool), groups, protocol, K)
    out = retrieval.retrieval_curves(X, labels, datasets, ["Q"], groups=groups, max_neighbors=K, n_neighbors=3,
                                     n_bootstrap=10)
    for (setting, protocol), sub in out.curves.groupby(["setting", "protocol"]):
        P, R, AP, nq = brute_benchmark(X, labels, datasets, "Q", groups, setting, protocol, K)
        np.testing.assert_allclose(sub["precision"], P, atol=1e-12)
        np.testing.assert_allclose(sub["recall"], R, atol=1e-12)
        np.testing.assert_allclose(sub["ap"], AP, atol=1e-12)
        assert (sub["n_queries"] == nq).all()
        assert (sub["precision_ci_low"] <= sub["precision"] + 1e-12).all()
        assert (sub["precision"] <= sub["precision_ci_high"] + 1e-12).all()
    # without groups, strict and legacy are the same rule
    plain = retrieval.retrieval_curves(X, labels, datasets, ["Q"], max_neighbors=K, n_neighbors=3, n_bootstrap=10)
    s = plain.curves.set_index(["setting", "protocol", "n_neighbors"])
    np.testing.assert_allclose(s.xs("strict", level=1)["ap"], s.xs("legacy", level=1)["ap"])


def test_case_index_strict_search_leaves_out_the_group(rng):
    X = rng.normal(size=(30, 5))
    meta = pd.DataFrame({"uid": [f"u{i}" for i in range(30)]})
    groups = rng.integers(0, 8, size=30)
    index = retrieval.CaseIndex(X, meta, groups=groups)
    for q in (0, 11, 29):
        got = index.search_uid(f"u{q}", 6)["row"].tolist()
        assert got == brute_neighbours(X, q, list(range(30)), groups, "strict", 6)
        got = index.search_uid(f"u{q}", 6, protocol="legacy")["row"].tolist()
        assert got == brute_neighbours(X, q, list(range(30)), groups, "legacy", 6)


# ----------------------------------------------------------------------------------- metrics


def test_ranking_curves_match_a_loop_over_ranks(rng):
    K = 12
    rel = rng.random((40, K)) < 0.3
    R = rng.integers(0, 15, size=40)
    R[:5] = 0
    got = retrieval.ranking_curves(rel, R)
    for i in range(40):
        P, Rc, AP = brute_metrics(list(rel[i]), int(R[i]), K)
        np.testing.assert_allclose(got["precision"][i], P)
        np.testing.assert_allclose(got["recall"][i], Rc)
        np.testing.assert_allclose(got["ap"][i], AP)


# ----------------------------------------------------------------------------------- intervals


def clustered_sample(rng, n_groups=40, mu=0.3, between=1.0, within=0.3):
    sizes = rng.integers(1, 9, size=n_groups)
    groups = np.repeat(np.arange(n_groups), sizes)
    values = mu + rng.normal(0, between, n_groups)[groups] + rng.normal(0, within, groups.size)
    return values, groups


def test_group_bootstrap_covers_on_clustered_data_and_the_row_bootstrap_does_not():
    rng = np.random.default_rng(7)
    n_rep, mu = 300, 0.3
    covered = {"groups": 0, "rows": 0}
    for _ in range(n_rep):
        values, groups = clustered_sample(rng, mu=mu)
        for kind, g in (("groups", groups), ("rows", None)):
            _, reps = retrieval.group_bootstrap_means(values, g, n_bootstrap=200, rng=rng)
            low, high = percentile_interval(reps[:, 0], 0.95)
            covered[kind] += low <= mu <= high
    # 300 replications: Monte Carlo s.e. of a 0.95 coverage is 0.013
    assert 0.89 <= covered["groups"] / n_rep <= 0.99
    assert covered["rows"] / n_rep < 0.80  # images of one group are not independent evidence


def test_group_bootstrap_means_skip_nonfinite_rows():
    values = np.array([[1.0, np.nan], [3.0, 2.0], [5.0, 4.0]])
    means, reps = retrieval.group_bootstrap_means(values, None, n_bootstrap=50, rng=np.random.default_rng(0))
    np.testing.assert_allclose(means, [3.0, 3.0])
    assert np.nanmin(reps[:, 1]) >= 2.0 and np.nanmax(reps[:, 1]) <= 4.0


# ----------------------------------------------------------------------------------- planted leak


def test_planted_leak_legacy_is_perfect_and_strict_is_at_chance():
    """Each lesion is photographed twice (two nearly identical vectors); lesions point in random
    directions and their diagnoses are random, so nothing but the twin predicts a diagnosis."""
    rng = np.random.default_rng(3)
    n_lesions, n_classes, d = 150, 3, 16
    centres = rng.normal(size=(n_lesions, d))
    X = np.repeat(centres, 2, axis=0) + rng.normal(0, 1e-3, size=(2 * n_lesions, d))
    lesion = np.repeat([f"L{i}" for i in range(n_lesions)], 2)
    labels = np.repeat(rng.integers(0, n_classes, n_lesions).astype(str), 2)
    datasets = np.array(["Q"] * (2 * n_lesions))
    groups = one_dataset_groups(lesion)
    out = retrieval.retrieval_curves(X, labels, datasets, ["Q"], groups=groups, max_neighbors=5, n_neighbors=1,
                                     n_bootstrap=300, settings=("same_dataset",))
    t = out.table().set_index("protocol")
    assert t.loc["legacy", "precision"] == 1.0
    # chance: P@1 of a candidate drawn at random from the allowed rows, averaged over queries
    same = labels[:, None] == labels[None, :]
    allowed = groups[:, None] != groups[None, :]
    chance = ((same & allowed).sum(axis=1) / allowed.sum(axis=1)).mean()
    assert t.loc["strict", "precision_ci_low"] <= chance <= t.loc["strict", "precision_ci_high"]
    assert t.loc["strict", "precision_ci_high"] < 0.6
    diff = out.difference_table().set_index("metric")
    assert diff.loc["precision", "ci_high"] < 0  # leakage inflated P@1, and the interval says so


def test_groups_scope_ids_to_their_dataset():
    datasets = ["D7", "D7", "PAD", "PAD", "HAM", "ISIC"]
    lesion = ["1", "1", "1", None, "H1", None]
    patient = [None, None, "P1", "P1", None, None]
    cluster = pd.array([pd.NA, pd.NA, pd.NA, pd.NA, 4, 4], dtype="Int64")
    g = group_ids(datasets, lesion_ids=lesion, patient_ids=patient, clusters=[cluster])
    # lesion "1" of D7 is not lesion "1" of PAD; PAD rows join by patient; clusters cross datasets
    assert g[0] == g[1] and g[2] == g[3] and g[4] == g[5]
    assert len({g[0], g[2], g[4]}) == 3
    assert group_ids(datasets).tolist() == list(range(6))


# ------------------------------------------------------------------------- whole atlas - own dataset


def test_setting_difference_is_paired_and_finds_a_planted_gain():
    """Dataset Q holds pairs of nearby images with different diagnoses (a_i labelled i, b_i labelled
    i + 1), so inside Q every query's nearest case is wrong; dataset A holds a closer same-label copy
    of every Q image. Searching the whole atlas raises P@1 from 0 to 1, and the paired interval
    of the gain excludes 0. With A removed both settings search the same pool, so the paired
    difference is exactly 0 in every resample (independent draws would give a non-zero interval)."""
    rng = np.random.default_rng(5)
    n, d = 40, 8
    a = rng.normal(size=(n, d))
    b = a + rng.normal(0, 1e-2, size=(n, d))
    q_labels = np.concatenate([np.arange(n), (np.arange(n) + 1) % n]).astype(str)
    q = np.vstack([a, b])
    X = np.vstack([q, q + rng.normal(0, 1e-4, size=q.shape)])
    labels = np.concatenate([q_labels, q_labels])
    datasets = np.array(["Q"] * (2 * n) + ["A"] * (2 * n))
    out = retrieval.retrieval_curves(X, labels, datasets, ["Q"], max_neighbors=3, n_neighbors=1, n_bootstrap=200)
    t = out.table().set_index(["setting", "protocol"])
    gain = out.setting_difference_table().set_index(["protocol", "metric"])
    own, whole = t.loc[("same_dataset", "strict"), "precision"], t.loc[("whole_atlas", "strict"), "precision"]
    assert whole == 1.0 and own == 0.0
    assert gain.loc[("strict", "precision"), "difference"] == pytest.approx(1.0)
    assert gain.loc[("strict", "precision"), "ci_low"] == pytest.approx(1.0)
    # one dataset only: both settings search the same pool, so the paired difference is 0 in every draw
    mix = rng.permutation(2 * n)
    qx, ql = q[mix] + rng.normal(0, 0.5, size=q.shape), q_labels[mix] # noisier: P@k varies across resamples
    one = retrieval.retrieval_curves(qx, ql, ["Q"] * (2 * n), ["Q"], max_neighbors=5, n_neighbors=5, n_bootstrap=200)
    zero = one.setting_difference_table()
    assert np.allclose(zero[["difference", "ci_low", "ci_high"]].to_numpy(dtype=float), 0.0)
    # the settings' own intervals are not degenerate, so a zero interval is evidence of pairing
    t1 = one.table().set_index(["setting", "protocol"])
    assert t1.loc[("same_dataset", "strict"), "recall_ci_high"] > t1.loc[("same_dataset", "strict"), "recall_ci_low"]


def test_hit_sources_match_a_brute_force_split(rng):
    """Own-dataset and other-dataset hits and their relevant counts against a brute-force search of
    the allowed rows; their total relevant count over k queries is the whole-atlas P@k."""
    n, d, k = 120, 6, 4
    X = rng.normal(size=(n, d))
    labels = rng.integers(0, 3, n).astype(str)
    datasets = np.where(np.arange(n) < 40, "Q", np.where(np.arange(n) < 80, "A", "B"))
    groups = one_dataset_groups(rng.integers(0, 60, n).astype(str))
    out = retrieval.hit_sources(X, labels, datasets, "Q", k, groups=groups).set_index("source")
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    own_hits = own_rel = other_hits = other_rel = 0
    for q in range(40):
        allowed = np.flatnonzero(groups != groups[q])
        sims = Xn[allowed] @ Xn[q]
        top = allowed[np.argsort(-sims, kind="stable")[:k]]
        is_own = datasets[top] == "Q"
        rel = labels[top] == labels[q]
        own_hits += is_own.sum(); own_rel += (is_own & rel).sum()
        other_hits += (~is_own).sum(); other_rel += (~is_own & rel).sum()
    assert out.loc["own dataset", "hits"] == own_hits and out.loc["own dataset", "relevant"] == own_rel
    assert out.loc["other datasets", "hits"] == other_hits and out.loc["other datasets", "relevant"] == other_rel
    whole = retrieval.retrieval_curves(X, labels, datasets, ["Q"], groups=groups, max_neighbors=k, n_neighbors=k,
                                       n_bootstrap=5, settings=("whole_atlas",), protocols=("strict",)).table()
    assert whole["precision"].iloc[0] == pytest.approx((own_rel + other_rel) / (40 * k))
