"""A cheap, transparent duplicate descriptor from pixels (an alternative to a learned embedding).

Near-duplicate copies are the same pixels after a crop, a mirror flip or a colour change. A learned
embedding trained for semantics may place such copies less close than two different images of
one kind, especially on small synthetic images. This descriptor keeps what a copy preserves:

1. the image reduced to ``size x size`` with a box filter (small crops and JPEG noise average out);
2. each colour channel standardised to zero mean and unit variance (brightness, contrast and
   colour-balance jitter cancel);
3. made mirror-invariant by concatenating :math:`T + T_f` and :math:`|T - T_f|`, where :math:`T_f`
   is the horizontal mirror of :math:`T`; both halves are unchanged when the image is flipped.

Compared by cosine similarity like any embedding (methods.md section 10).

:func:`skinmap.embed.mirrored.member_mirror_vectors` gives the frozen embedding member's vectors of
the mirrored images, from which :func:`skinmap.analysis.quality.whitening.flip_averaged` makes the
member's descriptor mirror-invariant too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = ["thumbnail_descriptor", "thumbnail_descriptors"]


def thumbnail_descriptor(img: Image.Image, size: int = 16) -> np.ndarray:
    """Mirror- and colour-jitter-invariant descriptor of one image, shape ``(6 * size**2 + 1,)``."""
    t = np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BOX), dtype=np.float32)
    t = (t - t.mean(axis=(0, 1))) / (t.std(axis=(0, 1)) + 1.0)  # +1: flat images stay finite, ~0
    tf = t[:, ::-1]
    # a tiny constant keeps a flat (blank) image from being a zero vector; blank images then
    # match each other, which is what a duplicate check should report
    return np.concatenate([(t + tf).ravel(), np.abs(t - tf).ravel(), [1e-3]]).astype(np.float32)


def thumbnail_descriptors(paths: Sequence, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Descriptors of the readable images among ``paths`` and the boolean mask of those read."""
    rows, ok = [], np.zeros(len(paths), dtype=bool)
    for k, path in enumerate(paths):
        try:
            with Image.open(path) as im:
                rows.append(thumbnail_descriptor(im, size))
            ok[k] = True
        except (OSError, ValueError, TypeError, AttributeError):
            continue
    dim = 6 * size * size + 1
    return (np.stack(rows) if rows else np.zeros((0, dim), np.float32)), ok
