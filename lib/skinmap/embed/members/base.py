"""What every trainable objective shares: optimiser defaults and schedule, and pixel normalisation.

Paper defaults (section 2): AdamW, lr 5e-6, weight decay 0.01, 10% linear warm-up then linear
decay, grad-norm clip 1.0, 77 text tokens, FP16 (``16-mixed`` where a CUDA device exists; 32-bit
on CPU, where half precision is slower and bf16 numerics would differ across machines).

This module is the bottom of ``members/``: the objectives (``clip``, ``dino``, ``ibot``, ``mae``)
import it, the kind registry (:mod:`~skinmap.embed.members.registry`) imports the objectives, and
the training loop (:mod:`~skinmap.embed.members.training`) imports the registry; nothing imports
upwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "MemberConfig", "OptimConfig", "configure_adamw", "default_precision", "imagenet_normalize",
    "warmup_linear_decay",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser, schedule and loop length of one member (paper section 2 defaults)."""

    lr: float = 5e-6
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    grad_clip: float = 1.0
    batch_size: int = 32
    max_steps: int = 1000
    seed: int = 0


class MemberConfig:
    """Mixin of every member's frozen config dataclass: ``optim`` may be given as a dict.

    A checkpoint stores its config as plain data (``asdict``), so rebuilding a member passes
    ``optim`` as a dict; it becomes an :class:`OptimConfig` here. The mixin has no fields, so the
    config's fields (and their order in ``asdict``) are the dataclass's own.
    """

    def __post_init__(self):
        if isinstance(self.optim, dict):
            object.__setattr__(self, "optim", OptimConfig(**self.optim))


def warmup_linear_decay(step: int, total: int, warmup_fraction: float) -> float:
    """LR multiplier: linear 0 -> 1 over the first ``warmup_fraction`` of steps, then linear -> 0."""
    warm = max(1, int(round(total * warmup_fraction)))
    if step < warm:
        return (step + 1) / warm
    return max(0.0, (total - step) / max(1, total - warm))


def configure_adamw(module: torch.nn.Module, cfg: OptimConfig) -> dict:
    """AdamW with weight decay on matrices only, and the per-step warm-up/decay schedule.

    Biases, norms, logit scales, tokens and positional embeddings are not decayed (decaying them
    shrinks parameters that set scales, not capacities).
    """
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "logit" in name or "token" in name or "pos" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: warmup_linear_decay(s, cfg.max_steps, cfg.warmup_fraction))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def default_precision() -> str:
    """``16-mixed`` where a CUDA device exists, else ``32-true`` (see the module doc)."""
    return "16-mixed" if torch.cuda.is_available() else "32-true"


def imagenet_normalize(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) normalised with ImageNet statistics."""
    x = pixels.permute(0, 3, 1, 2).float().div(255.0)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std
