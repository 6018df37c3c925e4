"""Fusion: the STRUCTURE regulariser against numpy, PCA init against scikit-learn, and the planted-
structure test that the regulariser preserves member neighbourhoods."""

from __future__ import annotations

import numpy as np
import torch

from skinmap.embed.evaluation import knn_overlap
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
