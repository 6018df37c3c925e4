"""Trained models cached by what determines them: data, config, code, library versions, hardware.

Training is the slow part of the embedding chapter; a rerun with the same inputs must not pay for it
again, and a rerun with *different* inputs must never reuse a stale model. An entry's key is the
SHA-256 of a canonical JSON of everything the weights depend on:

member
    kind, name, the full resolved config (architecture, optimiser, steps, seed), the content hashes
    of the partition's image files in training order (with the captions for CLIP/SigLIP), the source
    of the member's modules (``members/base.py``, ``members/training.py``, ``images.py``, the
    objective's module and its bases), the deep-learning library versions and the hardware setup (accelerator, devices, nodes, precision:
    numerics and the per-device batch depend on them), and the evaluation split's digest (which rows
    may be learnt from: a changed split retrains even where the partition happens to be unchanged).
fusion
    the member and caption vectors (dtype, shape, bytes), the :class:`FusionConfig`, the source of
    ``fusion.py``, the library versions, the hardware setup and the evaluation split's digest.

Layout under ``<cache_dir>/models/``: ``<name>-<key16>.pt`` (the member checkpoint) with
``<name>-<key16>.json`` (full key, training history, unreadable-image count; written last, so its
presence marks a complete entry), and ``fusion-<key16>.pt`` (projector weights and history in one
file). All writes are atomic. The book runner deletes files a successful run did not write, so a hit
refreshes its entry's modification time: an entry survives as long as runs keep using it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from skinmap.hashing import array_digest, canonical_hash, library_versions, source_hash
from skinmap.io import atomic_path, read_json, write_json

__all__ = [
    "hardware_signature", "member_source_modules", "member_key", "head_key", "fusion_key", "canonical_order", "lookup_member",
    "store_member", "lookup_fusion", "store_fusion", "link_or_copy", "refresh", "is_main_process",
]

# Distributions whose numerics shape the weights; a missing one is keyed as ``None``.
_LIBRARIES = ("torch", "lightning", "timm", "open_clip_torch", "numpy")


def hardware_signature(trainer_kwargs: dict | None, default_precision: str) -> dict[str, str]:
    """The trainer settings that change the result (defaults filled in, values as strings)."""
    kwargs = {"accelerator": "cpu", "devices": 1, "num_nodes": 1, "strategy": "auto",
              "precision": default_precision, **(trainer_kwargs or {})}
    keep = ("accelerator", "devices", "num_nodes", "strategy", "precision", "deterministic_order")
    return {k: str(kwargs[k]) for k in keep if k in kwargs}


def member_source_modules(kind: str) -> list[str]:
    """Modules whose code determines a trained member: its objective's class hierarchy, the shared
    training code and the image decoder."""
    from skinmap.embed.members.registry import module_class

    modules = {"skinmap.embed.members.base", "skinmap.embed.members.training", "skinmap.embed.images"}
    modules |= {c.__module__ for c in module_class(kind).__mro__ if c.__module__.startswith("skinmap.")}
    return sorted(modules)


def canonical_order(hashes: Sequence[str | None], captions: Sequence[str | None] | None = None) -> np.ndarray:
    """Positions sorted by (content hash, caption): the training order, independent of catalog order.

    Rows that tie have identical bytes and caption, so their relative order cannot change the result.
    """
    caps = captions if captions is not None else [None] * len(hashes)
    return np.asarray(sorted(range(len(hashes)), key=lambda i: (hashes[i] or "", "" if caps[i] is None else str(caps[i]), i)),
                      dtype=np.int64)


def member_key(kind: str, name: str, config, hashes: Sequence[str | None], captions: Sequence[str | None] | None,
               trainer_kwargs: dict | None, default_precision: str, split: str | None = None) -> str:
    """Cache key of a trained member (see the module doc); ``hashes``/``captions`` in training order,
    ``split`` the digest of the evaluation split (roles and protocol) the rows were chosen by."""
    data = [[h, c] for h, c in zip(hashes, captions)] if captions is not None else list(hashes)
    extra = {} if split is None else {"split": split}
    return canonical_hash({**extra,
        "what": "member", "kind": kind, "name": name, "config": asdict(config), "data": data,
        "code": source_hash(member_source_modules(kind)),
        "libraries": library_versions(_LIBRARIES, keep_missing=True),
        "hardware": hardware_signature(trainer_kwargs, default_precision),
    })


def head_key(kind: str, name: str, config, base_identity: str, hashes: Sequence[str | None],
             captions: Sequence[str | None] | None, split: str | None = None) -> str:
    """Cache key of a head member (:mod:`skinmap.embed.members.heads`): kind, name, config, the frozen
    base encoder's identity (weights and input size), the training rows' content hashes in training
    order (with the captions for the caption kinds), the heads' code, the library versions and the split."""
    data = [[h, c] for h, c in zip(hashes, captions)] if captions is not None else list(hashes)
    extra = {} if split is None else {"split": split}
    return canonical_hash({**extra,
        "what": "head_member", "kind": kind, "name": name, "config": asdict(config), "base": base_identity,
        "data": data, "code": source_hash(["skinmap.embed.members.heads", "skinmap.embed.members.base",
                                           "skinmap.embed.extract", "skinmap.embed.images"]),
        "libraries": library_versions(_LIBRARIES, keep_missing=True),
    })


