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

__all__ = [
    "luminance_thumbnails",
    "image_aspects",
    "reduce_thumbnails",
    "mean_pattern",
    "project_out",
    "highpass",
    "dihedral",
    "orientations",
    "orient",
    "rotation_invariant_descriptor",
]


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


def image_aspects(paths: Sequence) -> np.ndarray:
    """Each image's aspect ratio ``width / height``, float64 ``(n,)`` (1 where an image is missing or
    unreadable). Only the file header is read.

    The thumbnails of :func:`luminance_thumbnails` squeeze every image into a square; the crop and
    tilt search of :mod:`~skinmap.analysis.quality.registration` uses these ratios to compare two
    images in their true geometry (a square crop of a 4:3 photograph is a 3:4 window of its
    squeezed thumbnail, and a tilt is a rotation of the unsqueezed picture).
    """
    out = np.ones(len(paths), np.float64)
    for k, path in enumerate(paths):
        if path is None or (isinstance(path, float) and np.isnan(path)):
            continue
        try:
            with Image.open(path) as im:
                width, height = im.size
        except (OSError, ValueError, TypeError, SyntaxError):
            continue
        if width > 0 and height > 0:
            out[k] = width / height
    return out


def reduce_thumbnails(fine: np.ndarray, factor: int = 2) -> np.ndarray:
    """Box-reduce (n, zS, zS) thumbnails by an integer ``factor`` (the S-pixel thumbnails that go
    with the finer ones used to refine crops)."""
    fine = np.asarray(fine, np.float32)
    n, side, _ = fine.shape
    if side % factor:
        raise ValueError(f"side {side} is not a multiple of {factor}")
    return fine.reshape(n, side // factor, factor, side // factor, factor).mean(axis=(2, 4))


def mean_pattern(thumbnails: np.ndarray, valid: np.ndarray | None = None, *, all_orientations: bool = False) -> np.ndarray:
    """The symmetrised mean thumbnail of the ``valid`` rows, (S, S) float32 (zeros without valid
    rows): what every image of a device shares at the same pixels, e.g. a dermoscope's circular
    vignette. Symmetrising over the orientations the search compares (the mirror:
    ``(m + mirror(m)) / 2``; with ``all_orientations`` the mean over the 8 right-angle rotations
    and flips, :func:`dihedral`) keeps a mirrored or rotated copy exact once the pattern is
    projected out (:func:`project_out`)."""
    x = np.asarray(thumbnails, np.float32)
    valid = np.ones(len(x), bool) if valid is None else np.asarray(valid, bool)
    if not valid.any():
        return np.zeros(x.shape[1:], np.float32)
    m = x[valid].mean(axis=0)
    if all_orientations:
        t = torch.from_numpy(np.ascontiguousarray(m))
        return torch.stack([dihedral(t, c) for c in range(8)]).mean(0).numpy().astype(np.float32)
    return ((m + m[:, ::-1]) / 2).astype(np.float32)


def dihedral(x: torch.Tensor, code: int) -> torch.Tensor:
    """One of the 8 right-angle rotations and flips of the last two (square) axes of ``x``.

    ``code`` in 0..7: ``code % 4`` quarter turns (counter-clockwise) after a horizontal mirror when
    ``code >= 4``. Code 0 is the identity and code 4 the plain horizontal mirror.
    """
    if not 0 <= int(code) < 8:
        raise ValueError(f"dihedral code must be in 0..7, got {code}")
    if code >= 4:
        x = x.flip(-1)
    return torch.rot90(x, int(code) % 4, dims=(-2, -1)) if code % 4 else x


def orientations(all_right_angles: bool = True, max_tilt: float = 0.0, tilt_step: float = 5.0) -> list[tuple[int, float]]:
    """The orientations a copy search compares, as ``(dihedral code, tilt in degrees)``.

    The identity and the horizontal mirror always; with ``all_right_angles`` every rotation by a
    multiple of 90 degrees with and without a mirror (codes 0..7 of :func:`dihedral`); then small
    tilts ``+-tilt_step, +-2 tilt_step, ... <= max_tilt`` of the plain and the mirrored image (a
    tilted copy is always cropped: :func:`orient` keeps the largest upright square).
    """
    if max_tilt < 0 or tilt_step <= 0:
        raise ValueError(f"need max_tilt >= 0 and tilt_step > 0, got {max_tilt}, {tilt_step}")
    codes = list(range(8)) if all_right_angles else [0, 4]
    steps = int(np.floor(max_tilt / tilt_step + 1e-9))
    tilts = [sign * k * tilt_step for k in range(1, steps + 1) for sign in (1, -1)]
    return [(c, 0.0) for c in codes] + [(c, float(t)) for c in (0, 4) for t in tilts]


def orient(x: torch.Tensor, code: int, tilt: float = 0.0, aspect: torch.Tensor | float | None = None) -> torch.Tensor:
    """``x`` (P, S, S) in one orientation of :func:`orientations`.

    A tilt rotates the image by ``tilt`` degrees and keeps the largest centred upright rectangle of
    the image's own aspect ratio inside the rotated frame, resampled (bicubic) to S x S: a copy
    rotated by ``-tilt`` and cropped becomes an upright crop of its source, which the crop search
    then finds. ``aspect`` (float or (P,)): the true ``width / height`` of each image of ``x``
    before it is oriented (:func:`image_aspects`; None = 1, the thumbnail's own square geometry).
    The rotation is applied to the unsqueezed picture: in the thumbnail's normalised coordinates
    ``(u, v)`` (true coordinates ``(r u, v)`` for ``r`` the oriented aspect) an output pixel samples

    .. math::  h \\begin{pmatrix} c & -s / r \\\\ s r & c \\end{pmatrix} \\begin{pmatrix} u \\\\ v \\end{pmatrix},
               \\qquad h = \\min\\Big(\\frac{r}{r |c| + |s|}, \\frac{1}{r |s| + |c|}\\Big)

    (``c, s`` the cosine and sine of the tilt; ``h`` keeps the rectangle's corners inside the
    rotated frame; ``r = 1`` is the inscribed square, :func:`~skinmap.analysis.quality.registration.tilt_crop`).
    """
    out = dihedral(x, code)
    if not tilt:
        return out
    import torch.nn.functional as F

    r = torch.ones(len(out), dtype=torch.float64) if aspect is None else torch.as_tensor(aspect, dtype=torch.float64)
    r = r.expand(len(out)).clone()
    if code % 2:  # a quarter turn swaps width and height
        r = 1.0 / r
    theta = np.deg2rad(tilt)
    c, s = float(np.cos(theta)), float(np.sin(theta))
    half = torch.minimum(r / (r * abs(c) + abs(s)), 1.0 / (r * abs(s) + abs(c)))  # the inscribed rectangle
    affine = torch.zeros((len(out), 2, 3), dtype=torch.float64)
    affine[:, 0, 0], affine[:, 0, 1] = half * c, -half * s / r
    affine[:, 1, 0], affine[:, 1, 1] = half * s * r, half * c
    grid = F.affine_grid(affine.to(out.dtype), (len(out), 1, *out.shape[-2:]), align_corners=False)
    return F.grid_sample(out[:, None], grid, mode="bicubic", padding_mode="border", align_corners=False)[:, 0]


def rotation_invariant_descriptor(thumbnails: np.ndarray, *, n_radii: int = 12, n_angles: int = 64,
                                  n_frequencies: int = 12, sigma: float = 1.0) -> np.ndarray:
    """A descriptor that does not change when an image is rotated by any angle or mirrored.

    The high-passed thumbnail (:func:`highpass`) is sampled on ``n_radii`` rings inside the
    inscribed circle (``n_angles`` points each, bilinear); per ring the magnitudes of the angular
    Fourier coefficients 1..``n_frequencies`` (a rotation shifts a ring, a mirror reverses it:
    neither changes the magnitudes) and the ring's energy. Each thumbnail's descriptor is centred
    and l2-normalised, so a brightness or contrast change does not move it either. Used to propose
    copy candidates that a global embedding of upright images would not rank close.

    Parameters
    ----------
    thumbnails : ndarray of shape (n, S, S)

    Returns
    -------
    ndarray of shape (n, n_radii * (n_frequencies + 1)), float32
    """
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(thumbnails, np.float32))
    if x.ndim != 3 or x.shape[1] != x.shape[2]:
        raise ValueError(f"thumbnails must be (n, S, S), got shape {tuple(x.shape)}")
    hp = highpass(x[:, None], sigma)
    radii = torch.linspace(0.08, 0.92, n_radii)
    angles = torch.arange(n_angles, dtype=torch.float32) * (2 * np.pi / n_angles)
    grid = torch.stack([radii[:, None] * torch.cos(angles)[None], radii[:, None] * torch.sin(angles)[None]], -1)
    rings = F.grid_sample(hp, grid.expand(len(x), *grid.shape), mode="bilinear", align_corners=False)[:, 0]
    spectrum = torch.fft.rfft(rings, dim=-1).abs()[..., 1:n_frequencies + 1]  # (n, radii, freq)
    energy = rings.pow(2).mean(-1, keepdim=True).sqrt()
    out = torch.cat([spectrum / np.sqrt(n_angles), energy], -1).reshape(len(x), -1)
    out = out - out.mean(1, keepdim=True)
    return (out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)).numpy().astype(np.float32)


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


@functools.lru_cache(maxsize=512)
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
