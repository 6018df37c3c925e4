"""The book's categorical palette, and the colour arithmetic that checks it.

The rule (one for every static figure)
--------------------------------------
Categories (datasets, models, diagnoses, ...) are told apart by colour first and by shape second:

- up to ``len(CATEGORICAL)`` (= 8) categories: one colour each from :data:`CATEGORICAL`, the
  Okabe-Ito palette (Okabe & Ito 2008) with its yellow (invisible on white) replaced by Paul Tol's
  wine #882255; every pair differs by at least :data:`MIN_DELTA_E` CIEDE2000 units in normal vision and
  at least :data:`MIN_DELTA_E_CVD` units under simulated protanopia, deuteranopia and tritanopia
  (Machado, Oliveira & Fernandes 2009, severity 1).
- more categories: category ``i`` gets colour ``i mod 8`` and marker ``MARKERS[i // 8]`` (scatter,
  line markers) or hatch ``HATCHES[i // 8]`` (bars, areas), so that 8 x 5 = 40 categories (the full
  profile has 29 datasets) are distinct by (colour, shape) even for readers who cannot separate the
  colours. :func:`category_styles` returns that mapping; :func:`scatter_by_category` draws with it.
- "other" / "missing" categories are drawn in :data:`NEUTRAL` grey, never in a palette colour.

Colour differences are CIEDE2000 (Sharma, Wu & Dalal 2005) on CIELAB computed from sRGB with the
D65 white point; :func:`min_pairwise_delta_e` is what the figure audit
(:func:`skinmap.viz.audit.audit_figure`) uses to flag near-identical categorical colours.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.colors import to_rgb

__all__ = [
    "CATEGORICAL",
    "NEUTRAL",
    "MARKERS",
    "HATCHES",
    "MIN_DELTA_E",
    "MIN_DELTA_E_CVD",
    "CategoryStyle",
    "category_styles",
    "categorical_colors",
    "srgb_to_lab",
    "simulate_cvd",
    "ciede2000",
    "min_pairwise_delta_e",
    "scatter_by_category",
]

#: Okabe-Ito (Okabe & Ito 2008) with its yellow replaced by Tol's wine: pairwise CIEDE2000 >= 22 in normal
#: vision and >= 10.9 under each simulated dichromacy (``tests/viz/test_palette.py`` recomputes both).
CATEGORICAL: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#56B4E9",  # sky blue
    "#CC79A7",  # reddish purple
    "#000000",  # black
    "#882255",  # wine (Tol's muted scheme; replaces Okabe-Ito's yellow, invisible on white)
)
#: grey for "other" / "missing" (distinct from every palette colour under the same floors)
NEUTRAL = "#BBBBBB"
#: marker per block of 8 categories (filled shapes that read at 4 pt)
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v")
#: hatch per block of 8 categories for bars and areas
HATCHES: tuple[str, ...] = ("", "///", "...", "xxx", "\\\\\\")
#: floor on the pairwise CIEDE2000 difference of categorical colours in normal vision
MIN_DELTA_E = 20.0
#: floor under simulated colour-vision deficiency (the palette's worst pair; marker shapes carry the rest)
MIN_DELTA_E_CVD = 10.0

# Machado, Oliveira & Fernandes (2009), severity 1.0, applied to linear RGB.
_CVD = {
    "protanopia": np.array([[0.152286, 1.052583, -0.204868],
                            [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968],
                              [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779],
                            [-0.078411, 0.930809, 0.147602],
                            [0.004733, 0.691367, 0.303900]]),
}
_SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                         [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]])
_D65 = np.array([0.95047, 1.0, 1.08883])


@dataclass(frozen=True)
class CategoryStyle:
    """How one category is drawn: ``color`` (hex), ``marker`` (matplotlib) and ``hatch``."""

    color: str
    marker: str
    hatch: str


def categorical_colors(n: int) -> list[str]:
    """``n`` colours following the rule: the palette repeated every 8 (shape separates the repeats)."""
    return [CATEGORICAL[i % len(CATEGORICAL)] for i in range(int(n))]


def category_styles(levels: Sequence[Hashable], *, neutral: Sequence[Hashable] = ("other", "missing", "(missing)")
                    ) -> dict[Hashable, CategoryStyle]:
    """Colour, marker and hatch for each level, in order (the module's rule).

    Parameters
    ----------
    levels : sequence of hashable, shape (n_levels,)
        Distinct categories in display order (e.g. datasets by size). At most
        ``len(CATEGORICAL) * len(MARKERS)`` (40) non-neutral levels.
    neutral : sequence of hashable
        Levels drawn in :data:`NEUTRAL` grey with a circle (they do not use up palette slots).

    Returns
    -------
    dict
        ``level -> CategoryStyle``.
    """
    levels = list(dict.fromkeys(levels))
    n_colors, n_shapes = len(CATEGORICAL), len(MARKERS)
    out: dict[Hashable, CategoryStyle] = {}
    i = 0
    for level in levels:
        if level in neutral:
            out[level] = CategoryStyle(NEUTRAL, "o", "")
            continue
        if i >= n_colors * n_shapes:
            raise ValueError(f"{len(levels)} categories exceed the {n_colors * n_shapes} distinct styles; "
                             "group the smallest ones into 'other'")
        out[level] = CategoryStyle(CATEGORICAL[i % n_colors], MARKERS[i // n_colors], HATCHES[i // n_colors])
        i += 1
    return out


def _srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=float)
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0.0, 1.0)
    return np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


def _as_rgb(colors) -> np.ndarray:
    return np.array([to_rgb(c) for c in colors], dtype=float).reshape(-1, 3)


def srgb_to_lab(colors) -> np.ndarray:
    """CIELAB (D65, 2 degree observer) of sRGB colours.

    Parameters
    ----------
    colors : sequence of matplotlib colours (hex strings, RGB tuples in [0, 1]), length n

    Returns
    -------
    ndarray, shape (n, 3)
        ``L*, a*, b*``.
    """
    xyz = _srgb_to_linear(_as_rgb(colors)) @ _SRGB_TO_XYZ.T / _D65
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def simulate_cvd(colors, kind: str) -> np.ndarray:
    """sRGB colours as seen with a colour-vision deficiency (Machado et al. 2009, severity 1).

    Parameters
    ----------
    colors : sequence of matplotlib colours, length n
    kind : {"protanopia", "deuteranopia", "tritanopia"}

    Returns
    -------
    ndarray, shape (n, 3)
        Simulated sRGB in [0, 1].
    """
    if kind not in _CVD:
        raise ValueError(f"kind must be one of {sorted(_CVD)}, got {kind!r}")
    return _linear_to_srgb(_srgb_to_linear(_as_rgb(colors)) @ _CVD[kind].T)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (Sharma, Wu & Dalal 2005, eqs. 1-22; kL = kC = kH = 1).

    Parameters
    ----------
    lab1, lab2 : array_like, shape (..., 3)
        CIELAB colours (broadcast against each other).

    Returns
    -------
    ndarray, shape (...)
    """
    lab1, lab2 = np.broadcast_arrays(np.asarray(lab1, float), np.asarray(lab2, float))
    L1, a1, b1 = np.moveaxis(lab1, -1, 0)
    L2, a2, b2 = np.moveaxis(lab2, -1, 0)
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.where(c1p == 0, 0.0, np.degrees(np.arctan2(b1, a1p)) % 360)
    h2p = np.where(c2p == 0, 0.0, np.degrees(np.arctan2(b2, a2p)) % 360)
    d_l = L2 - L1
    d_c = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    d_h = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    l_bar = (L1 + L2) / 2
    cp_bar = (c1p + c2p) / 2
    hsum = h1p + h2p
    h_bar = np.where(np.abs(h1p - h2p) <= 180, hsum / 2, np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2))
    h_bar = np.where(c1p * c2p == 0, hsum, h_bar)
    t = (1 - 0.17 * np.cos(np.radians(h_bar - 30)) + 0.24 * np.cos(np.radians(2 * h_bar))
         + 0.32 * np.cos(np.radians(3 * h_bar + 6)) - 0.20 * np.cos(np.radians(4 * h_bar - 63)))
    d_theta = 30 * np.exp(-(((h_bar - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(cp_bar**7 / (cp_bar**7 + 25.0**7))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
    s_c = 1 + 0.045 * cp_bar
    s_h = 1 + 0.015 * cp_bar * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    return np.sqrt((d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2 + r_t * (d_c / s_c) * (d_h / s_h))


def min_pairwise_delta_e(colors, cvd: str | None = None) -> tuple[float, tuple[int, int]]:
    """Smallest CIEDE2000 difference between any two of ``colors`` and the pair reaching it.

    ``cvd`` ("protanopia", "deuteranopia", "tritanopia") compares the simulated colours instead.
    Fewer than two colours give ``(inf, (-1, -1))``.
    """
    rgb = _as_rgb(colors)
    if len(rgb) < 2:
        return float("inf"), (-1, -1)
    if cvd is not None:
        rgb = simulate_cvd(rgb, cvd)
    lab = srgb_to_lab(rgb)
    d = ciede2000(lab[:, None, :], lab[None, :, :])
    d[np.tril_indices(len(lab))] = np.inf
    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
    return float(d[i, j]), (int(i), int(j))


def scatter_by_category(ax, x, y, categories, *, order: Sequence[Hashable] | None = None, s: float = 8,
                        legend_title: str | None = None, max_legend: int = 40, **kwargs):
    """Scatter points coloured and shaped by category (the module's rule), legend outside the axes.

    Parameters
    ----------
    ax : matplotlib Axes
    x, y : array_like, shape (n,)
    categories : array_like, shape (n,)
        Category of each point (missing values are shown as "missing").
    order : sequence, optional
        Display order of the categories; default: by decreasing count.
    s : float
        Marker area (points^2).
    legend_title : str, optional
    max_legend : int
        More categories than this: no legend (the caption must say so).

    Returns
    -------
    dict
        ``category -> CategoryStyle`` used.
    """
    import pandas as pd

    from skinmap.viz.style import legend_outside

    cats = pd.Series(categories, dtype="object").where(pd.notna(categories), "missing").astype(str)
    if order is None:
        order = list(cats.value_counts().index)
    styles = category_styles(order)
    x, y = np.asarray(x), np.asarray(y)
    for level in order:
        m = (cats == str(level)).to_numpy()
        if not m.any():
            continue
        st = styles[level]
        ax.scatter(x[m], y[m], s=s, color=st.color, marker=st.marker, linewidths=0, label=str(level), **kwargs)
    if len(order) <= max_legend:
        legend_outside(ax, title=legend_title, markerscale=max(1.0, 24 / max(s, 1)) ** 0.5)
    return styles
