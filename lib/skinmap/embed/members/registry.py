"""The trainable member kinds: which objective module trains each kind, and a member's spec.

A *kind* names a training objective (``clip``, ``siglip``, ``dino``, ``ibot``, ``mae``); its
module class is a Lightning module with a ``config_class`` dataclass. :class:`MemberSpec` is one
member to train (name, kind, data partition, config); :func:`member_config` turns a spec into the
kind's config dataclass. This module imports neither torch nor the objectives (they load on first
use), so the chapter's parameter schema can validate member specs without loading a deep-learning
library.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CONTRASTIVE_KINDS", "HEAD_KINDS", "HeadKind", "MemberSpec", "TRAINABLE_KINDS", "TrainableKind", "build_module", "config_class",
    "member_config", "module_class",
]

TrainableKind = Literal["clip", "siglip", "dino", "ibot", "mae"]
TRAINABLE_KINDS: tuple[str, ...] = get_args(TrainableKind)
# members trained on cached features of frozen pretrained towers (skinmap.embed.members.heads)
HeadKind = Literal["lit_clip", "lit_siglip", "dino_head"]
HEAD_KINDS: tuple[str, ...] = get_args(HeadKind)
# kinds trained on (image, caption) pairs: the only ones whose training data include the captions
CONTRASTIVE_KINDS: tuple[str, ...] = ("clip", "siglip")


class MemberSpec(BaseModel):
    """One trainable member: its objective, data partition and architecture/optimiser config."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(..., pattern=r"^[a-z0-9_]+$", description="file-safe member name")
    kind: Literal[TrainableKind, HeadKind] = Field(
        ..., description="training objective: from scratch (clip, siglip, dino, ibot, mae) or heads on cached "
                         "frozen features (lit_clip, lit_siglip, dino_head)")
    partition: Literal["all", "third0", "third1", "third2"] = Field(
        "all", description="images it trains on; thirds mix sources (stratified by dataset)")
    epochs: float | None = Field(None, gt=0, description="if set, overrides optim.max_steps by epochs over the partition")
    config: dict[str, Any] = Field(default_factory=dict,
                                   description="architecture fields and 'optim' (lr, weight_decay, warmup_fraction, "
                                               "grad_clip, batch_size, max_steps, seed) of the member's config class")


def module_class(kind: str) -> type:
    """The Lightning module class that trains members of ``kind`` (imported on first use)."""
    # Plain imports, not an importlib table: the import-graph test then sees these edges.
    if kind in CONTRASTIVE_KINDS:  # one class; CLIP and SigLIP differ by the loss
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


def config_class(kind: str) -> type:
    """The config dataclass of ``kind`` (architecture fields plus ``optim``)."""
    return module_class(kind).config_class


def build_module(kind: str, name: str, config):
    """A fresh (untrained) module of ``kind`` named ``name``."""
    return module_class(kind)(name=name, config=config, kind=kind)


def member_config(spec: MemberSpec | dict, n_images: int, world_size: int = 1):
    """The member's config dataclass from its spec.

    When ``spec.epochs`` is set it overrides ``optim.max_steps``; ``batch_size`` is per device, so an
    epoch is ``ceil(n / (batch * world_size))`` steps.
    """
    from skinmap.embed.members.base import OptimConfig  # imports torch: not at module level (see the doc)

    spec = spec if isinstance(spec, dict) else spec.model_dump()
    cfg = dict(spec.get("config") or {})
    optim = dict(cfg.pop("optim", {}) or {})
    if spec["kind"] in HEAD_KINDS:
        from dataclasses import asdict

        from skinmap.embed.members.heads import HeadConfig

        optim = {**asdict(HeadConfig().optim), **optim}  # the heads' optimiser defaults, not the ViTs'
    if spec.get("epochs"):
        batch = int(optim.get("batch_size", 32))
        optim["max_steps"] = max(1, int(np.ceil(spec["epochs"] * max(1, n_images) / (batch * world_size))))
    if spec["kind"] in HEAD_KINDS:
        return HeadConfig(**cfg, optim=OptimConfig(**optim))
    return config_class(spec["kind"])(**cfg, optim=OptimConfig(**optim))
