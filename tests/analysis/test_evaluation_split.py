"""The evaluation split (issue 15): roles follow the lesion, patient and near-duplicate relations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from skinmap.analysis.evaluation_split import (
    EvaluationSplitConfig,
    assign_roles,
    evaluation_split,
    group_ids,
    held_out_names,
    training_mask,
)

DATASETS = ["A", "B", "C", "D"]


@st.composite
def groupings(draw):
    n = draw(st.integers(1, 60))
    datasets = draw(st.lists(st.sampled_from(DATASETS), min_size=n, max_size=n))
    lesion = draw(st.lists(st.one_of(st.none(), st.sampled_from("pqrst")), min_size=n, max_size=n))
    patient = draw(st.lists(st.one_of(st.none(), st.sampled_from("uvwxyz")), min_size=n, max_size=n))
    n_pairs = draw(st.integers(0, n))
    pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), min_size=n_pairs, max_size=n_pairs))
    held = draw(st.lists(st.sampled_from(DATASETS), max_size=2, unique=True))
    fraction = draw(st.floats(0.05, 0.8))
    seed = draw(st.integers(0, 1000))
    return datasets, lesion, patient, pairs, held, fraction, seed


def related(datasets, lesion, patient, pairs):
    """Every directly related pair of rows (brute force over all pairs, independent of union-find)."""
    n = len(datasets)
    out = set(map(tuple, pairs))
    for a in range(n):
        for b in range(a + 1, n):
            if datasets[a] == datasets[b] and (
                    (lesion[a] is not None and lesion[a] == lesion[b])
                    or (patient[a] is not None and patient[a] == patient[b])):
                out.add((a, b))
    return out


@settings(max_examples=150, deadline=None)
@given(groupings())
def test_related_rows_share_a_role(case):
    datasets, lesion, patient, pairs, held, fraction, seed = case
    i = np.array([p[0] for p in pairs], dtype=np.int64)
    j = np.array([p[1] for p in pairs], dtype=np.int64)
    groups = group_ids(datasets, lesion, patient, (i, j))
    roles = assign_roles(datasets, groups, EvaluationSplitConfig(held_out_datasets=held, test_fraction=fraction, seed=seed))
    for a, b in related(datasets, lesion, patient, pairs):
        assert groups[a] == groups[b]
        assert roles[a] == roles[b], (a, b, roles[a], roles[b])
    # every row of a held-out dataset is holdout; a holdout row elsewhere is related (transitively) to one
    held_rows = np.isin(datasets, held)
    assert (roles[held_rows] == "holdout").all()
    held_groups = set(groups[held_rows].tolist())
    assert all(groups[r] in held_groups for r in np.flatnonzero(roles == "holdout"))
    assert set(roles.tolist()) <= {"train", "test", "holdout"}


def test_lesion_ids_are_qualified_by_dataset():
    groups = group_ids(["A", "B", "A"], ["x", "x", "x"], None)
    assert groups[0] == groups[2] != groups[1]


def test_test_draw_follows_the_fraction_per_dataset_and_the_seed():
    n = 2000
    datasets = np.where(np.arange(n) < 1500, "big", "small")
    groups = np.arange(n) // 2  # two-image groups
    roles = assign_roles(datasets, groups, EvaluationSplitConfig(test_fraction=0.2, seed=3))
    for name, size in (("big", 1500), ("small", 500)):
        share = (roles[datasets == name] == "test").mean()
        assert 0.2 - 2 / size <= share <= 0.2  # whole groups, never above the budget
    again = assign_roles(datasets, groups, EvaluationSplitConfig(test_fraction=0.2, seed=3))
    other = assign_roles(datasets, groups, EvaluationSplitConfig(test_fraction=0.2, seed=4))
    assert (roles == again).all() and (roles != other).any()


def test_near_duplicates_from_frozen_vectors_join_a_group():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 16)).astype(np.float32)
    x[7] = x[3] + 0.01 * rng.standard_normal(16)  # a planted near-duplicate pair, in two datasets
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    datasets = np.array(["A"] * 25 + ["B"] * 25)
    datasets[7] = "B"
    out = evaluation_split(datasets, None, None, x, EvaluationSplitConfig(held_out_datasets=("B",), duplicate_threshold=0.99))
    assert out["group"][3] == out["group"][7]
    assert out["role"][3] == "holdout"  # held out with its duplicate in the held-out dataset
    assert out.attrs["n_pairs"] == 1
    assert held_out_names(datasets, out["role"]) == ["B"]


def test_training_mask():
    roles = np.array(["train", "test", "holdout", "train"])
    assert training_mask(roles, "strict").tolist() == [True, False, False, True]
    assert training_mask(roles, "legacy").all()
    with pytest.raises(ValueError, match="evaluation_protocol"):
        training_mask(roles, "lenient")
    with pytest.raises(ValueError, match="unknown role"):
        training_mask(["train", "val"])


def test_config_checks_its_knobs():
    with pytest.raises(ValueError, match="test_fraction"):
        EvaluationSplitConfig(test_fraction=0.95)
    with pytest.raises(ValueError, match="duplicate_threshold"):
        EvaluationSplitConfig(duplicate_threshold=0.0)
