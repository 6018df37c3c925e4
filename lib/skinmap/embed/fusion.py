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

Training runs through Lightning (:func:`fit_fusion`), like the members: one CPU, one GPU, or DDP over
many devices. Both losses are *batch-level*, so DDP is made to compute the loss of the global batch:
the batch order is a seeded permutation per epoch (the same on every rank), each rank projects its
slice of the global batch, the projections are all-gathered with gradients, and the member-dropout
draws are keyed by (seed, step, view, row, member) rather than by a process's generator. A DDP run
then reproduces the single-process weights to float tolerance (tested in ``tests/embed/test_ddp.py``).
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
    "FusionConfig", "FusionProjector", "FusionResult", "fit_fusion", "lambda_schedule", "build_projector",
    "member_dropout_view", "counter_uniform", "epoch_order", "GlobalBatchSampler", "concat_pca",
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


def concat_pca(members: list[np.ndarray], out_dim: int, fit_rows: np.ndarray | None = None,
               seed: int = 0) -> np.ndarray:
    """The baseline fusion: PCA of the concatenated members (:func:`concat_members`) at ``out_dim``.

    The principal axes and the mean are fitted on ``fit_rows`` (bool, one per row; default every row)
    and every row is projected and l2-normalised, ``y = normalize(W (z - mu))``: the projector of
    :func:`fit_fusion` at step 0, before any contrastive or STRUCTURE training.

    Returns
    -------
    ndarray of shape (n, out_dim), float32
    """
    z = concat_members(members)
    fit = z if fit_rows is None else z[np.asarray(fit_rows, dtype=bool)]
    mu, weight = pca_init(fit, out_dim, seed)
    y = (z - mu) @ weight.T
    return (y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)).astype(np.float32)


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
    status: str = "trained"  # "cached" when a training cache supplied the weights (see pipeline)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # uint64 arithmetic is meant to wrap
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


