"""Trainable members: objectives against direct computations, tiny training runs, checkpoints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from skinmap.embed.members.base import OptimConfig, imagenet_normalize, warmup_linear_decay
from skinmap.embed.members.dino import dino_loss
from skinmap.embed.members.ibot import masked_patch_loss
from skinmap.embed.members.mae import patchify, sample_masks
from skinmap.embed.members.registry import config_class, member_config
from skinmap.embed.members.training import TrainedImageEncoder, train_member
from skinmap.embed.pipeline import partition_mask

TINY = OptimConfig(lr=1e-3, batch_size=8, max_steps=2)


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_warmup_linear_decay_closed_form():
    total = 20  # warm-up = 2 steps
    got = [warmup_linear_decay(s, total, 0.1) for s in range(total)]
    assert got[:3] == [0.5, 1.0, 1.0]
    np.testing.assert_allclose(got[2:], [(total - s) / (total - 2) for s in range(2, total)])


def test_dino_loss_matches_numpy(rng):
    s = [rng.standard_normal((3, 5)) for _ in range(3)]  # 2 globals + 1 local
    t = [rng.standard_normal((3, 5)) for _ in range(2)]
    c = rng.standard_normal((1, 5))
    terms = []
    for iq in range(2):
        q = _softmax((t[iq] - c) / 0.04)
        for v in range(3):
            if v != iq:
                terms.append(-(q * np.log(_softmax(s[v] / 0.1))).sum(1).mean())
    got = dino_loss([torch.tensor(x) for x in s], [torch.tensor(x) for x in t], torch.tensor(c), 0.1, 0.04)
    np.testing.assert_allclose(float(got), np.mean(terms), rtol=1e-9)


def test_masked_patch_loss_matches_numpy(rng):
    s, t = rng.standard_normal((2, 4, 6)), rng.standard_normal((2, 4, 6))
    mask = np.array([[1, 0, 1, 0], [0, 0, 0, 1]], bool)
    c = rng.standard_normal((1, 1, 6))
    ce = -(_softmax((t - c) / 0.04) * np.log(_softmax(s / 0.1))).sum(-1)
    got = masked_patch_loss(torch.tensor(s), torch.tensor(t), torch.tensor(mask), torch.tensor(c), 0.1, 0.04)
    np.testing.assert_allclose(float(got), ce[mask].mean(), rtol=1e-9)


def test_patchify_row_major(rng):
    x = rng.standard_normal((1, 3, 4, 4))
    p = patchify(torch.tensor(x), 2).numpy()
    np.testing.assert_array_equal(p[0, 1], x[0, :, 0:2, 2:4].transpose(1, 2, 0).ravel())  # patch (row 0, col 1)


def test_mae_masks_depend_on_index_not_process():
    a = sample_masks(torch.tensor([3, 5]), 16, 0.75, seed=0, epoch=0)
    b = sample_masks(torch.tensor([5]), 16, 0.75, seed=0, epoch=0)
    torch.testing.assert_close(a[1], b[0])
    assert not torch.equal(a[0], a[1])


def test_partition_thirds_mix_sources():
    datasets = pd.Series(["a"] * 30 + ["b"] * 12 + ["c"] * 4)
    parts = [partition_mask(datasets, f"third{k}", seed=1) for k in range(3)]
    assert (np.sum(parts, axis=0) == 1).all()  # disjoint and covering
    for p in parts:
        assert set(datasets[p]) == {"a", "b", "c"}  # every source in every third
        assert datasets[p].value_counts()["a"] == 10
    with pytest.raises(ValueError):
        partition_mask(datasets, "fourth0")


def test_member_config_epochs_to_steps():
    spec = {"name": "m", "kind": "mae", "epochs": 2, "config": {"optim": {"batch_size": 10}}}
    assert member_config(spec, 95).optim.max_steps == 19  # ceil(2 * 95 / 10)
    assert member_config(spec, 95, world_size=2).optim.max_steps == 10


@pytest.fixture
def tiny_images(tmp_path, rng):
    from PIL import Image

    paths = []
    for i in range(16):
        p = tmp_path / f"t{i}.png"
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


@pytest.mark.parametrize("kind", ["clip", "siglip", "dino", "ibot", "mae"])
def test_member_trains_and_round_trips(kind, tiny_images, tmp_path):
    cfg_cls = config_class(kind)
    extra = {"vision_width": 32, "text_width": 32, "text_layers": 1, "vision_layers": 1, "embed_dim": 16,
             "context_length": 16} if kind in ("clip", "siglip") else {"embed_dim": 32, "depth": 1}
    config = cfg_cls(image_size=16, patch_size=8, optim=TINY, **extra)
    captions = [f"lesion type {i % 3}" for i in range(len(tiny_images))]
    module, history, skipped = train_member(kind, f"{kind}_t", config, tiny_images, tmp_path / "m.pt", captions=captions)
    assert len(history) == 2 and skipped == 0
    assert all(np.isfinite(r["train/loss"]) for r in history)
    enc = TrainedImageEncoder.load(tmp_path / "m.pt")
    batch = np.random.default_rng(0).integers(0, 255, (3, 16, 16, 3), dtype=np.uint8)
    with torch.no_grad():
        direct = module.eval().encode_images(imagenet_normalize(torch.from_numpy(batch))).numpy()
    np.testing.assert_allclose(enc.encode_uint8(batch), direct, rtol=1e-5, atol=1e-6)
    assert enc.dim == direct.shape[1] and kind in enc.identity


def test_empty_partition_is_reported(tmp_path):
    from skinmap.embed.members.mae import MAEConfig

    with pytest.raises(ValueError, match="partition has 0 usable images"):
        train_member("mae", "empty", MAEConfig(image_size=16, optim=TINY), [str(tmp_path / "nope.png")], None)


def test_registry_builds_every_declared_kind():
    from skinmap.embed.members.registry import TRAINABLE_KINDS, MemberSpec, module_class

    assert set(TRAINABLE_KINDS) == {"clip", "siglip", "dino", "ibot", "mae"}
    for kind in TRAINABLE_KINDS:
        cls = module_class(kind)
        assert cls(name="x", config=cls.config_class(), kind=kind).kind == kind
        MemberSpec(name="x", kind=kind)  # every registered kind is a valid spec
        # a checkpoint's plain-data config rebuilds the optimiser settings
        assert cls.config_class(optim={"lr": 2.0, "max_steps": 3}).optim == OptimConfig(lr=2.0, max_steps=3)
    with pytest.raises(ValueError, match="unknown trainable member kind"):
        module_class("byol")
    with pytest.raises(ValueError):
        MemberSpec(name="x", kind="byol")
