"""The thumbnail descriptor's invariances and the chapter's input readers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance

from skinmap.analysis.quality import descriptors, inputs


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


def test_load_vectors_drops_stale_rows(tmp_path):
    emb = tmp_path / "embedding"
    (emb / "members").mkdir(parents=True)
    np.save(emb / "fused.npy", np.eye(3, dtype=np.float32))
    pd.DataFrame({"uid": ["d/a", "d/b", "d/gone"], "dataset": "d", "image_id": ["a", "b", "gone"]}).to_parquet(emb / "fused_ids.parquet")
    cat = pd.DataFrame({"uid": ["d/a", "d/b"], "path": [None, None]})
    x, ids, stale = inputs.load_vectors(tmp_path, "fused", cat)
    assert x.shape == (2, 3) and stale == 1 and list(ids["uid"]) == ["d/a", "d/b"]
    with pytest.raises(FileNotFoundError, match="available"):
        inputs.load_vectors(tmp_path, "nomember", cat)


def test_dermamnist_reader_and_ground_truth(tmp_path):
    split = tmp_path / "s.csv"
    split.write_bytes(b"split,index,image_id\r\ntrain,0,I1\r\ntest,1,I2\r\n")
    meta = tmp_path / "m.csv"
    meta.write_text("lesion_id,image_id,dx\nL1,I1,nv\nL1,I2,nv\n")
    df = inputs.load_dermamnist(split, meta)
    assert list(df["split"]) == ["train", "test"] and list(df["lesion_id"]) == ["L1", "L1"]
    meta.write_text("lesion_id,image_id,dx\nL1,I1,nv\n")
    with pytest.raises(ValueError, match="lack HAM10000 metadata"):
        inputs.load_dermamnist(split, meta)
    gt = inputs.ground_truth_pairs({"exact_duplicates": [["a", "b"]], "near_duplicates": [{"a": "c", "b": "d", "transform": "flip"}]})
    assert gt.values.tolist() == [["a", "b", "exact"], ["c", "d", "flip"]]


def _manifest_run(tmp_path, members):
    models = tmp_path / "embedding" / "models"
    models.mkdir(parents=True)
    import json

    (models / "manifest.json").write_text(json.dumps({"members": members, "fusion": "fusion.pt"}))
    return tmp_path


def test_mirror_vectors_need_a_frozen_member(tmp_path):
    run = _manifest_run(tmp_path, [{"name": "dino", "kind": "dino"}])
    with pytest.raises(ValueError, match="not a frozen efficientnet_lite0"):
        descriptors.member_mirror_vectors(["x.png"], run, member="dino")
    with pytest.raises(ValueError, match="members: \\['dino'\\]"):
        descriptors.member_mirror_vectors(["x.png"], run, member="efficientnet_lite0")


@pytest.mark.slow
def test_mirror_vectors_equal_vectors_of_mirrored_files(tmp_path, rng):
    pytest.importorskip("onnxruntime")
    from skinmap.embed.images import read_image
    from skinmap.embed.members.efficientnet_onnx import EfficientNetLite0

    run = _manifest_run(tmp_path, [{"name": "efficientnet_lite0", "kind": "efficientnet_lite0", "image_size": 32, "threads": 1}])
    paths, mirrored = [], []
    for k in range(3):
        img = Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
        img.save(tmp_path / f"{k}.png")
        img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / f"{k}_m.png")
        paths.append(str(tmp_path / f"{k}.png"))
        mirrored.append(str(tmp_path / f"{k}_m.png"))
    got, ok = descriptors.member_mirror_vectors(paths + [str(tmp_path / "missing.png")], run, progress=False)
    assert ok.tolist() == [True, True, True, False] and np.isnan(got[3]).all()
    assert (run / "quality" / "cache" / "onnx").is_dir()  # exported into the chapter's own folder
    enc = EfficientNetLite0(run / "quality" / "cache", image_size=32, num_threads=1)
    want = enc.encode_uint8(np.stack([read_image(p, 32)[0].pixels for p in mirrored]))
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    # PIL's resize of a mirror is the mirror of the resize up to pixel rounding
    assert (np.sum(got[:3] * want, axis=1) > 0.999).all()
