"""The quality chapter's figures: a Venn-style leakage diagram, pair galleries, resolution side by side
(the analysis itself is :mod:`skinmap.analysis.quality`)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Circle

from skinmap.viz.audit import MIN_FONT_PT
from skinmap.viz.gallery import _wrap, thumbnail_grid
from skinmap.viz.palette import CATEGORICAL

__all__ = ["leakage_venn", "pair_gallery", "side_by_side"]


def leakage_venn(splits: Sequence, groups: Sequence, *, ax=None, title: str | None = None):
    """Three-set Venn-style diagram of lesions by the set of partitions holding their images
    (exclusive regions: each lesion counted once). Works for the first three partitions."""
    df = pd.DataFrame({"s": pd.array(splits, dtype="string"), "g": pd.array(groups, dtype="string")}).dropna()
    sets = df.groupby("g")["s"].agg(lambda s: frozenset(s))
    names = [p for p in ["train", "val", "test"] if p in set(df["s"])] or sorted(set(df["s"]))[:3]
    names = (names + sorted(set(df["s"]) - set(names)))[:3]
    counts = sets.value_counts()
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 4.6))
    centres = [(-0.6, 0.35), (0.6, 0.35), (0.0, -0.6)][: len(names)]
    for (x, y), name, colour in zip(centres, names, CATEGORICAL[:3]):
        ax.add_patch(Circle((x, y), 1.0, alpha=0.25, color=colour))
        ax.text(x * 1.9, y * 1.9 + (0.15 if y > 0 else -0.25), name, ha="center", fontsize=11, fontweight="bold")
    pos = {0b001: (-1.0, 0.6), 0b010: (1.0, 0.6), 0b100: (0.0, -1.05), 0b011: (0.0, 0.75),
           0b101: (-0.62, -0.35), 0b110: (0.62, -0.35), 0b111: (0.0, 0.0)}
    for key, count in counts.items():
        mask = sum(1 << names.index(s) for s in key if s in names)
        if mask in pos:
            ax.text(*pos[mask], f"{count:,}", ha="center", va="center", fontsize=10)
    ax.set_xlim(-2.0, 2.0)
    ax.set_ylim(-2.0, 1.8)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title or "lesions by partitions holding their images")
    return fig or ax.figure


def pair_gallery(pairs: pd.DataFrame, paths: dict, captions: dict, *, n: int = 12, title: str | None = None):
    """Thumbnails of the first ``n`` pairs (``image_a, image_b, similarity``) side by side, two
    pairs per row; ``paths``/``captions`` map an image uid to its file and caption."""
    top = pairs.head(n)
    cells, caps = [], []
    for row in top.itertuples(index=False):
        for uid in (row.image_a, row.image_b):
            cells.append(paths.get(uid))
            caps.append(f"{captions.get(uid, uid)}\ns={row.similarity:.3f}" if uid == row.image_a
                        else captions.get(uid, uid))
    return thumbnail_grid(cells, caps, ncols=4, title=title)


def side_by_side(rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str], row_labels: Sequence[str] = ()):
    """A grid of RGB arrays: one row per image, one column per version (``titles``)."""
    nrows, ncols = len(rows), len(titles)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.6 * nrows), squeeze=False)
    for r, images in enumerate(rows):
        for c, img in enumerate(images):
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(_wrap(titles[c], 22, 3), fontsize=MIN_FONT_PT + 1, fontweight="normal")
            if c == 0 and r < len(row_labels):
                ax.set_ylabel(_wrap(row_labels[r], 18, 2), fontsize=MIN_FONT_PT + 1)
    fig.tight_layout()
    return fig


