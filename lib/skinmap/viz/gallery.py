"""Thumbnail galleries: a grid of images with a caption under each.

Galleries of real dataset images must never be committed (the datasets' licences forbid
redistribution); they are written only into run directories and the git-ignored ``figures/``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["load_thumbnail", "thumbnail_grid"]


def load_thumbnail(path: str | os.PathLike | None, size: int = 128) -> np.ndarray | None:
    """An RGB uint8 thumbnail (longest side ``size``), or ``None`` if absent or unreadable."""
    if path is None or not isinstance(path, (str, os.PathLike)):
        return None  # None, NaN, pd.NA: an image that is not on disk
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail((size, size))
            return np.asarray(img)
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def thumbnail_grid(
    paths: Sequence[str | os.PathLike | None],
    captions: Sequence[str] | None = None,
    *,
    ncols: int = 6,
    size: int = 128,
    title: str | None = None,
    cell_inches: float = 1.9,
):
    """A matplotlib figure with one thumbnail per path (a grey cell where the image is missing)."""
    n = len(paths)
    if n == 0:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no images to show", ha="center", va="center")
        return fig
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(cell_inches * ncols, (cell_inches + 0.45) * nrows), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        thumb = load_thumbnail(paths[i], size)
        if thumb is None:
            ax.imshow(np.full((size, size, 3), 200, dtype=np.uint8))
            ax.text(size / 2, size / 2, "no image", ha="center", va="center", fontsize=8)
        else:
            ax.imshow(thumb)
        if captions is not None:
            ax.set_title(str(captions[i]), fontsize=7, wrap=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