def counter_uniform(*keys) -> np.ndarray:
    """Uniforms in [0, 1) that are a pure function of integer keys (broadcast together).

    A counter-based generator (splitmix64 of the chained keys): the draw for (seed, step, view,
    row, member) does not depend on which process computes it or in which batch slice, which a
    stateful ``torch.Generator`` consumed batch by batch cannot offer under DDP.
    """
    arrays = [np.asarray(k, dtype=np.int64).astype(np.uint64) for k in keys]
    h = np.zeros(np.broadcast_shapes(*(a.shape for a in arrays)), np.uint64)
    for a in arrays:
        h = _splitmix64(h ^ a)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def member_dropout_view(blocks: list[torch.Tensor], p: float, rows: torch.Tensor, *, seed: int, step: int,
                        view: int) -> torch.Tensor:
    """One member-dropout view of a batch: each row drops whole members with probability ``p``.

    ``blocks`` are the unit-norm member blocks of the rows ``rows`` (global dataset indices); which
    members a row keeps is drawn from :func:`counter_uniform` keyed by (seed, step, view, row, member),
    so the view of a row is the same whatever the world size. At least one member is always kept,
    and the kept blocks are rescaled so that the view has unit norm like ``z``.
    """
    m = len(blocks)
    u = counter_uniform(seed, step, view, rows.detach().cpu().numpy()[:, None], np.arange(m)[None, :])
    keep = torch.as_tensor(u >= p, dtype=blocks[0].dtype, device=blocks[0].device)
    keep[keep.sum(1) == 0, 0] = 1.0  # never drop every member
    scale = 1.0 / keep.sum(1, keepdim=True).sqrt()  # renormalise the kept blocks
    return torch.cat([b * keep[:, i:i + 1] for i, b in enumerate(blocks)], dim=1) * scale


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The row order of one epoch: a permutation seeded by (seed, epoch), the same on every rank."""
    return np.random.default_rng([seed, epoch]).permutation(n)


class GlobalBatchSampler(torch.utils.data.Sampler):
    """Rank ``rank``'s rows of every *global* batch of an epoch, in order.

    An epoch is :func:`epoch_order` cut into ``n // global_batch`` global batches (a last partial
    batch is dropped, as a batch-level loss on a handful of rows is noise). Rank ``r`` of ``W``
    takes positions ``r, r + W, ...`` of each, so a DataLoader with batch size ``global_batch / W``
    over this sampler hands every rank its slice of the same global batch. Lightning calls
    :meth:`set_epoch` (as for a ``DistributedSampler``) at the start of every epoch.
    """

    def __init__(self, n: int, global_batch: int, seed: int, rank: int = 0, world_size: int = 1):
        if global_batch % world_size:
            raise ValueError(f"global batch {global_batch} is not divisible by world size {world_size}")
        self.n, self.global_batch, self.seed = n, global_batch, seed
        self.rank, self.world_size, self.epoch = rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return (self.n // self.global_batch) * (self.global_batch // self.world_size)

    def __iter__(self):
        order = epoch_order(self.n, self.seed, self.epoch)
        for start in range(0, self.n - self.global_batch + 1, self.global_batch):
            yield from order[start:start + self.global_batch][self.rank::self.world_size].tolist()


class _Rows(torch.utils.data.Dataset):
    """Rows of ``z`` (and captions ``text``) with their global index (keys the dropout draws)."""

    def __init__(self, z: torch.Tensor, text: torch.Tensor | None):
        self.z, self.text = z, text

    def __len__(self) -> int:
        return int(self.z.shape[0])

    def __getitem__(self, i: int) -> dict:
        item = {"index": i, "z": self.z[i]}
        if self.text is not None:
            item["text"] = self.text[i]
        return item


def _lightning_module_class():
    import lightning as L

    class FusionModule(L.LightningModule):
        """Trains a :class:`FusionProjector` with the module doc's loss on *global* batches.

        Under DDP every rank projects only its slice of the global batch; the projections are
        gathered *with gradients* (``all_gather(..., sync_grads=True)``) and restored to the global
        batch order, and every rank evaluates the loss on the whole global batch (InfoNCE and the
        STRUCTURE JSD are batch-level: on per-rank sub-batches they would be different losses).
        The gather's backward sums the identical per-rank losses' gradients (W x the local share)
        and DDP averages over W ranks, so the optimiser sees exactly the single-process gradient.
        """

        def __init__(self, projector: FusionProjector, config: FusionConfig, widths: list[int]):
            super().__init__()
            self.projector = projector
            self.config = config
            self.bounds = np.cumsum([0, *widths]).tolist()
            self.history: list[dict] = []

        def _global(self, t: torch.Tensor, grad: bool) -> torch.Tensor:
            if self.trainer.world_size == 1:
                return t
            gathered = self.all_gather(t, sync_grads=grad)  # (W, b, ...): rank r holds positions r, r+W, ...
            return gathered.transpose(0, 1).reshape(-1, *t.shape[1:])

        def _blocks(self, z: torch.Tensor) -> list[torch.Tensor]:
            scale = math.sqrt(len(self.bounds) - 1)  # undo the 1/sqrt(M) of concat_members: unit-norm blocks
            return [z[:, a:b] * scale for a, b in zip(self.bounds[:-1], self.bounds[1:])]

        def training_step(self, batch, batch_idx):
            cfg, proj, step = self.config, self.projector, self.global_step
            y = self._global(proj(batch["z"]), grad=True)
            logit_scale = proj.logit_scale.exp().clamp(max=100)
            if "text" in batch:
                contrast = clip_loss(y, self._global(proj.encode_text(batch["text"]), grad=True), logit_scale)
            else:
                local = self._blocks(batch["z"])
                views = [self._global(proj(member_dropout_view(local, cfg.member_dropout, batch["index"],
                                                               seed=cfg.seed, step=step, view=v)), grad=True)
                         for v in (0, 1)]
                contrast = clip_loss(views[0], views[1], logit_scale)
            struct = structure_loss(self._blocks(self._global(batch["z"], grad=False)), y, cfg.tau)
            lam = lambda_schedule(step, cfg.structure_lambda, cfg.warmup_steps)
            loss = contrast + lam * struct
            self.history.append({"step": step, "epoch": self.current_epoch, "loss": loss.item(),
                                 "contrastive": contrast.item(), "structure": struct.item(), "lambda": lam})
            return loss

        def configure_optimizers(self):
            return torch.optim.AdamW(self.projector.parameters(), lr=self.config.lr, weight_decay=0.0)

    return FusionModule


def _epoch_progress(total: int, enabled: bool):
    import lightning as L
    from tqdm.auto import tqdm

    class EpochBar(L.Callback):
        def on_train_start(self, trainer, pl_module):
            self.bar = tqdm(total=total, desc="fusion", leave=False, disable=not enabled or trainer.global_rank != 0)

        def on_train_epoch_end(self, trainer, pl_module):
            self.bar.update(1)

        def on_train_end(self, trainer, pl_module):
            self.bar.close()

    return EpochBar()


def build_projector(members: list[np.ndarray], config: FusionConfig, text: np.ndarray | None = None) -> FusionProjector:
    """The untrained projector: PCA of the concatenated members (and of the captions, if given)."""
    z = concat_members(members)
    mu, weight = pca_init(z, config.out_dim, config.seed)
    text_mu = text_weight = None
    if text is not None:
        text = np.asarray(text, np.float32)
        if text.shape[0] != z.shape[0] or not np.isfinite(text).all():
            raise ValueError("text vectors must be finite and have one row per image")
        text_mu, text_weight = pca_init(text, config.out_dim, config.seed + 1)
    return FusionProjector(mu, weight, text_mu, text_weight)


def fit_fusion(members: list[np.ndarray], config: FusionConfig, *, text: np.ndarray | None = None,
               progress: bool = True, trainer_kwargs: dict | None = None) -> FusionResult:
    """Train the projector (PCA init, AdamW, contrastive + ramped STRUCTURE) with Lightning.

    ``trainer_kwargs`` sets the hardware (``accelerator``, ``devices``, ``strategy``, ``num_nodes``;
    default one CPU), as for the members. Every epoch is a seeded permutation cut into global
    batches of ``min(batch_size, n)`` rows (rounded down to a multiple of the world size); the loss is
    computed on the global batch whatever the world size, so a DDP run reproduces a single-process
    run to float tolerance (``tests/embed/test_ddp.py``). With fewer than two rows or zero epochs the
    PCA projector is returned untrained.
    """
    import logging
    import warnings

    import lightning as L

    z = concat_members(members)
    n = z.shape[0]
    projector = build_projector(members, config, text)
    if n < 2 or config.epochs <= 0:
        return FusionResult(projector.eval(), [])
    module = _lightning_module_class()(projector, config, [m.shape[1] for m in members])
    trainer_kwargs = dict(trainer_kwargs or {})
    trainer_kwargs.pop("deterministic_order", None)  # the fusion's batches are always rank-independent
    kwargs = dict(accelerator="cpu", devices=1, max_epochs=config.epochs, logger=False, enable_checkpointing=False,
                  enable_model_summary=False, enable_progress_bar=False, gradient_clip_val=1.0,
                  gradient_clip_algorithm="norm", precision="32-true", num_sanity_val_steps=0,
                  use_distributed_sampler=False)  # our sampler already shards the global batches
    kwargs.update(trainer_kwargs)
    for logger_name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(logger_name).setLevel(logging.WARNING)  # hardware banners: noise in a chapter
    trainer = L.Trainer(callbacks=[_epoch_progress(config.epochs, progress)], **kwargs)
    world = trainer.world_size
    per_rank = min(config.batch_size, n) // world
    if per_rank < 1:
        raise ValueError(f"fusion batch {min(config.batch_size, n)} is smaller than the world size {world}")
    sampler = GlobalBatchSampler(n, per_rank * world, config.seed, trainer.global_rank, world)
    data = _Rows(torch.as_tensor(z), None if text is None else torch.as_tensor(np.asarray(text, np.float32)))
    loader = torch.utils.data.DataLoader(data, batch_size=per_rank, sampler=sampler, shuffle=False, num_workers=0)
    with warnings.catch_warnings():
        # the rows are in memory: worker processes would only add start-up cost
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(module, loader)
    projector = module.projector.cpu().eval()
    return FusionResult(projector, module.history)
