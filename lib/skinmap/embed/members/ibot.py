"""iBOT member: DINO's CLS self-distillation plus masked image modelling with an online
tokenizer (Zhou et al. 2022).

The student sees the two global crops with a random ``mask_ratio`` of their patch embeddings
replaced by a learned mask token; the teacher sees them unmasked. Both heads are applied to every
patch token too, and the patch loss is the cross-entropy between the teacher's centred, sharpened
patch distribution and the student's, averaged over the *masked* patches only:

$$ \\mathcal{L} = \\mathcal{L}_{[CLS]} + w \\frac{1}{|M|}\\sum_{p \\in M}
   -P_t^{patch}(p) \\cdot \\log P_s^{patch}(p) $$

(the teacher's patch outputs are centred with their own running centre). The CLS term is DINO's
over global and local crops. The image vector is the teacher's CLS token.
"""

from __future__ import annotations

import torch

from skinmap.embed.members.base import configure_adamw, imagenet_normalize
from skinmap.embed.members.dino import DINOMember, SSLConfig, dino_loss, multi_crop

__all__ = ["IBOTMember", "masked_patch_loss"]


def masked_patch_loss(student_patches: torch.Tensor, teacher_patches: torch.Tensor, mask: torch.Tensor,
                      center: torch.Tensor, student_temp: float, teacher_temp: float) -> torch.Tensor:
    """Mean over masked patches of -softmax((t - c)/tau_t) . log_softmax(s/tau_s); (B, N, K) inputs."""
    q = torch.softmax((teacher_patches - center) / teacher_temp, dim=-1).detach()
    lp = torch.log_softmax(student_patches / student_temp, dim=-1)
    per_patch = -(q * lp).sum(-1)
    m = mask.float()
    return (per_patch * m).sum() / m.sum().clamp_min(1.0)


class IBOTMember(DINOMember):
    config_class = SSLConfig

    def __init__(self, name: str, config: SSLConfig, kind: str = "ibot"):
        super().__init__(name, config, kind)
        self.mask_token = torch.nn.Parameter(torch.zeros(1, 1, config.embed_dim))
        self.register_buffer("patch_center", torch.zeros(1, 1, config.out_dim))

    def _tokens(self, vit, x, mask=None):
        """All output tokens (B, 1+N, D); masked patch embeddings replaced by the mask token."""
        patches = vit.patch_embed(x)  # (B, h, w, D) with dynamic_img_size
        if mask is not None:
            b, h, w, d = patches.shape
            patches = torch.where(mask.view(b, h, w, 1), self.mask_token.view(1, 1, 1, d).to(patches.dtype), patches)
        tokens = vit._pos_embed(patches)
        tokens = vit.norm_pre(vit.patch_drop(tokens))
        tokens = vit.blocks(tokens)
        return vit.norm(tokens)

    def training_step(self, batch, batch_idx):
        cfg = self.config
        x = imagenet_normalize(batch["pixels"])
        globals_, locals_ = multi_crop(x, cfg, self._gen)
        n_patch = (cfg.image_size // cfg.patch_size) ** 2
        masks = [torch.rand(x.shape[0], n_patch, generator=self._gen) < cfg.mask_ratio for _ in globals_]
        masks = [m.to(x.device) for m in masks]
        t_tok = [self._tokens(self.teacher, g) for g in globals_]
        s_tok = [self._tokens(self.student, g, m) for g, m in zip(globals_, masks)]
        t_cls = [self.teacher_head(t[:, 0]) for t in t_tok]
        s_cls = [self.student_head(s[:, 0]) for s in s_tok]
        s_cls += [self.student_head(self.student.forward_features(v)[:, 0]) for v in locals_]
        cls_loss = dino_loss(s_cls, t_cls, self.center, cfg.student_temp, cfg.teacher_temp)
        t_patch = [self.teacher_head(t[:, 1:]) for t in t_tok]
        s_patch = [self.student_head(s[:, 1:]) for s in s_tok]
        patch_loss = sum(masked_patch_loss(sp, tp, m, self.patch_center, cfg.student_temp, cfg.teacher_temp)
                         for sp, tp, m in zip(s_patch, t_patch, masks)) / len(masks)
        loss = cls_loss + cfg.patch_loss_weight * patch_loss
        self._update_center(t_cls)
        with torch.no_grad():
            pc = torch.cat(t_patch).mean(dim=(0, 1), keepdim=True)
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.all_reduce(pc)
                pc /= torch.distributed.get_world_size()
            self.patch_center.mul_(cfg.center_momentum).add_(pc, alpha=1 - cfg.center_momentum)
        self.log_dict({"train/loss": loss, "train/cls": cls_loss, "train/patch": patch_loss},
                      prog_bar=True, batch_size=x.shape[0])
        return loss

    def configure_optimizers(self):
        return configure_adamw(_WithToken(self.student, self.student_head, self.mask_token), self.config.optim)


class _WithToken(torch.nn.Module):
    def __init__(self, student, head, token):
        super().__init__()
        self.student, self.head, self.token = student, head, token
