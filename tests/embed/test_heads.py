"""Head members on cached frozen features: losses against brute force, a planted signal, the leak guard."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from skinmap.embed.members.dino import dino_loss
from skinmap.embed.members.heads import (
    HEAD_KINDS, HeadConfig, HeadEncoder, ViewEncoder, apply_view, caption_positives, fit_head,
    multi_positive_clip_loss, siglip_loss,
)


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_head_kinds_match_the_registry():
    from skinmap.embed.members.registry import HEAD_KINDS as REGISTERED

    assert tuple(HEAD_KINDS) == tuple(REGISTERED)


def test_multi_positive_clip_loss_brute_force(rng):
    u, v = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    ids = np.array([0, 1, 0, 2, 1])
    scale = 2.5
    uu, vv = _unit(u), _unit(v)
    sim = scale * uu @ vv.T
    total = 0.0
    for i in range(5):
        pos = [j for j in range(5) if ids[j] == ids[i]]
        log_i2t = [sim[i, j] - math.log(sum(math.exp(sim[i, l]) for l in range(5))) for j in range(5)]
        log_t2i = [sim[j, i] - math.log(sum(math.exp(sim[l, i]) for l in range(5))) for j in range(5)]
        total += -sum(log_i2t[j] for j in pos) / len(pos) - sum(log_t2i[j] for j in pos) / len(pos)
    expected = total / 10
    got = multi_positive_clip_loss(torch.tensor(u), torch.tensor(v), scale, caption_positives(torch.tensor(ids)))
    assert abs(got.item() - expected) < 1e-9


def test_clip_loss_with_distinct_captions_is_the_papers(rng):
    from skinmap.embed.fusion import clip_loss

    u, v = torch.tensor(rng.standard_normal((6, 4))), torch.tensor(rng.standard_normal((6, 4)))
    assert abs(multi_positive_clip_loss(u, v, 3.0).item() - clip_loss(u, v, 3.0).item()) < 1e-12


def test_siglip_loss_brute_force(rng):
    u, v = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    ids = np.array([3, 3, 1, 2])
    scale, bias = 4.0, -1.5
    uu, vv = _unit(u), _unit(v)
    total = 0.0
    for i in range(4):
        for j in range(4):
            z = 1.0 if ids[i] == ids[j] else -1.0
            total += -math.log(1.0 / (1.0 + math.exp(-z * (scale * uu[i] @ vv[j] + bias))))
    got = siglip_loss(torch.tensor(u), torch.tensor(v), scale, bias, caption_positives(torch.tensor(ids)))
    assert abs(got.item() - total / 4) < 1e-9


def test_dino_loss_brute_force(rng):
    s = [rng.standard_normal((3, 5)) for _ in range(2)]
    t = [rng.standard_normal((3, 5)) for _ in range(2)]
    c = rng.standard_normal(5)
    ts, tt = 0.1, 0.04

    def softmax(x):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    terms = []
    for a in range(2):
        for b in range(2):
            if a != b:
                q, p = softmax((t[a] - c) / tt), softmax(s[b] / ts)
                terms.append(np.mean(-(q * np.log(p)).sum(axis=1)))
    got = dino_loss([torch.tensor(x) for x in s], [torch.tensor(x) for x in t], torch.tensor(c), ts, tt)
    assert abs(got.item() - np.mean(terms)) < 1e-9


def _loo_1nn_accuracy(x, y):
    x = _unit(np.asarray(x, np.float64))
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    return float(np.mean(y[s.argmax(axis=1)] == y))


def test_lit_head_learns_a_planted_caption_signal(rng):
    # the label lives in two low-variance dimensions under twenty loud noise dimensions: raw cosine
    # neighbours ignore it; a head trained to match the captions must find it
    n, n_classes = 240, 4
    y = np.arange(n) % n_classes
    angle = 2 * np.pi * y / n_classes
    x = np.concatenate([0.3 * np.column_stack([np.cos(angle), np.sin(angle)]), rng.standard_normal((n, 20))], axis=1)
    x = _unit(x).astype(np.float32)
    text = np.eye(n_classes, dtype=np.float32)[y]  # a caption vector per class
    train, test = np.arange(n) < 160, np.arange(n) >= 160
    assert _loo_1nn_accuracy(x[test], y[test]) < 0.5
    for kind in ("lit_clip", "lit_siglip"):
        cfg = HeadConfig(embed_dim=8, hidden_dim=0, optim={"lr": 0.05, "batch_size": 64, "max_steps": 150,
                                                           "warmup_fraction": 0.0, "weight_decay": 0.0})
        module, history = fit_head(kind, cfg, x[train], text=text[train], caption_ids=y[train])
        assert len(history) == 150 and history[-1]["train/loss"] < history[0]["train/loss"]
        assert _loo_1nn_accuracy(module.transform(x[test]), y[test]) > 0.9, kind
        # zero-shot through the text head: each class's caption vector is its prompt; the test images
        # were never trained on and chance is 1 / n_classes
        prompts = module.embed_texts(np.eye(n_classes, dtype=np.float32))
        assert np.allclose(np.linalg.norm(prompts, axis=1), 1.0, atol=1e-5)
        predicted = (module.transform(x[test]) @ prompts.T).argmax(axis=1)
        assert np.mean(predicted == y[test]) > 0.9, kind
    with pytest.raises(ValueError, match="no text head"):
        fit_head("dino_head", cfg, x[train], views=np.stack([x[train], x[train]]))[0].embed_texts(text[:2])


def test_dino_head_learns_view_invariance(rng):
    # each image's two views share a latent code and differ by loud view-specific noise: the teacher's
    # output must put two views of one image closer than views of different images
    n = 200
    code = rng.standard_normal((n, 6))
    views = np.stack([_unit(np.concatenate([code, 2.0 * rng.standard_normal((n, 6))], axis=1)) for _ in range(2)])
    cfg = HeadConfig(embed_dim=8, hidden_dim=32, out_dim=64, feature_dropout=0.0, teacher_momentum=0.9,
                     optim={"lr": 0.01, "batch_size": 100, "max_steps": 300, "weight_decay": 0.0})
    module, history = fit_head("dino_head", cfg, views[0].astype(np.float32), views=views.astype(np.float32))
    a, b = module.transform(views[0]), module.transform(views[1])
    raw = float(np.mean(np.argmax(views[0] @ views[1].T, axis=1) == np.arange(n)))
    learned = float(np.mean(np.argmax(a @ b.T, axis=1) == np.arange(n)))
    assert np.isfinite(a).all() and np.std(a, axis=0).mean() > 1e-3  # not collapsed
    assert learned > raw + 0.2, (raw, learned)


def test_fit_head_rejects_missing_inputs(rng):
    x = _unit(rng.standard_normal((10, 4))).astype(np.float32)
    with pytest.raises(ValueError, match="caption"):
        fit_head("lit_clip", HeadConfig(), x)
    with pytest.raises(ValueError, match="views"):
        fit_head("dino_head", HeadConfig(), x)
    with pytest.raises(ValueError, match="views"):
        HeadConfig(views=("identity",))


def test_views_are_the_named_transforms(rng):
    b = rng.integers(0, 255, (2, 5, 5, 3), dtype=np.uint8)
    assert np.array_equal(apply_view(b, "hflip")[0], b[0, :, ::-1])
    assert np.array_equal(apply_view(apply_view(b, "rot90"), "rot270"), b)
    assert np.array_equal(apply_view(b, "rot90")[1][0, 0], b[1][0, 4])  # counter-clockwise
    assert np.array_equal(apply_view(b, "transpose")[0, 1, 3], b[0, 3, 1])


class _RowEncoder:
    """Fake frozen tower: the red channel is the image's row id (recorded), the rest
    of the vector depends on the view (a flip-sensitive gradient) so the views differ."""

    name, image_size, dim, identity = "rows", 8, 4, "rows-v1"

    def __init__(self):
        self.seen: list[int] = []

    def encode_uint8(self, batch):
        self.seen += [int(v) for v in batch[:, 0, 0, 0]]
        x = batch.astype(np.float64)
        return np.column_stack([x[:, 0, 0, 0] + 1, x[:, :, :4].mean(axis=(1, 2, 3)) + 1,
                                x[:, :4].mean(axis=(1, 2, 3)) + 2, np.full(len(batch), 3.0)]).astype(np.float32)


def test_no_test_or_holdout_row_reaches_a_head_training_batch(tmp_path, rng):
    from skinmap.embed import pipeline as emb
    from skinmap.embed.extract import extract_vectors

    n = 30
    paths = []
    for i in range(n):
        arr = rng.integers(100, 200, (8, 8, 3), dtype=np.uint8)
        arr[:, :, 0] = i  # every pixel carries the row id: flips and rotations keep it
        arr[:, :4, 1] = 250  # left half bright: a horizontal flip changes the features
        p = tmp_path / f"img_{i:02d}.png"
        Image.fromarray(arr).save(p)
        paths.append(str(p))
    roles = np.array(["train", "test", "holdout"] * 10)
    images = pd.DataFrame({"uid": [f"u{i}" for i in range(n)], "dataset": ["A"] * 15 + ["B"] * 15, "path": paths,
                           "image_id": [str(i) for i in range(n)],
                           "caption": [f"caption {i % 4}" for i in range(n)]})
    base = _RowEncoder()
    hashes = emb.hash_files(paths, progress=False)
    base_vectors = extract_vectors(paths, base, tmp_path / "cache", hashes=hashes, progress=False).vectors
    base.seen.clear()
    text = np.eye(4, dtype=np.float32)[np.arange(n) % 4]
    seen_batches: list[np.ndarray] = []
    specs = [{"name": k, "kind": k, "partition": "all",
              "config": {"embed_dim": 4, "hidden_dim": 8, "out_dim": 16, "views": ["identity", "hflip"],
                         "optim": {"batch_size": 8, "max_steps": 5}}} for k in HEAD_KINDS]
    train = roles == "train"
    curves, report, vectors = emb.train_head_members(
        specs, images, tmp_path / "out", base, base_vectors, hashes=hashes, train_rows=train, text=text,
        cache_dir=tmp_path / "cache", progress=False, on_batch=seen_batches.append)
    assert {info["status"] for info in report.values()} == {"trained"}
    assert len(seen_batches) == 5 * len(HEAD_KINDS)
    used = np.unique(np.concatenate(seen_batches))
    assert train[used].all() and used.size > 0
    # the augmented views were extracted for train rows only
    assert base.seen and set(base.seen) <= set(np.flatnonzero(train).tolist())
    # every image gets every member's vector (the heads are fixed functions once trained)
    assert all(np.isfinite(v).all() and v.shape == (n, 4) for v in vectors.values())
    # the saved member, rebuilt as an encoder over pixels, gives the same vectors as the chapter's transform
    from skinmap.embed.checkpoint import load_checkpoint
    from skinmap.embed.members.heads import HeadMember
    from skinmap import runs

    saved = load_checkpoint(runs.chapter_export_path(tmp_path / "out", "embedding.model", member="lit_clip"))
    encoder = HeadEncoder("lit_clip", HeadMember.from_payload(saved), base)
    again = extract_vectors(paths, encoder, tmp_path / "cache2", progress=False).vectors
    assert np.allclose(again, vectors["lit_clip"], atol=1e-5)
    # a rerun with the same data, config and split is served by the training cache
    _, report2, vectors2 = emb.train_head_members(
        specs, images, tmp_path / "out", base, base_vectors, hashes=hashes, train_rows=train, text=text,
        cache_dir=tmp_path / "cache", progress=False)
    assert {info["status"] for info in report2.values()} == {"cached"}
    assert all(np.array_equal(vectors[k], vectors2[k]) for k in vectors)


def test_view_encoder_identity_names_the_view():
    base = _RowEncoder()
    assert ViewEncoder(base, "identity").identity == base.identity
    assert ViewEncoder(base, "hflip").identity != ViewEncoder(base, "rot90").identity


def test_pca_init_starts_at_the_principal_axes(rng):
    # with a zero learning rate the trained head is its start: the PCA projection of the training features
    x = _unit(rng.standard_normal((50, 6)) * np.array([5, 4, 3, 0.1, 0.1, 0.1])).astype(np.float32)
    text = _unit(rng.standard_normal((50, 4))).astype(np.float32)
    cfg = HeadConfig(embed_dim=3, hidden_dim=0, pca_init=True, optim={"lr": 0.0, "max_steps": 2, "batch_size": 10})
    module, _ = fit_head("lit_clip", cfg, x, text=text)
    mu = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mu, full_matrices=False)
    ref = _unit((x - mu) @ vt[:3].T)
    got = module.transform(x)
    signs = np.sign(np.sum(got * ref, axis=0))
    assert np.allclose(got, ref * signs, atol=1e-4)
    with pytest.raises(ValueError, match="linear"):
        HeadConfig(hidden_dim=8, pca_init=True)
