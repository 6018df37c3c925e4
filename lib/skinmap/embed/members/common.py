"""What the trainable members share: optimiser/schedule defaults, preprocessing, data, training.

Paper defaults (section 2): AdamW, lr 5e-6, weight decay 0.01, 10% linear warm-up then linear
decay, grad-norm clip 1.0, 77 text tokens, FP16 (``16-mixed`` where a CUDA device exists; 32-bit
on CPU, where half precision is slower and bf16 numerics would differ across machines).
"""

from __future__ import annotations

import logging

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from skinmap.embed.images import is_skipped, read_image
from skinmap.io import atomic_path, file_sha256

__all__ = [
    "OptimConfig", "warmup_linear_decay", "imagenet_normalize", "ImageTextDataset", "default_precision",
    "save_member", "TrainedImageEncoder", "train_member", "history_callback", "IMAGENET_MEAN", "IMAGENET_STD",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 5e-6
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    grad_clip: float = 1.0
    batch_size: int = 32
    max_steps: int = 1000
    seed: int = 0


def warmup_linear_decay(step: int, total: int, warmup_fraction: float) -> float:
    """LR multiplier: linear 0 -> 1 over the first ``warmup_fraction`` of steps, then linear -> 0."""
    warm = max(1, int(round(total * warmup_fraction)))
    if step < warm:
        return (step + 1) / warm
    return max(0.0, (total - step) / max(1, total - warm))


def configure_adamw(module: torch.nn.Module, cfg: OptimConfig):
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
    return "16-mixed" if torch.cuda.is_available() else "32-true"


def imagenet_normalize(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) normalised with ImageNet statistics."""
    x = pixels.permute(0, 3, 1, 2).float().div(255.0)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class ImageTextDataset(Dataset):
    """Decoded images (and optional caption token ids) kept in memory; bad files dropped.

    ``index`` is returned with each item so that per-sample randomness can be derived from it
    (MAE masks), which makes a DDP run reproduce a single-process run exactly.
    """

    def __init__(self, paths, image_size: int, captions=None, tokenizer=None):
        pixels, keep = [], []
        for i, p in enumerate(paths):
            decoded, _ = read_image(p, image_size)
            if not is_skipped(decoded.status):
                pixels.append(decoded.pixels)
                keep.append(i)
        self.kept = np.asarray(keep, dtype=np.int64)
        self.n_skipped = len(paths) - len(keep)
        self.pixels = torch.from_numpy(np.stack(pixels)) if pixels else torch.zeros((0, image_size, image_size, 3), dtype=torch.uint8)
        self.tokens = None
        if captions is not None:
            texts = [str(captions[i]) if captions[i] is not None and str(captions[i]) != "<NA>" else "" for i in keep]
            self.tokens = tokenizer(texts) if texts else torch.zeros((0, 77), dtype=torch.long)

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    def __getitem__(self, i: int):
        item = {"index": i, "pixels": self.pixels[i]}
        if self.tokens is not None:
            item["tokens"] = self.tokens[i]
        return item


def history_callback():
    """A Lightning callback collecting logged training metrics per step (the chapter's curves)."""
    import lightning as L

    class History(L.Callback):
        def __init__(self):
            self.rows: list[dict] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            row = {"step": trainer.global_step}
            row.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")})
            row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
            self.rows.append(row)

    return History()


def save_member(module, path: str | os.PathLike) -> Path:
    """Checkpoint with everything needed to rebuild the image tower: kind, name, config, weights."""
    payload = {"kind": module.kind, "name": module.member_name, "config": asdict(module.config),
               "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _module_class(kind: str):
    if kind in ("clip", "siglip"):
        from skinmap.embed.members.clip import ContrastiveMember
        return ContrastiveMember
    if kind == "dino":
        from skinmap.embed.members.dino import DINOMember
        return DINOMember
    if kind == "ibot":
        from skinmap.embed.members.ibot import IBOTMember
        return IBOTMember
    if kind == "mae":
        from skinmap.embed.members.mae import MAEMember
        return MAEMember
    raise ValueError(f"unknown trainable member kind {kind!r}")


def config_class(kind: str):
    return _module_class(kind).config_class


def build_module(kind: str, name: str, config):
    return _module_class(kind)(name=name, config=config, kind=kind)


class TrainedImageEncoder:
    """Image tower of a trained member as an :class:`ImageEncoder` (l2 normalisation later)."""

    def __init__(self, module, identity: str):
        self.module = module.eval()
        self.name = module.member_name
        self.image_size = module.config.image_size
        self.dim = module.embed_dim
        self._identity = identity

    @property
    def identity(self) -> str:
        return self._identity

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrainedImageEncoder":
        payload = torch.load(path, map_location="cpu", weights_only=True)
        ccls = config_class(payload["kind"])
        module = build_module(payload["kind"], payload["name"], ccls(**payload["config"]))
        module.load_state_dict(payload["state_dict"])
        return cls(module, f"{payload['name']}-{payload['kind']}-{file_sha256(path)[:16]}")

    def encode_uint8(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.module.encode_images(imagenet_normalize(torch.from_numpy(np.ascontiguousarray(batch)))).float().numpy()


def train_member(kind: str, name: str, config, paths, out_path, *, captions=None,
                 trainer_kwargs: dict | None = None, num_workers: int = 0):
    """Train one member with Lightning and save its checkpoint; returns (module, history rows, n_skipped).

    ``trainer_kwargs`` sets the hardware (``accelerator``, ``devices``, ``strategy``, ``num_nodes``);
    the defaults run on one CPU. An empty partition raises ``ValueError`` naming the member.
    """
    import lightning as L

    L.seed_everything(config.optim.seed, workers=True, verbose=False)
    module = build_module(kind, name, config)
    tokenizer = module.tokenizer if kind in ("clip", "siglip") else None
    data = ImageTextDataset(list(paths), config.image_size, captions if tokenizer is not None else None, tokenizer)
    if len(data) < 2:
        raise ValueError(f"member '{name}': partition has {len(data)} usable images (need >= 2)")
    trainer_kwargs = dict(trainer_kwargs or {})
    # deterministic_order: every rank reads a fixed, interleaved slice of the data (rank r gets rows
    # r, r + W, ...), so W processes with batch b/W see exactly the rows one process sees with batch b.
    deterministic = bool(trainer_kwargs.pop("deterministic_order", False))
    history = history_callback()
    kwargs = dict(accelerator="cpu", devices=1, max_steps=config.optim.max_steps, logger=False,
                  enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False,
                  gradient_clip_val=config.optim.grad_clip, precision=default_precision(),
                  num_sanity_val_steps=0, max_epochs=-1, use_distributed_sampler=not deterministic)
    kwargs.update(trainer_kwargs)
    # Lightning announces hardware and tips at INFO level on every Trainer; in a book chapter that
    # is noise between figures (warnings and errors still show).
    for logger_name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(logger_name).setLevel(logging.WARNING)
    trainer = L.Trainer(callbacks=[history], **kwargs)
    batch = min(config.optim.batch_size, len(data))
    if deterministic:
        sampler = (torch.utils.data.DistributedSampler(data, num_replicas=trainer.world_size, rank=trainer.global_rank,
                                                       shuffle=False) if trainer.world_size > 1 else None)
    else:
        sampler = torch.utils.data.RandomSampler(data, generator=torch.Generator().manual_seed(config.optim.seed))
    loader = DataLoader(data, batch_size=batch, shuffle=False, sampler=sampler, num_workers=num_workers,
                        drop_last=len(data) >= config.optim.batch_size)
    trainer.fit(module, loader)
    if trainer.global_rank == 0 and out_path is not None:
        save_member(module, out_path)
    trainer.strategy.barrier()
    return module, history.rows, data.n_skipped
