"""The persistence diagram of the holes chapter, with hole labels that never collide.

Significant holes often sit close together on the diagram (similar birth and death); labels
written at their points then overprint each other. :func:`place_labels` puts each label at the
first of a ring of candidate offsets (growing radius) whose box overlaps no label placed before
it, no marked point and stays inside the axes, with a leader line when it had to move away.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from skinmap.viz.palette import CATEGORICAL, NEUTRAL

__all__ = ["place_labels", "persistence_diagram"]

_DIRECTIONS = [(1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (0, 1), (-1, 0), (0, -1)]


def place_labels(ax, xy: np.ndarray, labels: Sequence[str], *, radii_pt: Sequence[float] = (6, 12, 20, 30, 44, 60),
                 avoid_xy: np.ndarray | None = None, avoid_radius_pt: float = 4.0, **text_kwargs) -> list:
    """Annotate points without overlapping labels.

    Parameters
    ----------
    ax : matplotlib Axes (its limits must be final)
    xy : array_like, shape (n, 2)
        Data coordinates of the labelled points.
    labels : sequence of str, length n
    radii_pt : sequence of float
        Candidate distances (points) of a label from its point, tried in order.
    avoid_xy : array_like, shape (m, 2), optional
        Further points (data coordinates) labels must not cover; the labelled points are always avoided.
    avoid_radius_pt : float
        Half-size (points) of the square kept clear around each avoided point.
    **text_kwargs
        Passed to ``ax.annotate`` (colour, fontsize, ...).

    Returns
    -------
    list of matplotlib Annotation
        One per label, in order.
    """
    fig = ax.figure
    xy = np.asarray(xy, float).reshape(-1, 2)
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    px_per_pt = fig.dpi / 72.0
    pts = to_px(xy)
    avoid = pts if avoid_xy is None else np.vstack([pts, to_px(np.asarray(avoid_xy, float).reshape(-1, 2))])
    r = avoid_radius_pt * px_per_pt
    avoid_boxes = np.column_stack([avoid[:, 0] - r, avoid[:, 1] - r, avoid[:, 0] + r, avoid[:, 1] + r])
    placed: list[np.ndarray] = []
    axb = ax.bbox
    out = []
    for (px, py), (x, y), label in zip(pts, xy, labels):
        ann = ax.annotate(label, (x, y), xytext=(0, 0), textcoords="offset points", **text_kwargs)
        ext = ann.get_window_extent(renderer)
        w, h = ext.width, ext.height
        choice, best = None, None
        for radius in radii_pt:
            for dx, dy in _DIRECTIONS:
                ox, oy = dx * radius * px_per_pt, dy * radius * px_per_pt
                # box of the text anchored on the side facing its point
                x0 = px + ox - (w if dx < 0 else (w / 2 if dx == 0 else 0))
                y0 = py + oy - (h if dy < 0 else (h / 2 if dy == 0 else 0))
                box = np.array([x0, y0, x0 + w, y0 + h])
                inside = box[0] >= axb.x0 and box[2] <= axb.x1 and box[1] >= axb.y0 and box[3] <= axb.y1
                others = np.array(placed).reshape(-1, 4)
                clash = _n_overlaps(box, others) + _n_overlaps(box, avoid_boxes)
                cost = clash * 1000 + (0 if inside else 500) + radius
                if best is None or cost < best:
                    best, choice = cost, (ox, oy, dx, dy, box)
                if clash == 0 and inside:
                    break
            if best is not None and best < 500:
                break
        ox, oy, dx, dy, box = choice
        ann.remove()
        ha = "left" if dx > 0 else ("right" if dx < 0 else "center")
        va = "bottom" if dy > 0 else ("top" if dy < 0 else "center")
        far = np.hypot(ox, oy) > radii_pt[0] * px_per_pt * 1.5
        ann = ax.annotate(label, (x, y), xytext=(ox / px_per_pt, oy / px_per_pt), textcoords="offset points",
                          ha=ha, va=va, arrowprops={"arrowstyle": "-", "lw": 0.6, "color": "0.3"} if far else None,
                          **text_kwargs)
        placed.append(box)
        out.append(ann)
    return out


def _n_overlaps(box: np.ndarray, boxes: np.ndarray) -> int:
    if not len(boxes):
        return 0
    w = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    h = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    return int(((w > 0) & (h > 0)).sum())


def persistence_diagram(ax, births: np.ndarray, deaths: np.ndarray, *, marked: Sequence[tuple[float, float, str]] = (),
                        critical: float | None = None, critical_label: str | None = None,
                        xlabel: str = "birth", ylabel: str = "death", title: str | None = "H1 persistence diagram"):
    """An H1 persistence diagram: all bars in grey, marked holes in colour with non-colliding labels.

    Parameters
    ----------
    ax : matplotlib Axes
    births, deaths : array_like, shape (n_bars,)
    marked : sequence of (birth, death, label)
        Bars to highlight (e.g. the top holes ``("#1", ...)``).
    critical : float, optional
        Persistence threshold (e.g. a quantile of the null maximum): drawn as the line
        ``death = birth + critical``.
    critical_label : str, optional
        Its legend entry (the legend goes below the axes, outside the data).
    xlabel, ylabel, title : str

    Returns
    -------
    list of matplotlib Annotation
        The labels of the marked bars.
    """
    from skinmap.viz.style import legend_outside

    births = np.asarray(births, float)
    deaths = np.asarray(deaths, float)
    mxy = np.array([(b, d) for b, d, _ in marked], float).reshape(-1, 2)
    ax.scatter(births, deaths, s=12, color=NEUTRAL, linewidths=0, zorder=2)
    every = np.concatenate([deaths[np.isfinite(deaths)], mxy[:, 1][np.isfinite(mxy[:, 1])]])
    top = float(every.max()) * 1.08 if every.size else 1.0
    lim = [0.0, top]
    ax.plot(lim, lim, color="black", lw=0.7, zorder=1)
    if critical is not None:
        ax.plot(lim, [lim[0] + critical, lim[1] + critical], ls="--", color=CATEGORICAL[0], lw=1.0,
                label=critical_label, zorder=1)
    if len(mxy):
        ax.scatter(mxy[:, 0], mxy[:, 1], s=28, color=CATEGORICAL[3], zorder=3, linewidths=0)
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if critical is not None and critical_label:
        legend_outside(ax, where="below")
    ax.figure.canvas.draw()  # final limits and layout before measuring label boxes
    return place_labels(ax, mxy, [m[2] for m in marked], avoid_xy=np.column_stack([births, deaths]),
                        color=CATEGORICAL[3], fontweight="bold")
