"""DINO member: self-distillation without labels (Caron et al. 2021), small ViT from timm.

A student and a teacher ViT (same architecture) each end in a projection head with ``K``
prototypes. Multi-crop: two global crops and ``n_local`` local crops per image; the teacher sees
only the global crops. For teacher output ``t`` and student output ``s``

$$ P_t = \\mathrm{softmax}((g_t - c)/\\tau_t), \\quad P_s = \\mathrm{softmax}(g_s/\\tau_s), \\quad
   \\mathcal{L} = \\frac{1}{|pairs|} \\sum_{v \\ne u} -P_t^{(u)} \\cdot \\log P_s^{(v)} $$

with centring ``c <- m c + (1 - m) mean(g_t)`` (prevents collapse to one prototype) and sharpening
``tau_t < tau_s``; the teacher is an exponential moving average of the student (momentum
``m_t`` raised from ``ema_start`` to 1 along a cosine). The member's image vector is the teacher's
CLS token. The paper's member: ViT-B/16 (``params/full``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from skinmap.embed.members.base import MemberConfig, OptimConfig, configure_adamw, imagenet_normalize

__all__ = ["SSLConfig", "DINOMember", "DINOHead", "dino_loss", "multi_crop", "build_vit"]


@dataclass(frozen=True)
class SSLConfig(MemberConfig):
    image_size: int = 32
    local_size: int = 16
    patch_size: int = 8
    embed_dim: int = 64
    depth: int = 2
    num_heads: int = 2
    n_local: int = 2
    out_dim: int = 256            # prototypes K
    head_hidden: int = 128
    head_bottleneck: int = 64
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    center_momentum: float = 0.9
    ema_start: float = 0.996
    mask_ratio: float = 0.3       # iBOT: fraction of global-crop patches masked for the student
    patch_loss_weight: float = 1.0
    optim: OptimConfig = field(default_factory=OptimConfig)


def build_vit(cfg) -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=cfg.image_size, patch_size=cfg.patch_size, embed_dim=cfg.embed_dim,
                             depth=cfg.depth, num_heads=cfg.num_heads, num_classes=0, dynamic_img_size=True)


class DINOHead(nn.Module):
    """MLP -> l2-normalised bottleneck -> weight-normalised prototypes (DINO's head)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, bottleneck: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, bottleneck))
        self.last = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck, out_dim, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(F.normalize(self.mlp(x), dim=-1))


def dino_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], center: torch.Tensor,
              student_temp: float, teacher_temp: float) -> torch.Tensor:
    """Cross-entropy of centred, sharpened teacher globals vs student views (skip same view)."""
    t_probs = [torch.softmax((t - center) / teacher_temp, dim=-1).detach() for t in teacher]
    s_logp = [torch.log_softmax(s / student_temp, dim=-1) for s in student]
    total, pairs = 0.0, 0
    for iq, q in enumerate(t_probs):
        for v, lp in enumerate(s_logp):
            if v == iq:
                continue
            total = total + (-(q * lp).sum(-1)).mean()
            pairs += 1
    return total / pairs


def _random_resized_crop(x: torch.Tensor, size: int, scale: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    """Per-sample random resized crop + horizontal flip of a float batch (B, C, H, W)."""
    b, _, h, w = x.shape
    out = []
    for i in range(b):
        area = h * w * float(torch.empty(1).uniform_(*scale, generator=gen))
        ratio = math.exp(float(torch.empty(1).uniform_(math.log(3 / 4), math.log(4 / 3), generator=gen)))
        ch = int(round(min(h, max(2, math.sqrt(area / ratio)))))
        cw = int(round(min(w, max(2, math.sqrt(area * ratio)))))
        top = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
        crop = x[i:i + 1, :, top:top + ch, left:left + cw]
        crop = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        if float(torch.rand(1, generator=gen)) < 0.5:
            crop = crop.flip(-1)
        out.append(crop)
    return torch.cat(out)


def multi_crop(x: torch.Tensor, cfg: SSLConfig, gen: torch.Generator) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Two global crops (scale 0.4-1) and ``n_local`` local crops (scale 0.05-0.4)."""
    globals_ = [_random_resized_crop(x, cfg.image_size, (0.4, 1.0), gen) for _ in range(2)]
    locals_ = [_random_resized_crop(x, cfg.local_size, (0.05, 0.4), gen) for _ in range(cfg.n_local)]
    return globals_, locals_


class DINOMember(L.LightningModule):
    config_class = SSLConfig

    def __init__(self, name: str, config: SSLConfig, kind: str = "dino"):
        super().__init__()
        self.kind, self.member_name, self.config = kind, name, config
        self.student = build_vit(config)
        self.student_head = DINOHead(config.embed_dim, config.out_dim, config.head_hidden, config.head_bottleneck)
        self.teacher = copy.deepcopy(self.student)
        self.teacher_head = copy.deepcopy(self.student_head)
        for p in list(self.teacher.parameters()) + list(self.teacher_head.parameters()):
            p.requires_grad_(False)
        self.register_buffer("center", torch.zeros(1, config.out_dim))
        self.embed_dim = config.embed_dim
        self._gen = torch.Generator().manual_seed(config.optim.seed)

    def encode_images(self, x: torch.Tensor) -> torch.Tensor:
        return self.teacher.forward_features(x)[:, 0]

    def _dino_terms(self, globals_, locals_):
        t_out = [self.teacher_head(self.teacher.forward_features(g)[:, 0]) for g in globals_]
        s_out = [self.student_head(self.student.forward_features(v)[:, 0]) for v in globals_ + locals_]
        loss = dino_loss(s_out, t_out, self.center, self.config.student_temp, self.config.teacher_temp)
        return loss, t_out

    @torch.no_grad()
    def _update_center(self, t_out: list[torch.Tensor]) -> None:
        batch_center = torch.cat(t_out).mean(0, keepdim=True)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(batch_center)
            batch_center /= torch.distributed.get_world_size()
        m = self.config.center_momentum
        self.center.mul_(m).add_(batch_center, alpha=1 - m)

    def training_step(self, batch, batch_idx):
        x = imagenet_normalize(batch["pixels"])
        globals_, locals_ = multi_crop(x, self.config, self._gen)
        loss, t_out = self._dino_terms(globals_, locals_)
        self._update_center(t_out)
        self.log("train/loss", loss, prog_bar=True, batch_size=x.shape[0])
        return loss

    @torch.no_grad()
    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        total = max(1, self.trainer.max_steps)
        m = 1 - (1 - self.config.ema_start) * (math.cos(math.pi * self.global_step / total) + 1) / 2
        for ps, pt in zip(list(self.student.parameters()) + list(self.student_head.parameters()),
                          list(self.teacher.parameters()) + list(self.teacher_head.parameters())):
            pt.mul_(m).add_(ps.detach(), alpha=1 - m)

    def configure_optimizers(self):
        params = nn.ModuleList([self.student, self.student_head])
        return configure_adamw(params, self.config.optim)
