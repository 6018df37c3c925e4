"""Fusing the members into one space: PCA-initialised linear projector, contrastive loss and the
STRUCTURE regulariser (paper section 2; Groeger et al., "STRUCTURE", 2025).

Inputs are the members' l2-normalised vectors ``X_m`` (n, d_m). They are concatenated with weight
``1/sqrt(M)`` each (every member contributes equally and the concatenation has unit norm),
``z = [X_1, ..., X_M] / sqrt(M)``, and projected by one linear map ``y = normalize(W (z - mu))``.
``W`` starts at the top principal axes of ``z`` (so step 0 is PCA) and is trained with

$$ \\mathcal{L} = \\mathcal{L}_{\\mathrm{CLIP}}(y, t) + \\lambda_s \\frac{1}{M} \\sum_m
   \\frac{1}{B} \\sum_i \\mathrm{JSD}\\big(P^{(m)}_{i\\cdot} \\,\\|\\, Q_{i\\cdot}\\big), \\qquad
   \\lambda_s = \\lambda \\min(1, s / s_{\\mathrm{warm}}) $$

where within a batch ``P^(m)_ij = softmax_j(x_i^m . x_j^m / tau)`` and ``Q_ij = softmax_j(y_i . y_j /
tau)`` over ``j != i`` (the self-similarity is excluded: it carries no neighbourhood information), and
``L_CLIP`` is the symmetric InfoNCE between the image projection ``y`` and a projection ``t`` of the
caption (MiniLM) vectors. Without captions the positive pair is two *member-dropout views* of the same
image (each view drops whole members at random), which asks the projection to agree across members.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "concat_members", "pca_init", "softmax_similarity", "structure_loss", "clip_loss",
    "FusionConfig", "FusionProjector", "fit_fusion", "lambda_schedule",
]


def concat_members(members: list[np.ndarray]) -> np.ndarray:
    """Concatenate l2-normalised member matrices with weight 1/sqrt(M) (unit-norm rows)."""
    if not members:
        raise ValueError("no members to fuse")
    n = members[0].shape[0]
    for m in members:
        if m.shape[0] != n:
            raise ValueError(f"members have different row counts: {[x.shape[0] for x in members]}")
        if not np.isfinite(m).all():
            raise ValueError("a member matrix contains NaN/inf rows; drop skipped images first")
    scale = 1.0 / math.sqrt(len(members))
    return np.concatenate([np.asarray(m, np.float32) * scale for m in members], axis=1)


def pca_init(z: np.ndarray, out_dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (out_dim, D) weight whose rows are the top principal axes of ``z``.

    When ``out_dim`` exceeds the rank available (min(n - 1, D)) the remaining rows are random
    unit directions orthogonal to the principal ones (so the map stays injective on the data).
    """
    z = np.asarray(z, np.float64)
    mu = z.mean(axis=0)
    centred = z - mu
    n_comp = min(out_dim, *centred.shape)
    if n_comp + 10 < min(centred.shape):  # randomized SVD: O(n D k) instead of O(n D min(n, D))
        from sklearn.utils.extmath import randomized_svd

        _, s, vt = randomized_svd(centred, n_comp, n_oversamples=10, n_iter=6, random_state=seed)
    else:
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
    rank = int((s > s[0] * 1e-6).sum()) if s.size and s[0] > 0 else 0
    k = min(out_dim, rank)
    weight = np.zeros((out_dim, z.shape[1]))
    weight[:k] = vt[:k]
    if out_dim > k:
        rng = np.random.default_rng(seed)
        extra = rng.standard_normal((out_dim - k, z.shape[1]))
        extra -= extra @ vt[:k].T @ vt[:k]
        q, _ = np.linalg.qr(extra.T)
        weight[k:] = q.T[: out_dim - k] * 1e-2  # small: PCA dominates at step 0
    return mu.astype(np.float32), weight.astype(np.float32)


def softmax_similarity(x: torch.Tensor, tau: float) -> torch.Tensor:
    """Row-wise softmax of cosine similarities / tau over the *other* rows of the batch."""
    x = F.normalize(x, dim=-1)
    logits = x @ x.T / tau
    eye = torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
    return torch.softmax(logits.masked_fill(eye, float("-inf")), dim=-1)


