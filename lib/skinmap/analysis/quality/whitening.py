"""Descriptor post-processing for copy detection: PCA whitening fitted on the dataset itself.

Global ImageNet features of images of one kind share a few dominant directions (background,
illumination, "a round lesion on skin"), so two unrelated look-alikes reach cosine similarities
as high as a cropped copy. Following Jégou & Chum (ECCV 2012, "Negative evidences and
co-occurrences in image retrieval: the benefit of PCA and whitening", eq. 2-3) and the whitening
step of Radenović, Tolias & Chum (TPAMI 2019, sec. 3.3), each descriptor is centred, projected
on the top ``n`` principal directions :math:`U_n` of the dataset and divided by the power
:math:`\\alpha` of their variances :math:`\\lambda_1..\\lambda_n`,

.. math::  \\hat z = \\operatorname{diag}(\\lambda_1, ..., \\lambda_n)^{-\\alpha} \\, U_n^\\top (z - \\mu),
           \\qquad \\tilde z = \\hat z / \\lVert \\hat z \\rVert ,

then l2-normalised again. :math:`\\alpha = 1/2` is plain whitening (``sklearn.decomposition.PCA(
whiten=True)``); :math:`\\alpha < 1/2` shrinks it (power-law regularisation), which keeps more of
a copy's similarity when the small-variance directions also carry its perturbation. Directions
every image shares are divided down, so look-alikes drop toward 0 while copies, which agree in
every direction, stay near 1.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.decomposition import PCA

from skinmap.analysis.knn import l2_normalize

__all__ = ["pca_whiten", "whitening_dims", "flip_averaged", "duplicate_descriptors"]


def pca_whiten(x: np.ndarray, n_components: int, *, power: float = 0.5, seed: int = 0) -> np.ndarray:
    """Whitened, re-l2-normalised descriptors (eq. above), fitted on ``x`` itself; float32 (n, n_components).

    ``n_components`` must be at least 1 and at most ``min(n, d) - 1`` (the centred data has rank
    ``min(n - 1, d)``; a direction without variance cannot be whitened). ``power`` in [0, 1]: 0.5
    is plain whitening, 0 is PCA projection only. Non-finite input is an error.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-d array of descriptors, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("descriptors contain NaN or infinite values")
    n, d = x.shape
    if not 1 <= n_components <= min(n, d) - 1:
        raise ValueError(f"n_components must be in [1, {min(n, d) - 1}] for {n} descriptors of dimension {d}, "
                         f"got {n_components}")
    if not 0.0 <= power <= 1.0:
        raise ValueError(f"power must be in [0, 1], got {power}")
    pca = PCA(n_components=n_components, svd_solver="full", random_state=seed).fit(x)
    var = np.maximum(pca.explained_variance_, 1e-12 * max(float(pca.explained_variance_[0]), 1e-30))
    z = (x - pca.mean_) @ pca.components_.T / var**power
    return l2_normalize(z.astype(np.float32))


def whitening_dims(n_components: int, n: int, d: int) -> int:
    """``n_components`` capped at what ``n`` descriptors of dimension ``d`` can be whitened to,
    ``min(n, d) - 1`` (the rank of the centred data, see :func:`pca_whiten`), and at least 0 (no
    whitening). A small collection is normal: fewer images than the requested dimensions caps the
    whitening at the collection, it is not an error."""
    if n_components < 0:
        raise ValueError(f"n_components must be >= 0, got {n_components}")
    return int(max(0, min(n_components, min(n, d) - 1)))


def flip_averaged(z: np.ndarray, z_flipped: np.ndarray) -> np.ndarray:
    """Mirror-invariant descriptor: the l2-normalised mean of the normalised descriptors of each
    image and of its horizontal mirror (the same for an image and its mirrored copy)."""
    z, z_flipped = np.asarray(z, np.float32), np.asarray(z_flipped, np.float32)
    if z.shape != z_flipped.shape:
        raise ValueError(f"descriptor shapes differ: {z.shape} vs {z_flipped.shape}")
    return l2_normalize(l2_normalize(z) + l2_normalize(z_flipped))


def duplicate_descriptors(
    z: np.ndarray,
    z_mirror: np.ndarray | None = None,
    *,
    n_components: int = 0,
    power: float = 0.5,
    seed: int = 0,
) -> np.ndarray:
    """The vectors compared by the near-duplicate search: ``z`` made mirror-invariant with
    :func:`flip_averaged` when ``z_mirror`` is given (a NaN mirror row, i.e. an image that could
    not be re-read, falls back to the image's own vector), then :func:`pca_whiten` ed when
    ``n_components > 0``; ``n_components = 0`` and no mirror give the l2-normalised input (the
    plain rule). More components than the descriptors can be whitened to (:func:`whitening_dims`:
    fewer images than ``n_components``) are capped, with a warning naming both numbers."""
    out = l2_normalize(z)
    capped = whitening_dims(n_components, *out.shape)
    if capped < n_components:
        warnings.warn(f"whitening capped at {capped} dimensions: {out.shape[0]} descriptors of dimension "
                      f"{out.shape[1]} cannot be whitened to {n_components}", UserWarning, stacklevel=2)
        n_components = capped
    if z_mirror is not None:
        z_mirror = np.asarray(z_mirror, np.float32)
        missing = ~np.isfinite(z_mirror).all(axis=1)
        out = flip_averaged(out, np.where(missing[:, None], out, z_mirror))
    if n_components > 0:
        out = pca_whiten(out, n_components, power=power, seed=seed)
    return out
