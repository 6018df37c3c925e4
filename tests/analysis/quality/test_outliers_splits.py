"""Off-topic ranking, the cleaning rule, the stratified group split, the resolution pitfall."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinmap.analysis.quality import outliers, resolution, splits


def test_planted_outliers_ranked_first(rng):
    centre = rng.normal(size=32)
    inliers = centre + rng.normal(scale=0.3, size=(200, 32))
    planted = rng.normal(size=(5, 32)) * 3
    x = np.vstack([inliers, planted])
    scores = outliers.offtopic_scores(x, n_neighbors=10)
    assert set(np.argsort(-scores)[:5]) == set(range(200, 205))
    truth = np.r_[np.zeros(200, bool), np.ones(5, bool)]
    assert outliers.offtopic_average_precision(scores, truth) == pytest.approx(1.0)
    assert outliers.flag_offtopic(scores, z_threshold=5.0)[200:].all()
    assert np.isnan(outliers.offtopic_average_precision(scores, np.zeros(205, bool)))
    assert (outliers.robust_z(np.ones(4)) == 0).all()
    assert np.isnan(outliers.offtopic_scores(x[:1])).all()


def _meta():
    return pd.DataFrame({
        "uid": ["d/b", "d/a", "d/c", "d/x", "d/y", "d/z", "d/o"],
        "width": pd.array([100, 100, 50, 10, 20, pd.NA, 10], dtype="Int64"),
        "height": pd.array([100, 100, 50, 10, 20, 30, 10], dtype="Int64"),
    })


def test_cleaning_rule_ties_conflicts_offtopic():
    meta = _meta()
    clusters = np.array([0, 0, 0, 1, 1, 2, 3])
    info = pd.DataFrame({"cluster": [0, 1], "conflict": ["homogeneous", "diagnosis"]})
    off = np.array([0, 0, 0, 0, 0, 0, 1], bool)
    out = splits.clean_table(meta, clusters, info, offtopic=off).set_index("uid")
    # d/a and d/b tie at 100x100: smallest uid "d/a" is kept
    assert out.loc["d/a", "clean_action"] == "keep_cluster_representative"
    assert out.loc["d/b", "clean_action"] == "drop_duplicate" and out.loc["d/c", "clean_action"] == "drop_duplicate"
    assert out.loc["d/x", "clean_action"] == out.loc["d/y", "clean_action"] == "drop_conflicting_cluster"
    assert out.loc["d/z", "clean_action"] == "keep" and out.loc["d/o", "clean_action"] == "drop_offtopic"
    assert out["keep"].sum() == 2
    with pytest.raises(ValueError, match="not aligned"):
        splits.clean_table(meta, clusters[:3], info)


def test_missing_resolution_counts_as_zero():
    meta = pd.DataFrame({"uid": ["a", "b"], "width": pd.array([pd.NA, 5], dtype="Int64"), "height": pd.array([pd.NA, 5], dtype="Int64")})
    out = splits.clean_table(meta, np.array([0, 0]), pd.DataFrame({"cluster": [0], "conflict": ["homogeneous"]}))
    assert out.set_index("uid").loc["b", "keep"] and not out.set_index("uid").loc["a", "keep"]


def test_stratified_group_split(rng):
    n = 2000
    groups = rng.integers(0, 700, n).astype(str)
    labels = np.where(rng.random(n) < 0.2, "mel", "nv")
    part = splits.stratified_group_split(labels, groups, seed=1)
    df = pd.DataFrame({"g": groups, "p": part, "y": labels})
    assert (df.groupby("g")["p"].nunique() == 1).all()  # lesions never split
    frac = df["p"].value_counts(normalize=True)
    assert abs(frac["train"] - 0.7) < 0.05 and abs(frac["val"] - 0.1) < 0.04 and abs(frac["test"] - 0.2) < 0.04
    mel = df[df["y"] == "mel"]["p"].value_counts(normalize=True)
    assert abs(mel["test"] - 0.2) < 0.06
    few = splits.stratified_group_split(["a"] * 6, ["g1", "g1", "g2", "g3", None, None], seed=0)
    assert few[0] == few[1] and set(few) <= {"train", "val", "test"}
    with pytest.raises(ValueError, match="multiples of 0.1"):
        splits.stratified_group_split(labels, groups, fractions=(0.75, 0.05, 0.2))


def test_nearest_upsample_blocks_and_probe(rng):
    img = Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    up = np.asarray(resolution.nearest_upsample(img, 28, 224))
    assert up.shape == (224, 224, 3)
    blocks = up.reshape(28, 8, 28, 8, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()  # every 8x8 block is one colour
    assert np.asarray(resolution.direct_resize(img, 224)).shape == (224, 224, 3)
    feats = resolution.pixel_features([img, resolution.nearest_upsample(img)])
    assert feats.shape == (2, 3 * 64 + 16)
    y = np.repeat(["a", "b"], 30)
    x = np.vstack([rng.normal(0, 1, (30, 4)), rng.normal(5, 1, (30, 4))])
    probe = resolution.resolution_probe({"direct": x, "upsampled": x[:, ::-1]}, y, seed=0)
    assert len(probe) == 4
    same = probe[probe["train_on"] == probe["test_on"]]
    assert (same["accuracy"] == 1.0).all()


def test_probe_with_missing_group_ids(rng):
    y = np.repeat(["a", "b"], 20)
    x = np.vstack([rng.normal(0, 1, (20, 3)), rng.normal(4, 1, (20, 3))])
    probe = resolution.resolution_probe({"v": x}, y, [None] * 40, seed=0)
    assert probe["n_train"].item() == 28 and probe["n_test"].item() == 12
