"""The training cache: a rerun with the same data + config reuses the trained weights without
training, and the reused weights are exactly what a fresh training (no cache at all) produces;
changing a config field, one image's bytes or the fusion inputs retrains."""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import pytest
import torch

from skinmap.embed import pipeline as emb
from skinmap.embed import training_cache as tc
from skinmap.embed.fusion import FusionConfig
from skinmap.embed.members import training
from skinmap.hashing import source_hash

MAE_SPEC = {"name": "mae_t", "kind": "mae", "partition": "all",
            "config": {"image_size": 16, "patch_size": 8, "embed_dim": 32, "depth": 1, "decoder_dim": 16,
                       "optim": {"lr": 1e-3, "batch_size": 8, "max_steps": 2}}}


@pytest.fixture
def images(image_dir):
    paths, _ = image_dir
    return pd.DataFrame({"dataset": ["a"] * 12 + ["b"] * 12, "path": paths,
                         "caption": [f"caption {i}" for i in range(len(paths))]})


@pytest.fixture
def count_training(monkeypatch):
    """Counts real trainings (the pipeline imports ``train_member`` at call time)."""
    calls = []
    real = training.train_member

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train_member", counting)
    return calls


def _weights(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_member_cache_hit_reuses_weights_without_training(images, tmp_path, monkeypatch, count_training):
    cache = tmp_path / "cache"
    curves1, rep1 = emb.train_members([MAE_SPEC], images, tmp_path / "run1", cache_dir=cache, progress=False)
    assert rep1["mae_t"]["status"] == "trained" and count_training == ["mae_t"]
    assert len(list((cache / "models").glob("mae_t-*.pt"))) == 1

    # the reference: the same member trained with no cache anywhere
    curves0, rep0 = emb.train_members([MAE_SPEC], images, tmp_path / "fresh", progress=False)
    assert rep0["mae_t"]["status"] == "trained"

    def no_training(*args, **kwargs):
        raise AssertionError("a cache hit must not train")

    monkeypatch.setattr(training, "train_member", no_training)
    before = time.time() - 1
    shuffled = images.sample(frac=1.0, random_state=1)  # catalog order is not part of the data's identity
    curves2, rep2 = emb.train_members([MAE_SPEC], shuffled, tmp_path / "run2", cache_dir=cache, progress=False)
    assert rep2["mae_t"]["status"] == "cached"
    assert rep2["mae_t"]["steps"] == rep1["mae_t"]["steps"] == 2
    _assert_same_weights(_weights(tmp_path / "run2" / "models" / "mae_t.pt"),
                         _weights(tmp_path / "fresh" / "models" / "mae_t.pt"))
    pd.testing.assert_frame_equal(curves2, curves0)
    # the hit marked its entry as used (the book runner prunes files a run did not write)
    entry = next((cache / "models").glob("mae_t-*.pt"))
    assert entry.stat().st_mtime >= before and (tmp_path / "run2" / "models" / "mae_t.pt").stat().st_mtime >= before
    # the linked checkpoint loads as an encoder
    assert training.TrainedImageEncoder.load(tmp_path / "run2" / "models" / "mae_t.pt").dim == 32
    # reuse=False trains even though an entry exists
    with pytest.raises(AssertionError, match="must not train"):
        emb.train_members([MAE_SPEC], images, tmp_path / "run3", cache_dir=cache, reuse=False, progress=False)


def test_member_cache_misses_on_config_or_image_bytes(images, tmp_path, count_training):
    cache = tmp_path / "cache"
    emb.train_members([MAE_SPEC], images, tmp_path / "run", cache_dir=cache, progress=False)
    emb.train_members([MAE_SPEC], images, tmp_path / "run", cache_dir=cache, progress=False)
    assert count_training == ["mae_t"]  # second call was a hit

    changed = {**MAE_SPEC, "config": {**MAE_SPEC["config"], "optim": {**MAE_SPEC["config"]["optim"], "lr": 2e-3}}}
    _, rep = emb.train_members([changed], images, tmp_path / "run", cache_dir=cache, progress=False)
    assert rep["mae_t"]["status"] == "trained" and len(count_training) == 2

    victim = images["path"].iloc[5]
    with open(victim, "r+b") as handle:  # flip one byte inside the PNG's pixel data chunk
        handle.seek(os.path.getsize(victim) - 20)
        b = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([b[0] ^ 0xFF]))
    _, rep = emb.train_members([MAE_SPEC], images, tmp_path / "run", cache_dir=cache, progress=False)
    assert rep["mae_t"]["status"] == "trained" and len(count_training) == 3
    assert len(list((cache / "models").glob("mae_t-*.json"))) == 3


