"""CLIP and SigLIP members trained from scratch on (image, caption) pairs with open_clip.

The model is ``open_clip.CLIP`` built from a config in code (no pretrained weights, nothing
downloaded): a ViT image tower and a causal text transformer over open_clip's BPE tokenizer (77
tokens; its vocabulary ships in the wheel). The objective is open_clip's own loss:
``ClipLoss`` (softmax InfoNCE, Radford et al. 2021) for ``kind="clip"`` and ``SigLipLoss``
(pairwise sigmoid, Zhai et al. 2023; logit bias initialised at -10) for ``kind="siglip"``.
Under DDP the losses gather features from every rank (global batch negatives).
The paper's members: ViT-L/14 and ViT-B/32 at 224 px (see ``params/full/embedding.yml``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightning as L
import numpy as np
import torch

from skinmap.embed.members.base import MemberConfig, OptimConfig, configure_adamw, imagenet_normalize

__all__ = ["ContrastiveConfig", "ContrastiveMember", "zero_shot_scores"]


@dataclass(frozen=True)
class ContrastiveConfig(MemberConfig):
    image_size: int = 32
    patch_size: int = 8
    vision_width: int = 64
    vision_layers: int = 2
    vision_head_width: int = 32
    text_width: int = 64
    text_layers: int = 2
    text_heads: int = 2
    context_length: int = 77
    embed_dim: int = 64
    optim: OptimConfig = field(default_factory=OptimConfig)


class ContrastiveMember(L.LightningModule):
    config_class = ContrastiveConfig

    def __init__(self, name: str, config: ContrastiveConfig, kind: str = "clip"):
        super().__init__()
        import open_clip
        from open_clip.model import CLIPTextCfg, CLIPVisionCfg

        if kind not in ("clip", "siglip"):
            raise ValueError(f"kind must be 'clip' or 'siglip', got {kind!r}")
        self.kind, self.member_name, self.config = kind, name, config
        vision = CLIPVisionCfg(layers=config.vision_layers, width=config.vision_width,
                               head_width=config.vision_head_width, patch_size=config.patch_size,
                               image_size=config.image_size)
        text = CLIPTextCfg(context_length=config.context_length, vocab_size=49408, width=config.text_width,
                           heads=config.text_heads, layers=config.text_layers)
        self.model = open_clip.CLIP(config.embed_dim, vision, text,
                                    init_logit_scale=float(np.log(10)) if kind == "siglip" else float(np.log(1 / 0.07)),
                                    init_logit_bias=-10.0 if kind == "siglip" else None)
        self.tokenizer = open_clip.SimpleTokenizer(context_length=config.context_length)
        self.embed_dim = config.embed_dim
        self.loss_fn = None

    def setup(self, stage: str) -> None:
        from open_clip import ClipLoss
        from open_clip.loss import SigLipLoss

        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self._trainer is not None else (1, 0)
        if self.kind == "clip":
            self.loss_fn = ClipLoss(local_loss=False, gather_with_grad=True, rank=rank, world_size=world)
        else:
            self.loss_fn = SigLipLoss(rank=rank, world_size=world)

    def encode_images(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x, normalize=True)

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(texts).to(self.device), normalize=True)

    def training_step(self, batch, batch_idx):
        img = self.model.encode_image(imagenet_normalize(batch["pixels"]), normalize=True)
        txt = self.model.encode_text(batch["tokens"], normalize=True)
        scale = self.model.logit_scale.exp().clamp(max=100)
        if self.kind == "clip":
            loss = self.loss_fn(img, txt, scale)
        else:
            loss = self.loss_fn(img, txt, scale, self.model.logit_bias)
        self.log("train/loss", loss, prog_bar=True, batch_size=img.shape[0])
        return loss

    def configure_optimizers(self):
        return configure_adamw(self, self.config.optim)


@torch.no_grad()
def zero_shot_scores(module: ContrastiveMember, image_vectors: np.ndarray, labels: list[str],
                     template: str = "a photo of {}") -> np.ndarray:
    """Cosine similarity (n, n_labels) of image vectors to prompts ``template.format(label)``."""
    module.eval()
    text = module.encode_texts([template.format(label) for label in labels]).float().cpu().numpy()
    return np.asarray(image_vectors, np.float32) @ text.T
