"""Word clouds of metadata terms (what borders a hole, :func:`skinmap.analysis.topology.holes.term_frequencies`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["word_cloud_image"]


def word_cloud_image(
    terms: pd.DataFrame, *, width: int = 480, height: int = 240, seed: int = 0
) -> np.ndarray | None:
    """An RGB word cloud of ``term_frequencies`` output (missing terms left out), or ``None``.

    Terms from several columns are labelled ``value`` (diagnoses, sites) or ``column=value`` for
    short codes (FST, modality) so that "3" reads as ``fst=3``.
    """
    from wordcloud import WordCloud

    t = terms[terms["term"] != "(missing)"]
    if t.empty:
        return None
    freqs: dict[str, float] = {}
    for col, term, count in t[["column", "term", "count"]].itertuples(index=False):
        label = f"{col}={term}" if len(str(term)) <= 3 else str(term)
        freqs[label] = freqs.get(label, 0) + float(count)
    cloud = WordCloud(width=width, height=height, background_color="white", random_state=seed,
                      prefer_horizontal=0.9, collocations=False)
    return cloud.generate_from_frequencies(freqs).to_array()
