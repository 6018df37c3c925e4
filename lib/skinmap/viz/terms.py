"""Metadata terms that border a hole (:func:`skinmap.analysis.topology.holes.term_frequencies`), as ranked
bars with their counts.

:func:`term_bars` replaces the word clouds: a word cloud encodes counts in font size and position,
which readers cannot compare; ranked bars with the count written at each bar can be read exactly.
:func:`word_cloud_image` is kept for existing callers only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from skinmap.viz.palette import category_styles

__all__ = ["term_labels", "term_bars", "word_cloud_image"]


def term_labels(terms: pd.DataFrame) -> pd.DataFrame:
    """Summed counts per displayed label, most frequent first (missing terms left out).

    Terms from several columns are labelled ``value`` (diagnoses, sites) or ``column=value`` for
    short codes (FST, modality) so that "3" reads as ``fst=3``.

    Parameters
    ----------
    terms : DataFrame with columns ``column``, ``term``, ``count``

    Returns
    -------
    DataFrame with columns ``label``, ``column``, ``count``; one row per label, sorted by
    decreasing count, then label.
    """
    t = terms[terms["term"].astype(str) != "(missing)"]
    if t.empty:
        return pd.DataFrame({"label": pd.Series(dtype=str), "column": pd.Series(dtype=str),
                             "count": pd.Series(dtype=float)})
    label = [f"{c}={v}" if len(str(v)) <= 3 else str(v) for c, v in zip(t["column"], t["term"])]
    out = (t.assign(label=label).groupby("label", as_index=False)
           .agg(column=("column", "first"), count=("count", "sum")))
    return out.sort_values(["count", "label"], ascending=[False, True], kind="mergesort").reset_index(drop=True)


def term_bars(terms: pd.DataFrame, *, top: int = 15, ax=None, title: str | None = None, count_label: str = "images"):
    """Horizontal bars of the ``top`` most frequent terms, coloured by metadata column, count at each bar.

    Parameters
    ----------
    terms : DataFrame with columns ``column``, ``term``, ``count``
    top : int
        Number of terms shown.
    ax : matplotlib Axes, optional
        Drawn into a new figure sized to the number of terms when ``None``.
    title : str, optional
    count_label : str
        What the counts count (x-axis label).

    Returns
    -------
    matplotlib Figure or None
        ``None`` when there are no (non-missing) terms.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    ranked = term_labels(terms).head(int(top))
    if ranked.empty:
        return None
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 0.8 + 0.32 * len(ranked)))
    columns = list(dict.fromkeys(ranked["column"]))
    styles = category_styles(columns, neutral=())
    y = np.arange(len(ranked))
    bars = ax.barh(y, ranked["count"], color=[styles[c].color for c in ranked["column"]], edgecolor="white")
    for bar, c in zip(bars, ranked["column"]):
        bar.set_hatch(styles[c].hatch or None)
    ax.set_yticks(y, ranked["label"])
    ax.invert_yaxis()
    top_count = float(ranked["count"].max())
    for yi, c in zip(y, ranked["count"]):
        ax.text(c + 0.01 * top_count, yi, f"{c:,.0f}", va="center", ha="left")
    ax.set_xlim(0, top_count * 1.15)
    ax.set_xlabel(count_label)
    ax.grid(axis="y", visible=False)
    if title:
        ax.set_title(title)
    if len(columns) > 1:
        handles = [Patch(facecolor=styles[c].color, hatch=styles[c].hatch or None, label=str(c)) for c in columns]
        ax.legend(handles=handles, title="column", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return ax.figure


def word_cloud_image(
    terms: pd.DataFrame, *, width: int = 480, height: int = 240, seed: int = 0
) -> np.ndarray | None:
    """An RGB word cloud of ``term_frequencies`` output (missing terms left out), or ``None``.

    Deprecated for the book: use :func:`term_bars` (counts readable). Kept for existing callers.
    """
    from wordcloud import WordCloud

    ranked = term_labels(terms)
    if ranked.empty:
        return None
    freqs = dict(zip(ranked["label"], ranked["count"].astype(float)))
    cloud = WordCloud(width=width, height=height, background_color="white", random_state=seed,
                      prefer_horizontal=0.9, collocations=False)
    return cloud.generate_from_frequencies(freqs).to_array()