def test_member_source_modules_follow_the_class_hierarchy():
    # iBOT subclasses DINO: a fix in dino.py must retrain iBOT too
    assert set(tc.member_source_modules("ibot")) == {
        "skinmap.embed.members.ibot", "skinmap.embed.members.dino", "skinmap.embed.members.base",
        "skinmap.embed.members.training", "skinmap.embed.images"}


def test_source_hash_changes_with_the_code(tmp_path, monkeypatch):
    import hashlib
    import importlib

    (tmp_path / "probe_mod_xyz.py").write_text("A = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    h1 = source_hash(["probe_mod_xyz"])
    expected = hashlib.sha256(b"probe_mod_xyz" + b"A = 1\n").hexdigest()
    assert h1 == expected
    (tmp_path / "probe_mod_xyz.py").write_text("A = 2\n")
    assert source_hash(["probe_mod_xyz"]) != h1


def test_canonical_order_sorts_by_hash_then_caption():
    order = tc.canonical_order(["b", "a", None, "a"], ["x", "z", "q", "y"])
    assert order.tolist() == [2, 3, 1, 0]  # missing hash first, then ("a","y"), ("a","z"), ("b","x")


def test_fusion_cache(rng, tmp_path, monkeypatch):
    members = [rng.standard_normal((16, d)).astype(np.float32) for d in (6, 4)]
    members = [m / np.linalg.norm(m, axis=1, keepdims=True) for m in members]
    text = rng.standard_normal((16, 5)).astype(np.float32)
    cfg = FusionConfig(out_dim=3, epochs=2, batch_size=8, warmup_steps=2)
    cache = tmp_path / "cache"
    first = emb.train_fusion(members, cfg, text=text, cache_dir=cache, progress=False)
    assert first.status == "trained" and len(first.history) == 4
    reference = emb.fit_fusion(members, cfg, text=text, progress=False)  # no cache involved

    real = emb.fit_fusion
    calls = []

    def tracked(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(emb, "fit_fusion", tracked)
    again = emb.train_fusion(members, cfg, text=text, cache_dir=cache, progress=False)
    assert again.status == "cached" and not calls
    _assert_same_weights(again.projector.state_dict(), reference.projector.state_dict())
    assert again.history == reference.history
    np.testing.assert_array_equal(again.projector.transform(np.concatenate(members, 1) / np.sqrt(2)),
                                  reference.projector.transform(np.concatenate(members, 1) / np.sqrt(2)))

    assert emb.train_fusion(members, FusionConfig(out_dim=3, epochs=2, batch_size=8, warmup_steps=2, lr=1e-3),
                            text=text, cache_dir=cache, progress=False).status == "trained"
    nudged = [members[0].copy(), members[1]]
    nudged[0][3, 2] = np.nextafter(nudged[0][3, 2], np.float32(2))  # one ulp in one vector
    assert emb.train_fusion(nudged, cfg, text=text, cache_dir=cache, progress=False).status == "trained"
    assert emb.train_fusion(members, cfg, text=None, cache_dir=cache, progress=False).status == "trained"
    assert len(calls) == 3
    assert len(list((cache / "models").glob("fusion-*.pt"))) == 4
