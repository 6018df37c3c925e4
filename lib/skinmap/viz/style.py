"""One look for every static figure, and export of a chapter's key figures.

``save_figure`` writes ``<figures_dir>/<chapter>-<name>.png`` and ``.svg`` atomically (the build
points ``figures_dir`` at ``figures/<profile>/``) so figures can be reused in papers and slides.
The figure is left open so the notebook still displays it inline.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import matplotlib

from skinmap.io import atomic_path

__all__ = ["set_style", "save_figure", "PALETTE"]

PALETTE = "colorblind"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def set_style() -> None:
    """Apply the book's seaborn/matplotlib style (call once at the top of a chapter)."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    matplotlib.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "savefig.bbox": "tight",
            "axes.titleweight": "bold",
            "svg.fonttype": "none",  # keep text as text in SVG exports
        }
    )


def save_figure(fig, figures_dir: str | os.PathLike | None, chapter: str, name: str) -> list[Path]:
    """Export ``fig`` as PNG and SVG named ``<chapter>-<name>`` under ``figures_dir``.

    ``figures_dir=None`` exports nothing (interactive use). Names are lower-case slugs so that
    exported files are stable across runs.
    """
    if figures_dir is None:
        return []
    for part, value in (("chapter", chapter), ("name", name)):
        if not _NAME.match(value):
            raise ValueError(f"figure {part} {value!r} must be a lower-case slug ([a-z0-9_-])")
    out = []
    for ext in ("png", "svg"):
        path = Path(figures_dir) / f"{chapter}-{name}.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext)
        out.append(path)
    return out
