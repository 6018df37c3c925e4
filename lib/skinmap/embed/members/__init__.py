"""Embedding members: each maps images to one global vector (paper section 2).

Every image member implements :class:`ImageEncoder`: ``encode_uint8(batch)`` takes decoded
uint8 pixels (B, H, W, 3) and returns float32 (B, d), and ``identity`` names the encoder
*and its weights* (a hash), so cached vectors are never reused across different weights.

Modules, each importing only those above it in this list (no cycle; tested):

``base``               optimiser defaults and schedule, ImageNet normalisation (shared by the objectives)
``clip``, ``dino``,    the trainable objectives (``ibot`` extends ``dino``), one Lightning module each
``ibot``, ``mae``
``registry``           the trainable kinds, :class:`~registry.MemberSpec` and the kind -> module table
``training``           the training loop and the checkpoint format (``TrainedImageEncoder``)
``efficientnet_onnx``  the frozen ImageNet member; ``minilm`` the frozen caption encoder
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["ImageEncoder"]


@runtime_checkable
class ImageEncoder(Protocol):
    name: str
    image_size: int
    dim: int

    @property
    def identity(self) -> str: ...

    def encode_uint8(self, batch: np.ndarray) -> np.ndarray: ...
