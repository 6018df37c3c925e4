"""Fusion: the STRUCTURE regulariser against numpy, PCA init against scikit-learn, and the planted-
structure test that the regulariser preserves member neighbourhoods."""

from __future__ import annotations

import numpy as np
import torch

from skinmap.analysis.embedding_evaluation import knn_overlap
from skinmap.embed.fusion import (
    FusionConfig, clip_loss, concat_members, fit_fusion, lambda_schedule, pca_init, structure_loss,
)


def _np_softmax_sim(x, tau):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = x @ x.T / tau
    np.fill_diagonal(s, -np.inf)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _np_jsd(p, q):
    m = (p + q) / 2
    def kl(a, b):
        safe = np.where(a > 0, a, 1.0)
        return np.where(a > 0, a * np.log(safe / np.where(a > 0, b, 1.0)), 0.0).sum(axis=1)

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def test_structure_loss_matches_numpy(rng):
    members = [rng.standard_normal((6, 5)), rng.standard_normal((6, 3))]
    proj = rng.standard_normal((6, 4))
    tau = 0.3
    q = _np_softmax_sim(proj, tau)
    expected = np.mean([_np_jsd(_np_softmax_sim(x, tau), q).mean() for x in members])
    got = structure_loss([torch.tensor(x) for x in members], torch.tensor(proj), tau)
    np.testing.assert_allclose(float(got), expected, rtol=1e-10)
    # identical spaces -> 0; JSD is bounded by log 2
    assert float(structure_loss([torch.tensor(proj)], torch.tensor(proj), tau)) < 1e-12
    assert expected <= np.log(2)


def test_clip_loss_matches_numpy(rng):
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    an, bn = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    logits = 10.0 * an @ bn.T
    ce = lambda l: np.mean(np.log(np.exp(l).sum(axis=1)) - np.diag(l))
    expected = 0.5 * (ce(logits) + ce(logits.T))
    np.testing.assert_allclose(float(clip_loss(torch.tensor(a), torch.tensor(b), 10.0)), expected, rtol=1e-10)


def test_lambda_ramp():
    assert [lambda_schedule(s, 10.0, 4) for s in (0, 1, 2, 4, 100)] == [0.0, 2.5, 5.0, 10.0, 10.0]
    assert lambda_schedule(0, 3.0, 0) == 3.0


def test_pca_init_equals_sklearn(rng):
    from sklearn.decomposition import PCA

    z = rng.standard_normal((50, 8)) @ np.diag([5, 4, 3, 2, 1, 0.5, 0.2, 0.1])
    mu, w = pca_init(z, 3)
    ref = PCA(3).fit(z)
    np.testing.assert_allclose(mu, ref.mean_, atol=1e-5)
    np.testing.assert_allclose(np.abs(w @ ref.components_.T), np.eye(3), atol=1e-4)  # equal up to sign
    _, w_big = pca_init(z[:4], 6)  # rank 3 < 6: extra rows orthogonal to the principal ones
    assert np.abs(w_big[3:] @ w_big[:3].T).max() < 1e-6


def test_concat_members_unit_norm(rng):
    xs = [rng.standard_normal((4, d)) for d in (3, 5)]
    xs = [x / np.linalg.norm(x, axis=1, keepdims=True) for x in xs]
    np.testing.assert_allclose(np.linalg.norm(concat_members(xs), axis=1), 1.0, rtol=1e-6)


def test_structure_preserves_planted_neighbourhoods(rng):
    """Two members are different non-linear views of one planted 3-D latent (so they share its
    neighbourhoods); the contrastive partner (text) is unrelated noise that pulls the projection
    elsewhere. With STRUCTURE the projection keeps far more of each member's k-NN than the same
    projector trained without it."""
    torch.manual_seed(0)
    n = 240
    latent = rng.standard_normal((n, 3))
    members = []
    for d in (16, 12):
        x = np.tanh(latent @ rng.standard_normal((3, d))) + 0.05 * rng.standard_normal((n, d))
        members.append((x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32))
    text = rng.standard_normal((n, 16)).astype(np.float32)
    base = dict(out_dim=4, epochs=30, lr=1e-2, batch_size=60, warmup_steps=20, tau=0.1, seed=0)
    scores = {}
    for lam in (0.0, 10.0):
        fused = fit_fusion(members, FusionConfig(structure_lambda=lam, **base), text=text, progress=False)
        y = fused.projector.transform(concat_members(members))
        scores[lam] = np.mean([knn_overlap(y, m, 10) for m in members])
    assert scores[10.0] > scores[0.0] + 0.15, scores


