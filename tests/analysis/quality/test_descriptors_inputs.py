"""The thumbnail descriptor's invariances and the chapter's input readers (now in runs and data.dermamnist)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance

from skinmap.analysis.quality import descriptors, inputs
from skinmap.data import dermamnist


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_descriptor_invariances(rng):
    img = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    d = descriptors.thumbnail_descriptor(img)
    flipped = descriptors.thumbnail_descriptor(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    assert np.allclose(d, flipped, atol=1e-4)  # exactly mirror-invariant
    brighter = descriptors.thumbnail_descriptor(ImageEnhance.Brightness(img).enhance(1.1))
    assert _cos(d, brighter) > 0.98
    other = descriptors.thumbnail_descriptor(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    assert _cos(d, other) < 0.5
    blank = descriptors.thumbnail_descriptor(Image.new("RGB", (10, 10), (30, 30, 30)))
    assert np.isfinite(blank).all() and np.linalg.norm(blank) > 0


def test_descriptors_skip_unreadable(tmp_path, rng):
    good = tmp_path / "a.png"
    Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(good)
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"\xff\xd8\xff not a jpeg")
    x, ok = descriptors.thumbnail_descriptors([str(good), str(bad), None, str(tmp_path / "missing.png")])
    assert x.shape == (1, 6 * 16 * 16 + 1) and ok.tolist() == [True, False, False, False]


def test_dermamnist_reader_and_ground_truth(tmp_path):
    split = tmp_path / "s.csv"
    split.write_bytes(b"split,index,image_id\r\ntrain,0,I1\r\ntest,1,I2\r\n")
    meta = tmp_path / "m.csv"
    meta.write_text("lesion_id,image_id,dx\nL1,I1,nv\nL1,I2,nv\n")
    df = dermamnist.load_dermamnist(split, meta)
    assert list(df["split"]) == ["train", "test"] and list(df["lesion_id"]) == ["L1", "L1"]
    meta.write_text("lesion_id,image_id,dx\nL1,I1,nv\n")
    with pytest.raises(ValueError, match="lack HAM10000 metadata"):
        dermamnist.load_dermamnist(split, meta)
    gt = inputs.ground_truth_pairs({"exact_duplicates": [["a", "b"]], "near_duplicates": [{"a": "c", "b": "d", "transform": "flip"}]})
    assert gt.values.tolist() == [["a", "b", "exact"], ["c", "d", "flip"]]
