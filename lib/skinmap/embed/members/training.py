"""Training one member with Lightning, and the checkpoint format it leaves.

:func:`train_member` seeds everything, builds the kind's module (:mod:`~skinmap.embed.members.registry`),
decodes the partition's images into memory (:class:`ImageTextDataset`) and fits; :func:`save_member`
writes the checkpoint (kind, name, config, weights) that :meth:`TrainedImageEncoder.load` rebuilds
as an :class:`~skinmap.embed.members.ImageEncoder`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from skinmap.embed.checkpoint import load_checkpoint, save_checkpoint
from skinmap.embed.images import is_skipped, read_image
from skinmap.embed.members.base import default_precision, imagenet_normalize
from skinmap.embed.members.registry import CONTRASTIVE_KINDS, build_module, config_class
from skinmap.hashing import file_sha256

__all__ = ["ImageTextDataset", "TrainedImageEncoder", "history_callback", "save_member", "train_member"]


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
    return save_checkpoint(payload, path)


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
        """Rebuild the member saved by :func:`save_member`; its identity includes the file's hash."""
        payload = load_checkpoint(path)
        ccls = config_class(payload["kind"])
        module = build_module(payload["kind"], payload["name"], ccls(**payload["config"]))
        module.load_state_dict(payload["state_dict"])
        return cls(module, f"{payload['name']}-{payload['kind']}-{file_sha256(path)[:16]}")

    def encode_uint8(self, batch: np.ndarray) -> np.ndarray:
        # on the module's device: the Lightning extraction engine moves the module to its rank's GPU
        device = next(self.module.parameters()).device
        with torch.inference_mode():
            pixels = torch.from_numpy(np.ascontiguousarray(batch)).to(device)
            return self.module.encode_images(imagenet_normalize(pixels)).float().cpu().numpy()


def train_member(kind: str, name: str, config, paths, out_path, *, captions=None,
                 trainer_kwargs: dict | None = None, num_workers: int = 0):
    """Train one member with Lightning and save its checkpoint; returns (module, history rows, n_skipped).

    ``trainer_kwargs`` sets the hardware (``accelerator``, ``devices``, ``strategy``, ``num_nodes``);
    the defaults run on one CPU. An empty partition raises ``ValueError`` naming the member.
    """
    import lightning as L

    L.seed_everything(config.optim.seed, workers=True, verbose=False)
    module = build_module(kind, name, config)
    tokenizer = module.tokenizer if kind in CONTRASTIVE_KINDS else None
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
