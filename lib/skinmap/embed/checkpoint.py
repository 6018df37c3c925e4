"""Torch checkpoints (trained members, the fusion projector): written atomically, bytes reproducible.

``torch.save`` to a *path* names the archive's inner folder after the file, and an atomic write
goes through a randomly named temporary file, so the same weights saved twice gave different
bytes. Saved to an open file handle, the archive folder is always ``archive``: the same payload
gives the same bytes, and a checkpoint's hash (which keys the vector cache through the trained
encoder's identity) depends on the weights only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from skinmap.io import atomic_path

__all__ = ["load_checkpoint", "save_checkpoint"]


def save_checkpoint(payload: Any, path: str | os.PathLike) -> Path:
    """Write ``payload`` (tensors, dicts, lists, numbers, strings) to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)
    return Path(path)


def load_checkpoint(path: str | os.PathLike) -> Any:
    """The payload of :func:`save_checkpoint`, on the CPU; only plain types and tensors are unpickled."""
    return torch.load(path, map_location="cpu", weights_only=True)
