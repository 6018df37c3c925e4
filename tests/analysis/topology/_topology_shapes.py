"""Planted shapes embedded in high dimension for the topology tests (no skinmap code)."""

from __future__ import annotations

import numpy as np


def embed(points: np.ndarray, rng: np.random.Generator, *, dim: int = 50, noise: float = 0.05,
          offset: float = 30.0) -> np.ndarray:
    """Rotate ``points`` (n, <dim) into ``dim`` dimensions at a large offset along one extra axis
    (so cosine geometry ~ Euclidean geometry of the shape), plus isotropic Gaussian noise."""
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    x = np.zeros((len(points), dim))
    x[:, : points.shape[1]] = points
    x[:, points.shape[1]] = offset
    return x @ q.T + rng.normal(0.0, noise, (len(points), dim))


def winding(angles: np.ndarray) -> float:
    """Winding number of a closed sequence of angles (last connects back to first)."""
    a = np.asarray(angles, dtype=float)
    steps = np.angle(np.exp(1j * (np.roll(a, -1) - a)))
    return float(steps.sum() / (2 * np.pi))


def circle(n: int, rng: np.random.Generator, radius: float = 1.0, center=(0.0, 0.0)):
    t = rng.uniform(0, 2 * np.pi, n)
    return np.c_[radius * np.cos(t) + center[0], radius * np.sin(t) + center[1], np.zeros(n)], t