def fusion_key(members: Sequence[np.ndarray], text: np.ndarray | None, config,
               trainer_kwargs: dict | None, split: str | None = None) -> str:
    """Cache key of a trained fusion projector (see the module doc); ``split`` as in :func:`member_key`."""
    extra = {} if split is None else {"split": split}
    return canonical_hash({**extra,
        "what": "fusion", "members": [array_digest(np.asarray(m)) for m in members], "text": array_digest(text),
        "config": asdict(config), "code": source_hash(["skinmap.embed.fusion"]),
        "libraries": library_versions(_LIBRARIES, keep_missing=True),
        "hardware": hardware_signature(trainer_kwargs, "32-true"),
    })


def is_main_process() -> bool:
    """False on the non-zero ranks of a distributed run (only rank 0 writes the cache)."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized() and dist.get_rank() != 0)


def refresh(*paths: Path) -> None:
    """Mark cache files as used by this run (the book runner prunes files a run did not write)."""
    for p in paths:
        os.utime(p)


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Atomically make ``dst`` hold ``src``'s bytes: a hard link when possible (no copy of a large
    checkpoint; every writer replaces files rather than editing them, so sharing the inode is safe),
    else a copy. ``dst`` gets a fresh modification time."""
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:  # other file system, or links not supported
            shutil.copyfile(src, tmp)
    refresh(Path(dst))
    return Path(dst)


def _member_paths(cache_dir, name: str, key: str) -> tuple[Path, Path]:
    root = Path(cache_dir) / "models"
    return root / f"{name}-{key[:16]}.pt", root / f"{name}-{key[:16]}.json"


def lookup_member(cache_dir, name: str, key: str) -> dict | None:
    """The cached entry ``{"checkpoint", "history", "n_skipped"}`` for ``key``, or ``None``."""
    checkpoint, meta = _member_paths(cache_dir, name, key)
    if not (checkpoint.is_file() and meta.is_file()):
        return None
    try:
        entry = read_json(meta)
    except (OSError, ValueError):
        return None
    if entry.get("key") != key:  # a 16-hex prefix collision, or a stale entry
        return None
    refresh(checkpoint, meta)
    return {"checkpoint": checkpoint, "history": entry["history"], "n_skipped": int(entry["n_skipped"])}


def store_member(cache_dir, name: str, key: str, checkpoint: str | os.PathLike, history: list[dict],
                 n_skipped: int) -> Path:
    """Add a trained member's checkpoint and history to the cache (checkpoint first, metadata last)."""
    cached, meta = _member_paths(cache_dir, name, key)
    link_or_copy(checkpoint, cached)
    write_json({"key": key, "name": name, "n_skipped": int(n_skipped), "history": history}, meta)
    return cached


def _fusion_path(cache_dir, key: str) -> Path:
    return Path(cache_dir) / "models" / f"fusion-{key[:16]}.pt"


def lookup_fusion(cache_dir, key: str) -> dict | None:
    """The cached projector payload for ``key`` (see :func:`store_fusion`), or ``None``."""
    from skinmap.embed.checkpoint import load_checkpoint

    path = _fusion_path(cache_dir, key)
    if not path.is_file():
        return None
    try:
        payload = load_checkpoint(path)
    except Exception:  # a truncated or foreign file is a miss, not a crash
        return None
    if payload.get("key") != key:
        return None
    refresh(path)
    return payload


def store_fusion(cache_dir, key: str, payload: dict) -> Path:
    """Save a projector payload (weights, dimensions, ``history``) under ``key``, atomically."""
    from skinmap.embed.checkpoint import save_checkpoint

    return save_checkpoint({**payload, "key": key}, _fusion_path(cache_dir, key))
