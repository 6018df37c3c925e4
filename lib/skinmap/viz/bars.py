"""Bars whose values can run off the axis: clipped at a limit, with a marker and the true value.

A probe's R² is unbounded below (-76 on a held-out set is possible); drawing that bar to scale
would flatten every other bar, and cutting it silently at -1 misreports it. :func:`clipped_bars`
cuts the bar at the limit, puts a triangle at the cut pointing the way the value continues, and
writes the true value beside it. The figure audit (:mod:`skinmap.viz.audit`) flags any bar that
leaves the axis without such a marker.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from skinmap.viz.audit import CLIP_MARKER_GID

__all__ = ["clipped_bars", "grouped_bars"]


def clipped_bars(ax, x: Sequence[float], values: Sequence[float], *, lo: float | None = None,
                 hi: float | None = None, width: float = 0.8, ci_low: Sequence[float] | None = None,
                 ci_high: Sequence[float] | None = None, orientation: str = "vertical",
                 value_format: str = "{:.3g}", color=None, label: str | None = None, **bar_kwargs):
    """Draw bars clipped to ``[lo, hi]``, marking each clipped bar with a triangle and its true value.

    Parameters
    ----------
    ax : matplotlib Axes
    x : array_like, shape (n,)
        Bar positions (centres).
    values : array_like, shape (n,)
        True bar values (NaN: no bar).
    lo, hi : float, optional
        Axis limits of the value axis; values beyond are clipped. ``None``: no limit on that side.
    width : float
        Bar width (height for ``orientation="horizontal"``).
    ci_low, ci_high : array_like, shape (n,), optional
        Interval ends drawn as error bars (clipped to the same limits).
    orientation : {"vertical", "horizontal"}
    value_format : str
        Format of the true value written beside a clipped bar.
    color, label, **bar_kwargs
        Passed to ``ax.bar`` / ``ax.barh``.

    Returns
    -------
    BarContainer
        The bars; the value axis is set to ``[lo, hi]`` plus room for the markers.
    """
    if orientation not in ("vertical", "horizontal"):
        raise ValueError(f"orientation must be 'vertical' or 'horizontal', got {orientation!r}")
    x = np.asarray(x, float)
    v = np.asarray(values, float)
    low = -np.inf if lo is None else float(lo)
    high = np.inf if hi is None else float(hi)
    if low >= high:
        raise ValueError(f"lo ({lo}) must be below hi ({hi})")
    shown = np.clip(v, low, high)
    err = None
    if ci_low is not None and ci_high is not None:
        cl = np.clip(np.asarray(ci_low, float), low, high)
        ch = np.clip(np.asarray(ci_high, float), low, high)
        err = np.vstack([np.maximum(shown - cl, 0), np.maximum(ch - shown, 0)])
        err = np.where(np.isfinite(err), err, 0.0)
    vertical = orientation == "vertical"
    draw = ax.bar if vertical else ax.barh
    kw = {"yerr" if vertical else "xerr": err} if err is not None else {}
    bars = draw(x, shown, width, color=color, label=label, **kw, **bar_kwargs)
    finite_lo, finite_hi = np.isfinite(low), np.isfinite(high)
    span = (high - low) if finite_lo and finite_hi else max(np.nanmax(np.abs(shown)) if np.isfinite(shown).any() else 1.0, 1e-9)
    pad = 0.07 * span
    for xi, vi in zip(x, v):
        if not np.isfinite(vi) or low <= vi <= high:
            continue
        below = vi < low
        edge = low if below else high
        marker = ("v" if below else "^") if vertical else ("<" if below else ">")
        at = edge - pad / 2 if below else edge + pad / 2  # the triangle sits just beyond the cut
        mx, my = (xi, at) if vertical else (at, xi)
        ax.plot([mx], [my], marker=marker, color="black", markersize=7, linestyle="none", gid=CLIP_MARKER_GID,
                clip_on=False)
        text = value_format.format(vi)
        if vertical:
            ax.annotate(text, (xi, edge), xytext=(0, 4 if below else -4), textcoords="offset points", rotation=90,
                        ha="center", va="bottom" if below else "top", gid=CLIP_MARKER_GID,
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
        else:
            ax.annotate(text, (edge, xi), xytext=(4 if below else -4, 0), textcoords="offset points",
                        ha="left" if below else "right", va="center", gid=CLIP_MARKER_GID,
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
    limits = ax.get_ylim() if vertical else ax.get_xlim()
    new = (low - pad if finite_lo else limits[0], high + pad if finite_hi else limits[1])
    (ax.set_ylim if vertical else ax.set_xlim)(*new)
    return bars


def grouped_bars(ax, table, *, group: str, hue: str, value: str = "value", ci_low: str | None = "ci_low",
                 ci_high: str | None = "ci_high", lo: float | None = None, hi: float | None = None,
                 hue_order=None, group_order=None, legend: bool = True):
    """Bars of ``table[value]`` per ``group`` (x positions) and ``hue`` (side by side), clipped to
    ``[lo, hi]`` with a marker and the true value at each clipped bar (:func:`clipped_bars`).

    Parameters
    ----------
    ax : matplotlib Axes
    table : DataFrame
        One row per (group, hue) with the value and optional interval columns.
    group, hue, value : str
        Column names.
    ci_low, ci_high : str or None
        Interval columns (error bars); ``None``: no error bars.
    lo, hi : float, optional
        Limits of the value axis (e.g. ``lo=-1`` for R², unbounded below).
    hue_order, group_order : sequence, optional
        Display orders (default: first appearance).
    legend : bool
        Put a legend of the hues outside the axes (:func:`skinmap.viz.style.legend_outside`).

    Returns
    -------
    dict
        ``hue level -> CategoryStyle`` used (colours follow :mod:`skinmap.viz.palette`).
    """
    from skinmap.viz.palette import category_styles
    from skinmap.viz.style import legend_outside

    groups = list(dict.fromkeys(table[group])) if group_order is None else list(group_order)
    hues = list(dict.fromkeys(table[hue])) if hue_order is None else list(hue_order)
    styles = category_styles(hues, neutral=())
    width = 0.8 / max(len(hues), 1)
    for j, level in enumerate(hues):
        sub = table[table[hue] == level].set_index(group).reindex(groups)
        x = np.arange(len(groups)) + (j - (len(hues) - 1) / 2) * width
        st = styles[level]
        clipped_bars(ax, x, sub[value].to_numpy(float), lo=lo, hi=hi, width=width,
                     ci_low=None if ci_low is None else sub[ci_low].to_numpy(float),
                     ci_high=None if ci_high is None else sub[ci_high].to_numpy(float),
                     color=st.color, hatch=st.hatch or None, label=str(level), edgecolor="white",
                     error_kw={"lw": 0.8, "capsize": 2})
    ax.set_xticks(np.arange(len(groups)), [str(g) for g in groups], rotation=30 if len(groups) > 3 else 0,
                  ha="right" if len(groups) > 3 else "center")
    if lo is not None and hi is not None and lo < 0 < hi:
        ax.axhline(0, color="black", lw=0.6)
    if legend:
        legend_outside(ax)
    return styles
