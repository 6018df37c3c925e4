"""Thumbnail galleries: a grid of images with a caption under each.

Galleries of real dataset images must never be committed (the datasets' licences forbid
redistribution); they are written only into run directories and the git-ignored ``figures/``.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image, UnidentifiedImageError

from skinmap.viz.audit import MIN_FONT_PT, RENDERED_WIDTH_IN

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


def _wrap(text: str, width_chars: int, max_lines: int) -> str:
    """``text`` wrapped to ``width_chars`` per line in at most ``max_lines`` lines.

    Each of the text's own lines keeps at least one line (a long uid is cut with an ellipsis rather
    than pushing a score below it out); lines left over go to the earlier parts first.
    """
    width_chars = max(4, width_chars)
    parts = [textwrap.wrap(p, width=width_chars, break_long_words=True, break_on_hyphens=True) or [""]
             for p in str(text).split("\n")][:max_lines]
    budget = [1] * len(parts)
    spare = max_lines - len(parts)
    for i, wrapped in enumerate(parts):
        extra = min(spare, len(wrapped) - 1)
        budget[i] += extra
        spare -= extra
    lines = []
    for wrapped, n in zip(parts, budget):
        kept = wrapped[:n]
        if len(wrapped) > n:
            kept[-1] = kept[-1][: width_chars - 1] + "\u2026"
        lines += kept
    return "\n".join(lines)


def thumbnail_grid(
    paths: Sequence[str | os.PathLike | None],
    captions: Sequence[str] | None = None,
    *,
    ncols: int = 6,
    size: int = 128,
    title: str | None = None,
    cell_inches: float = 1.9,
    caption_lines: int = 3,
):
    """A matplotlib figure with one thumbnail per path (a grey cell where the image is missing).

    The grid is at most the book's column wide (:data:`skinmap.viz.audit.RENDERED_WIDTH_IN`), so its
    captions are shown at their size (:data:`skinmap.viz.audit.MIN_FONT_PT`); captions are wrapped
    to their cell and cut after ``caption_lines`` lines, and each row leaves room for them, so no
    caption runs into a neighbour or the image above.
    """
    n = len(paths)
    if n == 0:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no images to show", ha="center", va="center")
        return fig
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    cell = min(cell_inches, (RENDERED_WIDTH_IN - 0.3) / ncols)
    fontsize = MIN_FONT_PT
    # DejaVu Sans: digits and lower-case letters are up to ~0.64 em wide; keep a margin for the column gap
    chars = int(cell * 72 * 0.94 / (0.68 * fontsize))
    texts = [_wrap(c, chars, caption_lines) for c in captions] if captions is not None else None
    n_lines = max((t.count("\n") + 1 for t in texts), default=0) if texts else 0
    caption_in = n_lines * fontsize * 1.3 / 72 + 0.08
    head_in = 0.0
    wrapped_title = None
    if title:
        wrapped_title = _wrap(title, int(cell * ncols * 72 / (0.62 * 12.5)), 3)
        head_in = (wrapped_title.count("\n") + 1) * 12.5 * 1.35 / 72 + 0.1
    width = cell * ncols
    height = nrows * (cell + caption_in) + head_in
    fig = plt.figure(figsize=(width, height), layout="none")
    top = 1 - (head_in + caption_in) / height  # the first row's captions sit above its images
    gs = fig.add_gridspec(nrows, ncols, left=0.0, right=1.0, bottom=0.0, top=top, wspace=0.06,
                          hspace=caption_in / cell)
    axes = np.array([[fig.add_subplot(gs[r, c]) for c in range(ncols)] for r in range(nrows)])
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        thumb = load_thumbnail(paths[i], size)
        if thumb is None:
            ax.imshow(np.full((size, size, 3), 200, dtype=np.uint8))
            ax.text(size / 2, size / 2, "no image", ha="center", va="center", fontsize=fontsize)
        else:
            ax.imshow(thumb)
        if texts is not None:
            ax.set_title(texts[i], fontsize=fontsize, fontweight="normal", pad=5)
    if wrapped_title:
        fig.suptitle(wrapped_title, y=1 - 0.05 / height, va="top")
    return fig