def _jsd_rows(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    m = 0.5 * (p + q)
    kl = lambda a, b: torch.where(a > 0, a * (torch.log(a.clamp_min(1e-30)) - torch.log(b.clamp_min(1e-30))), 0.0).sum(-1)
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def structure_loss(member_batches: list[torch.Tensor], projected: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """STRUCTURE regulariser: mean over members of the batch-mean row JSD (natural log)."""
    q = softmax_similarity(projected, tau)
    return torch.stack([_jsd_rows(softmax_similarity(x, tau), q).mean() for x in member_batches]).mean()


def clip_loss(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE between matched rows of ``a`` and ``b`` (CLIP)."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = logit_scale * a @ b.T
    labels = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def lambda_schedule(step: int, lam: float, warmup_steps: int) -> float:
    """lambda_s = lambda * min(1, s / warmup) (linear ramp)."""
    return lam if warmup_steps <= 0 else lam * min(1.0, step / warmup_steps)


@dataclass(frozen=True)
class FusionConfig:
    out_dim: int = 1024
    epochs: int = 20
    lr: float = 5e-4
    batch_size: int = 512
    structure_lambda: float = 10.0
    warmup_steps: int = 500
    tau: float = 0.1
    member_dropout: float = 0.3
    seed: int = 0


class FusionProjector(nn.Module):
    """``y = normalize(W (z - mu))``; the optional text head maps captions into the same space."""

    def __init__(self, mu: np.ndarray, weight: np.ndarray, text_mu: np.ndarray | None = None,
                 text_weight: np.ndarray | None = None):
        super().__init__()
        self.register_buffer("mu", torch.as_tensor(mu))
        self.image = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        with torch.no_grad():
            self.image.weight.copy_(torch.as_tensor(weight))
        self.text = None
        if text_weight is not None:
            self.register_buffer("text_mu", torch.as_tensor(text_mu))
            self.text = nn.Linear(text_weight.shape[1], text_weight.shape[0], bias=False)
            with torch.no_grad():
                self.text.weight.copy_(torch.as_tensor(text_weight))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image(z - self.mu), dim=-1)

    def encode_text(self, t: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(t - self.text_mu), dim=-1)

    @torch.no_grad()
    def transform(self, z: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        self.eval()
        out = [self(torch.as_tensor(z[i:i + batch_size], dtype=torch.float32)).numpy()
               for i in range(0, len(z), batch_size)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.image.out_features), np.float32)


@dataclass
class FusionResult:
    projector: FusionProjector
    history: list[dict] = field(default_factory=list)


def _member_dropout_view(blocks: list[torch.Tensor], p: float, gen: torch.Generator) -> torch.Tensor:
    m = len(blocks)
    keep = (torch.rand(blocks[0].shape[0], m, generator=gen) >= p).float()
    keep[keep.sum(1) == 0, 0] = 1.0  # never drop every member
    scale = math.sqrt(m) / keep.sum(1, keepdim=True).sqrt()  # renormalise the kept blocks
    return torch.cat([b * keep[:, i:i + 1] for i, b in enumerate(blocks)], dim=1) * scale / math.sqrt(m)


def fit_fusion(members: list[np.ndarray], config: FusionConfig, *, text: np.ndarray | None = None,
               progress: bool = True) -> FusionResult:
    """Train the projector (PCA init, AdamW, contrastive + ramped STRUCTURE); see module doc."""
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    z = concat_members(members)
    n = z.shape[0]
    out_dim = config.out_dim
    mu, weight = pca_init(z, out_dim, config.seed)
    text_mu = text_weight = None
    if text is not None:
        text = np.asarray(text, np.float32)
        if text.shape[0] != n or not np.isfinite(text).all():
            raise ValueError("text vectors must be finite and have one row per image")
        text_mu, text_weight = pca_init(text, out_dim, config.seed + 1)
    model = FusionProjector(mu, weight, text_mu, text_weight)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    zt = torch.as_tensor(z)
    tt = torch.as_tensor(text) if text is not None else None
    scale = math.sqrt(len(members))
    bounds = np.cumsum([0] + [m.shape[1] for m in members])
    history: list[dict] = []
    step = 0
    batch = min(config.batch_size, n)
    for epoch in tqdm(range(config.epochs), desc="fusion", disable=not progress, leave=False):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n - batch + 1 if n >= batch else 1, batch):
            idx = order[start:start + batch]
            if idx.numel() < 2:
                continue
            zb = zt[idx]
            blocks = [zb[:, bounds[i]:bounds[i + 1]] * scale for i in range(len(members))]
            y = model(zb)
            if tt is not None:
                contrast = clip_loss(y, model.encode_text(tt[idx]), model.logit_scale.exp().clamp(max=100))
            else:
                v1 = model(_member_dropout_view(blocks, config.member_dropout, gen))
                v2 = model(_member_dropout_view(blocks, config.member_dropout, gen))
                contrast = clip_loss(v1, v2, model.logit_scale.exp().clamp(max=100))
            struct = structure_loss(blocks, y, config.tau)
            lam = lambda_schedule(step, config.structure_lambda, config.warmup_steps)
            loss = contrast + lam * struct
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            history.append({"step": step, "epoch": epoch, "loss": loss.item(), "contrastive": contrast.item(),
                            "structure": struct.item(), "lambda": lam})
            step += 1
    model.eval()
    return FusionResult(model, history)
