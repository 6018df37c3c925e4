"""Synthetic sanity shapes with a known number of holes, for tests and for teaching.

Each shape is sampled in 3-D, then embedded in ``dim`` dimensions by a random rotation, a large
offset along one extra axis (so that the cosine geometry the book uses is close to the shape's
Euclidean geometry) and isotropic noise: the same setting as a dermatology embedding, where a loop
lives in a high-dimensional space and any 2-D map of it is a projection.

================  ==========================  ==============
shape             what it is                  H1 holes
================  ==========================  ==============
``circle``        one noisy circle            1
``two_circles``   two circles, radii 1 and .6 2
``torus``         a torus (R = 2, r = 0.7)    2 (tube, ring)
================  ==========================  ==============

A few hundred samples of the torus show its large loop (around the ring) clearly while the loop
around the thin tube lives briefly, close to the noise: :data:`DETECTABLE` says how many holes a
search on a few hundred samples should single out, and a teacher can show why the two differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SanityShape", "sanity_shape", "SHAPES", "DETECTABLE"]

#: The shapes :func:`sanity_shape` knows, with their first Betti number (the known answer).
SHAPES: dict[str, int] = {"circle": 1, "two_circles": 2, "torus": 2}
#: Holes that stand out (more than twice the next bar) from a few hundred samples.
DETECTABLE: dict[str, int] = {"circle": 1, "two_circles": 2, "torus": 1}


@dataclass(frozen=True)
class SanityShape:
    """One sampled shape.

    Attributes
    ----------
    name : str
    points : ndarray of shape (n, dim)
        The embedded, noisy samples (what a hole search runs on).
    plane : ndarray of shape (n, 2)
        The shape's own first two coordinates (a faithful 2-D view for circles; a projection that
        folds the torus's tube onto its ring).
    n_holes : int
        The known number of H1 holes.
    """

    name: str
    points: np.ndarray
    plane: np.ndarray
    n_holes: int


def _sample(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if name == "circle":
        t = rng.uniform(0, 2 * np.pi, n)
        return np.c_[np.cos(t), np.sin(t), np.zeros(n)]
    if name == "two_circles":
        n1 = n // 2
        t = rng.uniform(0, 2 * np.pi, n)
        radius = np.where(np.arange(n) < n1, 1.0, 0.6)
        center = np.where(np.arange(n) < n1, -1.5, 1.5)
        return np.c_[radius * np.cos(t) + center, radius * np.sin(t), np.zeros(n)]
    if name == "torus":
        u, v = rng.uniform(0, 2 * np.pi, (2, n))
        big, small = 2.0, 0.7
        return np.c_[(big + small * np.cos(v)) * np.cos(u), (big + small * np.cos(v)) * np.sin(u), small * np.sin(v)]
    raise ValueError(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")


def sanity_shape(name: str, n_samples: int = 300, *, dim: int = 32, noise: float = 0.03,
                 offset: float = 30.0, seed: int = 0) -> SanityShape:
    """Sample a shape with a known number of holes and embed it in ``dim`` dimensions.

    Parameters
    ----------
    name : {"circle", "two_circles", "torus"}
    n_samples : int
        Number of points (at least 20).
    dim : int
        Ambient dimension (at least 4).
    noise : float
        Standard deviation of the isotropic Gaussian noise added in ``dim`` dimensions.
    offset : float
        Distance of the shape from the origin along an extra axis.
    seed : int

    Returns
    -------
    SanityShape
    """
    if n_samples < 20:
        raise ValueError(f"n_samples must be >= 20, got {n_samples}")
    if dim < 4:
        raise ValueError(f"dim must be >= 4, got {dim}")
    rng = np.random.default_rng(seed)
    shape = _sample(name, n_samples, rng)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    x = np.zeros((n_samples, dim))
    x[:, :3] = shape
    x[:, 3] = offset
    points = x @ q.T + rng.normal(0.0, noise, (n_samples, dim))
    return SanityShape(name, points, shape[:, :2].copy(), SHAPES[name])
