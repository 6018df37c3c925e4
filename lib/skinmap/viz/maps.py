"""2-D maps of the embedding (UMAP) coloured by a categorical column, one panel per column.

Each panel is as wide as the book's column allows, with its legend outside the data (beside the
panel, or below it in columns when the categories do not fit beside), and categories drawn by the
rule of :mod:`skinmap.viz.palette` (colour, then marker shape beyond eight categories), so the 29
datasets of the full profile stay distinguishable.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
import pandas as pd

from skinmap.viz.audit import RENDERED_WIDTH_IN
from skinmap.viz.palette import scatter_by_category

__all__ = ["category_maps"]


def category_maps(frame: pd.DataFrame, by: Sequence[str], *, x: str = "x", y: str = "y", s: float = 6,
                  title: str = "fused space, by {column}", panel_height_in: float = 4.2):
    """One scatter panel per column of ``by``, stacked vertically, each at the book's width.

    Parameters
    ----------
    frame : DataFrame
        One row per point with the map coordinates ``x``, ``y`` and the columns in ``by``.
    by : sequence of str
        Categorical columns, one panel each (missing values shown as "missing", in grey; a level
        named "other" is grey too).
    x, y : str
        Coordinate columns.
    s : float
        Marker area (points^2).
    title : str
        Panel title; ``{column}`` is replaced by the column name.
    panel_height_in : float
        Height of each panel's row (inches).

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt

    # room for each panel's legend when it goes below the panel (more levels than fit beside it)
    pt = matplotlib.rcParams["legend.fontsize"]
    pt = pt if isinstance(pt, (int, float)) else 11.0
    rows_beside = int(panel_height_in * 72 / (pt * 1.75))
    heights = []
    for column in by:
        levels = frame[column].astype("object").fillna("missing").astype(str)
        n = levels.nunique()
        if n <= rows_beside:
            heights.append(panel_height_in)
            continue
        entry_in = (max(len(v) for v in levels.unique()) * 0.6 * pt + 2.5 * pt) / 72
        ncol = max(1, int(RENDERED_WIDTH_IN // entry_in))
        heights.append(panel_height_in + np.ceil(n / ncol) * pt * 1.75 / 72 + 0.5)
    fig, axes = plt.subplots(len(by), 1, figsize=(RENDERED_WIDTH_IN, sum(heights)), squeeze=False,
                             layout="constrained", gridspec_kw={"height_ratios": heights})
    for ax, column in zip(axes[:, 0], by):
        values = frame[column].astype("object")
        counts = values.value_counts()
        order = [v for v in counts.index if v not in ("other", "missing")]
        order += [v for v in ("other",) if v in counts.index]
        if values.isna().any():
            order.append("missing")
        scatter_by_category(ax, frame[x], frame[y], values, order=order, s=s, legend_title=column)
        ax.set(title=title.format(column=column), xticks=[], yticks=[], xlabel="", ylabel="")
        ax.set_aspect("equal", adjustable="datalim")
    return fig