def test_lightning_fit_equals_hand_written_loop(rng):
    """fit_fusion (Lightning) against an independent plain-PyTorch loop of the documented recipe:
    epoch e visits rng([seed, e]).permutation(n) in global batches (last partial batch dropped),
    loss = CLIP(y, t) + lambda_s * STRUCTURE, AdamW without weight decay, grad-norm clip 1.0."""
    from skinmap.embed.fusion import FusionProjector

    n, seed = 20, 3
    members = [rng.standard_normal((n, d)).astype(np.float32) for d in (6, 4)]
    members = [m / np.linalg.norm(m, axis=1, keepdims=True) for m in members]
    text = rng.standard_normal((n, 5)).astype(np.float32)
    cfg = FusionConfig(out_dim=3, epochs=3, lr=5e-2, batch_size=8, structure_lambda=2.0, warmup_steps=3, tau=0.2,
                       seed=seed)
    got = fit_fusion(members, cfg, text=text, progress=False)

    z = np.concatenate([m / np.sqrt(2) for m in members], axis=1).astype(np.float32)
    ref = FusionProjector(*pca_init(z, 3, seed), *pca_init(text, 3, seed + 1))
    opt = torch.optim.AdamW(ref.parameters(), lr=5e-2, weight_decay=0.0)
    zt, tt = torch.tensor(z), torch.tensor(text)
    losses, step = [], 0
    for epoch in range(3):
        order = np.random.default_rng([seed, epoch]).permutation(n)
        for start in (0, 8):  # 20 rows -> two full batches of 8
            idx = torch.as_tensor(order[start:start + 8])
            y = ref(zt[idx])
            contrast = clip_loss(y, ref.encode_text(tt[idx]), ref.logit_scale.exp().clamp(max=100))
            struct = structure_loss([torch.tensor(m)[idx] for m in members], y, 0.2)
            loss = contrast + 2.0 * min(1.0, step / 3) * struct
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            step += 1
    assert [(r["step"], r["epoch"]) for r in got.history] == [(s, s // 2) for s in range(6)]
    np.testing.assert_allclose([r["loss"] for r in got.history], losses, rtol=1e-5)
    np.testing.assert_allclose([r["lambda"] for r in got.history], [2.0 * min(1, s / 3) for s in range(6)])
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(got.projector.state_dict()[key], value, rtol=1e-4, atol=1e-6)


def test_member_dropout_view_depends_on_row_not_batch(rng):
    """The view of a row is keyed by (seed, step, view, row): computing a batch in two slices (as two
    DDP ranks do) gives the same rows; about p of the member blocks are dropped; rows stay unit norm."""
    from skinmap.embed.fusion import member_dropout_view

    n, widths = 400, (3, 5, 2)
    blocks = [torch.tensor(rng.standard_normal((n, w)), dtype=torch.float32) for w in widths]
    blocks = [b / b.norm(dim=1, keepdim=True) for b in blocks]  # unit-norm member blocks
    rows = torch.arange(100, 100 + n)
    full = member_dropout_view(blocks, 0.3, rows, seed=1, step=5, view=0)
    halves = [member_dropout_view([b[s] for b in blocks], 0.3, rows[s], seed=1, step=5, view=0)
              for s in (slice(0, n, 2), slice(1, n, 2))]
    torch.testing.assert_close(full[0::2], halves[0])
    torch.testing.assert_close(full[1::2], halves[1])
    np.testing.assert_allclose(full.norm(dim=1).numpy(), 1.0, rtol=1e-5)
    bounds = np.cumsum((0,) + widths)
    dropped = np.stack([(full[:, a:b] == 0).all(dim=1).numpy() for a, b in zip(bounds[:-1], bounds[1:])], axis=1)
    assert not dropped.all(axis=1).any()  # never every member
    assert abs(dropped.mean() - 0.3) < 0.05  # ~p (slightly less: an all-dropped row keeps member 0)
    other = member_dropout_view(blocks, 0.3, rows, seed=1, step=6, view=0)
    assert not torch.equal(other, full)  # a new draw each step


def test_concat_pca_is_the_pca_of_the_fit_rows(rng):
    from skinmap.embed.fusion import concat_pca

    a = rng.standard_normal((60, 4)); a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = rng.standard_normal((60, 3)); b /= np.linalg.norm(b, axis=1, keepdims=True)
    fit = np.arange(60) < 40
    y = concat_pca([a, b], 3, fit_rows=fit)
    z = np.concatenate([a, b], axis=1) / np.sqrt(2)
    mu = z[fit].mean(axis=0)
    _, _, vt = np.linalg.svd(z[fit] - mu, full_matrices=False)
    ref = (z - mu) @ vt[:3].T
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert y.shape == (60, 3)
    signs = np.sign(np.sum(y * ref, axis=0))
    assert np.allclose(y, ref * signs, atol=1e-5)  # the same axes, up to the sign of each
