"""The frozen embedding member's vectors of horizontally MIRRORED images (quality chapter).

:func:`skinmap.analysis.quality.whitening.flip_averaged` averages each image's member vector with
that of its mirror, so that an image and its mirrored copy get the same duplicate descriptor. The
mirror views are encoded here, by the same frozen member (same input size and preprocessing as its
stored vectors): each image is decoded exactly as the embedding pipeline decodes it and mirrored
before encoding. Only frozen members without training (kind ``efficientnet_lite0``) are supported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from skinmap.analysis.knn import l2_normalize
from skinmap.embed.images import read_image
from skinmap.embed.pipeline import build_member

__all__ = ["frozen_member_spec", "encoder_cache_dir", "member_mirror_vectors"]


def frozen_member_spec(specs: Sequence[Mapping], member: str = "efficientnet_lite0") -> Mapping:
    """The manifest spec of ``member`` among ``specs`` (the embedding's model manifest ``members``);
    an error naming the members when it is absent or not a frozen ``efficientnet_lite0`` member."""
    spec = next((s for s in specs if s["name"] == member), None)
    if spec is None or spec.get("kind") != "efficientnet_lite0":
        raise ValueError(f"member {member!r} is not a frozen efficientnet_lite0 member of the embedding; "
                         f"members: {[s['name'] for s in specs]}")
    return spec


def encoder_cache_dir(spec: Mapping, shared: str | os.PathLike, own: str | os.PathLike) -> Path:
    """Where the member's exported ONNX graph is found or written: ``shared`` (the embedding's cache)
    when it already holds a graph of the member's input size, else ``own`` (exported there once)."""
    size = int(spec.get("image_size", 224))
    shared = Path(shared)
    return shared if any((shared / "onnx").glob(f"*-{size}px.onnx")) else Path(own)


def member_mirror_vectors(
    paths: Sequence, spec: Mapping, cache_dir: str | os.PathLike, *, batch_size: int = 64, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The frozen member's vectors of the horizontal MIRROR of each image, shape (n, dim).

    ``spec`` is the member's manifest entry (:func:`frozen_member_spec`), ``cache_dir`` the folder
    of its exported graph (:func:`encoder_cache_dir`). Returns the l2-normalised vectors (NaN rows
    for unreadable images) and the boolean mask of readable ones.
    """
    spec = frozen_member_spec([spec], spec["name"])
    size = int(spec.get("image_size", 224))
    encoder = build_member(dict(spec), cache_dir, cache_dir)  # a frozen member reads nothing from the embedding folder
    out = np.full((len(paths), encoder.dim), np.nan, np.float32)
    ok = np.zeros(len(paths), dtype=bool)
    for start in tqdm(range(0, len(paths), batch_size), desc="mirror views", disable=not progress, leave=False):
        idx, pix = [], []
        for k in range(start, min(start + batch_size, len(paths))):
            decoded, _ = read_image(paths[k], size)
            if decoded.pixels is not None:
                idx.append(k)
                pix.append(decoded.pixels[:, ::-1])
        if idx:
            out[idx] = l2_normalize(encoder.encode_uint8(np.stack(pix)))
            ok[idx] = True
    return out, ok
