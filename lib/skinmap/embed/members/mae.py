"""MAE member: masked autoencoding (He et al. 2022) with a small ViT encoder and decoder (timm blocks).

Each image is cut into ``N`` patches; a random ``mask_ratio`` of them is removed, the encoder sees
only the visible ones, a light decoder receives the encoded tokens plus mask tokens (all with
positional embeddings) and predicts the pixels of every patch. The loss is the mean squared error
on the *masked* patches against per-patch normalised pixels:

$$ \\mathcal{L} = \\frac{1}{|M|} \\sum_{p \\in M} \\frac{1}{P} \\| \\hat x_p - (x_p - \\mu_p)/\\sigma_p \\|^2 $$

The mask of a sample is drawn from a generator seeded by (seed, dataset index, epoch), not by
the process: a DDP run then sees exactly the masks a single process would (tested). The image
vector is the mean of the unmasked encoder's patch tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightning as L
import torch
from torch import nn

from skinmap.embed.members.base import MemberConfig, OptimConfig, configure_adamw, imagenet_normalize

__all__ = ["MAEConfig", "MAEMember", "patchify", "sample_masks"]


@dataclass(frozen=True)
class MAEConfig(MemberConfig):
    image_size: int = 32
    patch_size: int = 8
    embed_dim: int = 64
    depth: int = 2
    num_heads: int = 2
    decoder_dim: int = 32
    decoder_depth: int = 1
    decoder_heads: int = 2
    mask_ratio: float = 0.75
    optim: OptimConfig = field(default_factory=OptimConfig)


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, p*p*C), patches in row-major order."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def sample_masks(indices: torch.Tensor, n_patches: int, ratio: float, seed: int, epoch: int) -> torch.Tensor:
    """Per-sample permutation noise (B, N) from a generator keyed by (seed, index, epoch)."""
    rows = []
    for i in indices.tolist():
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(i) * 7919 + int(epoch))
        rows.append(torch.rand(n_patches, generator=g))
    return torch.stack(rows)


class MAEMember(L.LightningModule):
    config_class = MAEConfig

    def __init__(self, name: str, config: MAEConfig, kind: str = "mae"):
        super().__init__()
        from timm.layers import PatchEmbed
        from timm.models.vision_transformer import Block

        self.kind, self.member_name, self.config = kind, name, config
        c = config
        self.n_patches = (c.image_size // c.patch_size) ** 2
        self.patch_embed = PatchEmbed(c.image_size, c.patch_size, 3, c.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        self.pos_embed = nn.Parameter(torch.randn(1, self.n_patches + 1, c.embed_dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(c.embed_dim, c.num_heads) for _ in range(c.depth)])
        self.norm = nn.LayerNorm(c.embed_dim)
        self.decoder_embed = nn.Linear(c.embed_dim, c.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_dim))
        self.decoder_pos = nn.Parameter(torch.randn(1, self.n_patches + 1, c.decoder_dim) * 0.02)
        self.decoder_blocks = nn.Sequential(*[Block(c.decoder_dim, c.decoder_heads) for _ in range(c.decoder_depth)])
        self.decoder_norm = nn.LayerNorm(c.decoder_dim)
        self.decoder_pred = nn.Linear(c.decoder_dim, c.patch_size ** 2 * 3)
        self.embed_dim = c.embed_dim

    def _encode(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        tokens = self.patch_embed(x) + self.pos_embed[:, 1:]
        if keep is not None:
            tokens = torch.gather(tokens, 1, keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(tokens.shape[0], -1, -1)
        return self.norm(self.blocks(torch.cat([cls, tokens], dim=1)))

    def encode_images(self, x: torch.Tensor) -> torch.Tensor:
        return self._encode(x)[:, 1:].mean(dim=1)

    def reconstruction_loss(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """MAE loss for images ``x`` with per-sample permutation ``noise`` (B, N)."""
        n_keep = max(1, int(round(self.n_patches * (1 - self.config.mask_ratio))))
        order = torch.argsort(noise, dim=1)
        restore = torch.argsort(order, dim=1)
        keep = order[:, :n_keep]
        latent = self.decoder_embed(self._encode(x, keep))
        b = x.shape[0]
        mask_tokens = self.mask_token.expand(b, self.n_patches - n_keep, -1)
        seq = torch.cat([latent[:, 1:], mask_tokens], dim=1)
        seq = torch.gather(seq, 1, restore.unsqueeze(-1).expand(-1, -1, seq.shape[-1]))
        seq = torch.cat([latent[:, :1], seq], dim=1) + self.decoder_pos
        pred = self.decoder_pred(self.decoder_norm(self.decoder_blocks(seq)))[:, 1:]
        target = patchify(x, self.config.patch_size)
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        masked = torch.ones(b, self.n_patches, device=x.device)
        masked[:, :n_keep] = 0
        masked = torch.gather(masked, 1, restore)
        per_patch = ((pred - target) ** 2).mean(-1)
        return (per_patch * masked).sum() / masked.sum()

    def training_step(self, batch, batch_idx):
        x = imagenet_normalize(batch["pixels"])
        noise = sample_masks(batch["index"], self.n_patches, self.config.mask_ratio,
                             self.config.optim.seed, self.current_epoch).to(x.device)
        loss = self.reconstruction_loss(x, noise)
        self.log("train/loss", loss, prog_bar=True, batch_size=x.shape[0])
        return loss

    def configure_optimizers(self):
        return configure_adamw(self, self.config.optim)
