"""Grey-level thumbnails and the signal registration compares (methods.md section 10).

Each image becomes a ``size x size`` luminance thumbnail (:func:`luminance_thumbnails`); the
compared signal is its Gaussian high-pass ``h(x) = x - G_sigma * x`` (:func:`highpass`), with the
collection's mirror-symmetrised mean pattern (:func:`mean_pattern`, e.g. a dermoscope's vignette)
projected out (:func:`project_out`). See :mod:`~skinmap.analysis.quality.registration` for why.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

__all__ = ["luminance_thumbnails", "reduce_thumbnails", "mean_pattern", "project_out", "highpass"]


def luminance_thumbnails(paths: Sequence, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Grey-level ``size x size`` thumbnails in [0, 1], float32 ``(n, size, size)``, and the mask
    of readable images (unreadable rows are zero). Large JPEGs are decoded at reduced scale
    (``Image.draft``; at least twice the thumbnail size) before the antialiased resize."""
    out = np.zeros((len(paths), size, size), np.float32)
    ok = np.zeros(len(paths), bool)
    for k, path in enumerate(paths):
        if path is None or (isinstance(path, float) and np.isnan(path)):
            continue
        try:
            with Image.open(path) as im:
                im.draft("L", (2 * size, 2 * size))
                out[k] = np.asarray(im.convert("L").resize((size, size), Image.Resampling.BICUBIC),
                                    np.float32) / 255.0
            ok[k] = True
        except (OSError, ValueError, TypeError, SyntaxError):
            continue
    return out, ok


def reduce_thumbnails(fine: np.ndarray, factor: int = 2) -> np.ndarray:
    """Box-reduce (n, zS, zS) thumbnails by an integer ``factor`` (the S-pixel thumbnails that go
    with the finer ones used to refine crops)."""
    fine = np.asarray(fine, np.float32)
    n, side, _ = fine.shape
    if side % factor:
        raise ValueError(f"side {side} is not a multiple of {factor}")
    return fine.reshape(n, side // factor, factor, side // factor, factor).mean(axis=(2, 4))


def mean_pattern(thumbnails: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """The mirror-symmetrised mean thumbnail of the ``valid`` rows, (S, S) float32 (zeros without
    valid rows): what every image of a device shares at the same pixels, e.g. a dermoscope's
    circular vignette. Symmetrising (``(m + mirror(m)) / 2``) keeps a mirrored copy an exact mirror
    once the pattern is projected out (:func:`project_out`)."""
    x = np.asarray(thumbnails, np.float32)
    valid = np.ones(len(x), bool) if valid is None else np.asarray(valid, bool)
    if not valid.any():
        return np.zeros(x.shape[1:], np.float32)
    m = x[valid].mean(axis=0)
    return ((m + m[:, ::-1]) / 2).astype(np.float32)


def project_out(images: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """``x - (<x, p> / <p, p>) p`` for each (H, W) image of ``images`` (P, H, W): the least-squares
    amount of ``pattern`` (H, W) each image holds is removed.

    Unlike subtracting the pattern from every image, this leaves an image without it (a clinical
    photograph among dermoscopy images) untouched; subtracting would imprint the negative pattern
    on it and make any two such images correlate. A zero pattern leaves the images unchanged.
    """
    p = pattern.reshape(1, -1)
    norm = (p * p).sum()
    if float(norm) <= 1e-12:
        return images
    flat = images.reshape(len(images), -1)
    return (flat - (flat @ p.T) / norm * p).reshape(images.shape)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-x**2 / (2 * sigma**2))
    return k / k.sum()


@functools.lru_cache(maxsize=32)
def _blur_matrix(n: int, sigma: float) -> torch.Tensor:
    """(n, n) matrix ``B`` with ``x @ B`` = the rows of ``x`` convolved with a Gaussian of ``sigma``,
    reflecting at the borders (numpy's 'reflect' without edge repeat, as ``F.pad(mode="reflect")``).
    Blurring a (P, n, n) batch as ``B.T @ x @ B`` runs as two batched matrix products, much faster
    on one thread than a 1-channel ``conv2d``."""
    k = _gaussian_kernel(sigma)
    r = min(len(k) // 2, n - 1)
    k = k[len(k) // 2 - r: len(k) // 2 + r + 1]
    k = (k / k.sum()).double()
    m = torch.zeros((n, n), dtype=torch.float64)
    for out in range(n):
        for t in range(-r, r + 1):
            src = out + t
            src = -src if src < 0 else 2 * (n - 1) - src if src > n - 1 else src
            m[src, out] += k[t + r]
    return m.float()


def highpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``x - G_sigma * x`` for (P, 1, H, W), reflecting at the borders."""
    if sigma <= 0:
        return x
    rows, cols = _blur_matrix(x.shape[-2], float(sigma)), _blur_matrix(x.shape[-1], float(sigma))
    return x - rows.T @ x @ cols
