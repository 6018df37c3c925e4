"""Verifying candidate duplicate pairs by registered pixel correlation (methods.md section 10).

A global embedding ranks candidates well (a copy is almost always among an image's few nearest
neighbours) but cannot *decide* them: look-alike images of one kind reach cosine similarities as
high as a cropped copy's. What only a copy shares with its source is the picture itself, pixel for
pixel, up to the copy's transform. So each candidate pair is registered and compared on pixels:

.. math::  s(a, b) = \\max_{(u, v) \\in \\{(a, b), (b, a)\\}} \\; \\max_{\\phi \\in \\{1, \\mathrm{mirror}\\}}
           \\; \\max_{f \\in F} \\; \\max_{t}
           \\; \\operatorname{ncc}\\big(P h(\\phi(x_v)),\\; P h(C_{f, t}\\, x_u)\\big)

where ``x`` is the image's grey-level thumbnail (``size x size``), ``C_{f,t}`` cuts the window of
relative size ``f`` at offset ``t`` out of ``x_u`` and resamples it onto the pixels of ``x_v`` (a
copy cropped to a fraction ``f`` of its source is that window, enlarged), ``h(x) = x - G_sigma * x``
keeps the fine detail (Gaussian high-pass), ``P`` projects the collection's mean pattern out
(:func:`mean_pattern`, :func:`project_out`) and ``ncc`` is the cosine of the two centred images
(normalised cross-correlation). Brightness and contrast changes (affine in luminance) cancel in
``ncc``; the mirror flip, crop fraction and offset are searched. ``f = 1`` compares the full frames
(exact, mirrored and re-coloured copies).

* *The mean pattern is projected out*, not subtracted: what every image of a device shares at the
  same pixels -- a dermoscope's circular vignette -- would otherwise correlate any two images of that
  device, but subtracting it from every image would imprint its negative on images without it (a flat
  clinical photograph) and make *those* correlate. The least-squares amount each image holds is
  removed; the pattern is mirror-symmetrised, so a mirrored copy stays exact. In a crop hypothesis the
  same projection is applied to both sides in the copy's frame, which keeps a true copy at 1.
* *Crops are scored in the copy's frame.* Shrinking a copy back onto its source loses the detail the
  copy gained when its crop was enlarged, so the source's window is resampled into the copy's frame
  (bicubic, from 2x thumbnails when given) over sub-pixel shifts and scales around the hypothesis.
* *A copy agrees everywhere.* Every compared frame is scored by :func:`agreement`: the whole-frame
  cosine, capped by the median cosine of its tiles. A ruler, a sticker or a dermoscope's black side
  bars at the same place in two different photographs correlate strongly, but only in the tiles they
  cover.
* *Coarse to fine.* Every direction, mirror and crop fraction is searched with all offsets at once
  (FFT cross-correlation, summed-area tables for the window norms) on thumbnails reduced by
  ``coarse_factor``, on the raw thumbnails (a crop magnifies the device pattern, so it cannot be
  projected out before the crop is known). Pairs whose coarse crop score reaches ``refine_gate`` are
  searched again at full size for the found direction and mirror, then refined. The resampling is
  separable (a scale and a shift per axis) and runs as matrix products.

A high-pass filter leaves the detail a copy inherits and that a look-alike, however similar in
shape and colour, draws independently (texture, noise, hairs). ``s`` lies in [-1, 1]; an exact
copy scores 1.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

__all__ = [
    "luminance_thumbnails", "reduce_thumbnails", "mean_pattern", "project_out", "crop_scales", "summed_area_tables",
    "agreement",
    "normalized_cross_correlation", "refine_crop", "registered_similarity",
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


def crop_scales(min_crop: float, step: float) -> tuple[float, ...]:
    """The crop fractions searched: 1, 1 - step, ... down to ``min_crop`` (inclusive)."""
    if not 0 < min_crop <= 1 or step <= 0:
        raise ValueError(f"need 0 < min_crop <= 1 and step > 0, got {min_crop}, {step}")
    n = int(np.floor((1.0 - min_crop) / step + 1e-9))
    return tuple(round(1.0 - i * step, 6) for i in range(n + 1))


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


def _highpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``x - G_sigma * x`` for (P, 1, H, W), reflecting at the borders."""
    if sigma <= 0:
        return x
    rows, cols = _blur_matrix(x.shape[-2], float(sigma)), _blur_matrix(x.shape[-1], float(sigma))
    return x - rows.T @ x @ cols


def summed_area_tables(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded summed-area tables of ``image`` and ``image**2`` (float64), (P, H+1, W+1) each:
    the window sums of every size follow from them in O(1) per window."""
    x = image.double()
    return (F.pad(x.cumsum(1).cumsum(2), (1, 0, 1, 0)), F.pad(x.pow(2).cumsum(1).cumsum(2), (1, 0, 1, 0)))


def normalized_cross_correlation(image: torch.Tensor, template: torch.Tensor, *,
                                 image_fft: torch.Tensor | None = None,
                                 image_tables: tuple[torch.Tensor, torch.Tensor] | None = None,
                                 return_offset: bool = False):
    """Max over offsets of the NCC of each template with the windows of its image.

    ``image`` (P, H, W), ``template`` (P, h, w) with h <= H, w <= W; returns (P,) maxima, and with
    ``return_offset`` also the (P, 2) offsets ``(dy, dx)`` of the best windows. A flat window or
    template (no variance) has NCC 0 by definition, never NaN. ``image_fft`` (``rfft2(image)``)
    and ``image_tables`` (:func:`summed_area_tables`) may be passed when one image is matched
    against several templates, so they are computed once.
    """
    p, hh, ww = image.shape
    h, w = template.shape[-2:]
    t = template - template.mean(dim=(1, 2), keepdim=True)
    t_norm = t.pow(2).sum(dim=(1, 2)).sqrt()
    padded = F.pad(t, (0, ww - w, 0, hh - h))
    image_fft = torch.fft.rfft2(image) if image_fft is None else image_fft
    # correlation by FFT; offsets (dy, dx) with dy <= H - h never wrap around
    num = torch.fft.irfft2(image_fft * torch.fft.rfft2(padded).conj(), s=(hh, ww))
    num = num[:, : hh - h + 1, : ww - w + 1]

    def window_sums(c: torch.Tensor) -> torch.Tensor:
        return c[:, h:, w:] - c[:, :-h, w:] - c[:, h:, :-w] + c[:, :-h, :-w]

    c1, c2 = summed_area_tables(image) if image_tables is None else image_tables
    s1, s2 = window_sums(c1), window_sums(c2)
    var = (s2 - s1.pow(2) / (h * w)).clamp_min(0).float()  # sum of squared centred values per window
    den = var.sqrt() * t_norm[:, None, None]
    ncc = torch.where(den > 1e-6, num / den.clamp_min(1e-12), torch.zeros_like(num))
    best, arg = ncc.flatten(1).max(dim=1)
    best = best.clamp(-1.0, 1.0)
    if not return_offset:
        return best
    positions = ww - w + 1
    return best, torch.stack([arg // positions, arg % positions], dim=1)


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    """(P, H, W) -> (P, H*W) centred, unit-norm rows (a flat row stays 0)."""
    x = x.flatten(1)
    x = x - x.mean(dim=1, keepdim=True)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-8)


def agreement(a: torch.Tensor, b: torch.Tensor, blocks: int = 1) -> torch.Tensor:
    """How well two registered (P, S, S) signals agree: the cosine of the centred frames, and with
    ``blocks > 1`` at most the median cosine of the ``blocks x blocks`` tiles that carry signal in
    both (at least 5 % of the mean tile energy), so that a copy must agree *everywhere*.

    A shared object that is not part of the picture -- a ruler, a sticker, the edge of a dermoscope
    -- can make two different photographs correlate over the whole frame, but only in the tiles it
    covers; a copy agrees in every tile. Flat tiles (a black vignette corner) carry no evidence and
    are left out; without any tile left, the whole-frame cosine stands.
    """
    whole = (_unit_rows(a) * _unit_rows(b)).sum(dim=1)
    if blocks <= 1:
        return whole
    p, size, _ = a.shape
    side = size // blocks
    if side < 2:
        raise ValueError(f"{blocks} x {blocks} tiles of a {size}-px frame are too small")

    def tiles(x: torch.Tensor) -> torch.Tensor:
        x = x[:, : side * blocks, : side * blocks].reshape(p, blocks, side, blocks, side)
        x = x.permute(0, 1, 3, 2, 4).reshape(p, blocks * blocks, side * side)
        return x - x.mean(dim=2, keepdim=True)

    ta, tb = tiles(a), tiles(b)
    na, nb = ta.norm(dim=2), tb.norm(dim=2)
    cos = (ta * tb).sum(dim=2) / (na * nb).clamp_min(1e-12)
    energy = na * nb
    carries = energy > 0.05 * energy.mean(dim=1, keepdim=True)
    median = torch.where(carries, cos, torch.full_like(cos, float("nan"))).nanquantile(0.5, dim=1, interpolation="lower")
    return torch.where(torch.isnan(median), whole, torch.minimum(whole, median))


def _cubic_weights(positions: torch.Tensor, n_in: int, zoom: int) -> torch.Tensor:
    """(P, n_out) sample positions, in input pixel units (pixel ``k`` centred at ``k + 0.5``) ->
    (P, n_out / zoom, n_in) interpolation matrices: bicubic (Keys, a = -0.75, the kernel of
    ``F.grid_sample(mode="bicubic")``) with taps clamped to the border, then averaged over each run
    of ``zoom`` outputs (the box reduction to the copy's resolution)."""
    x = positions - 0.5
    base = torch.floor(x)
    t = x - base
    a = -0.75

    def near(d: torch.Tensor) -> torch.Tensor:  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d: torch.Tensor) -> torch.Tensor:  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    taps = torch.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], dim=-1)  # (P, n_out, 4)
    index = (base.long()[..., None] + torch.arange(-1, 3)).clamp(0, n_in - 1)
    w = torch.zeros(*positions.shape, n_in).scatter_add_(-1, index, taps)
    p, n_out = positions.shape
    return w.view(p, n_out // zoom, zoom, n_in).mean(dim=2) if zoom > 1 else w


def refine_crop(
    source: torch.Tensor,
    copy: torch.Tensor,
    window: torch.Tensor,
    *,
    sigma: float,
    pattern: torch.Tensor | None = None,
    offsets: Sequence[float] = (-0.4, 0.0, 0.4),
    rel_sizes: Sequence[float] = (0.99, 1.0, 1.01),
    rounds: int = 3,
    blocks: int = 1,
) -> torch.Tensor:
    """NCC of each copy with its source's window resampled into the copy's frame, maximised over
    sub-pixel shifts and sizes around ``window``: ``rounds`` rounds of a grid search, each centred
    on the best window so far with a grid half as wide (fine detail decorrelates within a fraction
    of a pixel, so one grid step of 0.4 px can miss a copy).

    ``copy`` (P, S, S) (already mirrored if needed); ``source`` (P, zS, zS) for an integer ``z``:
    the source thumbnail itself (z = 1) or a finer one (z = 2), which keeps the detail an enlarged
    crop shows (a copy cropped from a large original has more of it per thumbnail pixel than its
    source's thumbnail). ``window`` (P, 3) float ``(y0, x0, side)`` in S-pixel units of the source
    (the coarse crop hypothesis). Each candidate window
    ``(y0 + dy + c, x0 + dx + c, side * r)`` (``c`` keeps it centred when ``r`` scales it) is
    sampled on the copy's zS x zS pixel centres with bicubic interpolation, box-reduced to S x S,
    high-passed and compared with the high-passed copy. The resampling is separable (a scale and a
    shift per axis), so it runs as two matrix products per window, the row pass shared by every
    ``dx``. ``pattern`` (S, S), already high-passed, is projected out of both
    (:func:`project_out`) in the copy's frame: the same linear map on both sides keeps a true copy
    at 1 while removing what look-alikes of one device share there. Each window is scored by
    :func:`agreement` over ``blocks x blocks`` tiles. Returns (P,) maxima in [-1, 1].
    """
    p, size, _ = copy.shape
    zoom = source.shape[-1] // size
    if source.shape[-1] != zoom * size or zoom < 1:
        raise ValueError(f"source side {source.shape[-1]} must be a multiple of the copy's {size}")

    def prepared(x: torch.Tensor) -> torch.Tensor:  # (P, S, S) -> the compared signal
        x = _highpass(x[:, None], sigma)[:, 0]
        return x if pattern is None else project_out(x, pattern)

    target = prepared(copy)
    n_in = source.shape[-1]
    centres = (torch.arange(size * zoom, dtype=torch.float32) + 0.5) / (size * zoom)  # output centres, frame fractions
    y0, x0, side = window[:, 0].clone(), window[:, 1].clone(), window[:, 2].clone()
    best = torch.full((p,), -1.0)
    for round_ in range(rounds):
        step = 0.5 ** round_  # each round searches a grid half as wide around the best window so far
        new_y0, new_x0, new_side = y0.clone(), x0.clone(), side.clone()
        for r in rel_sizes:
            scaled = side * (1 + (r - 1) * step)
            start_y = y0 + (side - scaled) / 2  # scaled about the window's centre
            start_x = x0 + (side - scaled) / 2

            def axis(start: torch.Tensor, d: float) -> torch.Tensor:  # S-pixel units -> source pixels
                return _cubic_weights((start[:, None] + d * step + centres[None] * scaled[:, None]) * zoom, n_in, zoom)

            columns = [axis(start_x, dx).transpose(1, 2) for dx in offsets]
            for dy in offsets:
                rows = axis(start_y, dy) @ source  # (P, S, zS)
                for dx, cols in zip(offsets, columns):
                    score = agreement(prepared(rows @ cols), target, blocks)
                    better = score > best
                    best = torch.where(better, score, best)
                    new_y0 = torch.where(better, start_y + dy * step, new_y0)
                    new_x0 = torch.where(better, start_x + dx * step, new_x0)
                    new_side = torch.where(better, scaled, new_side)
        y0, x0, side = new_y0, new_x0, new_side
    return best.clamp(-1.0, 1.0)


def _search(fixed_hp: torch.Tensor, moving: torch.Tensor, sizes: Sequence[int], sigma: float,
            mirrors: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Best NCC over mirror and template sizes for one direction; returns (P,) scores and (P, 4)
    hypotheses ``(mirrored, side, dy, dx)``. ``mirrors`` (P,) bool restricts each pair to one
    mirror state (both are searched when None)."""
    p, size, _ = moving.shape
    fixed_fft = torch.fft.rfft2(fixed_hp)  # shared by every mirror and template size below
    fixed_tables = summed_area_tables(fixed_hp)
    best = torch.full((p,), -2.0)
    hyp = torch.zeros((p, 4), dtype=torch.long)
    for mirrored in ((0, 1) if mirrors is None else (None,)):
        if mirrored is None:
            m = torch.where(mirrors[:, None, None], moving.flip(-1), moving)[:, None]
            flag = mirrors.long()[:, None]
        else:
            m = moving.flip(-1)[:, None] if mirrored else moving[:, None]
            flag = torch.full((p, 1), mirrored)
        for side in sizes:
            t = m if side == size else F.interpolate(m, size=(side, side), mode="bicubic", antialias=True,
                                                     align_corners=False)
            score, offset = normalized_cross_correlation(fixed_hp, _highpass(t, sigma)[:, 0], image_fft=fixed_fft,
                                                         image_tables=fixed_tables, return_offset=True)
            better = score > best
            best = torch.where(better, score, best)
            found = torch.cat([flag, torch.full((p, 1), side), offset], dim=1)
            hyp = torch.where(better[:, None], found, hyp)
    return best, hyp


def _full_frame(a_hp: torch.Tensor, b_hp: torch.Tensor, blocks: int) -> torch.Tensor:
    """:func:`agreement` of the full frames, the better of ``b`` as is and mirrored (P,)."""
    return torch.maximum(agreement(a_hp, b_hp, blocks), agreement(a_hp, b_hp.flip(-1), blocks))


def registered_similarity(
    thumbnails: np.ndarray,
    pairs_i: Sequence[int],
    pairs_j: Sequence[int],
    *,
    scales: Sequence[float] = (1.0, 0.975, 0.95, 0.925, 0.9, 0.875, 0.85),
    sigma: float = 1.0,
    subtract_mean: bool = True,
    refine: bool = True,
    refine_gate: float = 0.45,
    coarse_factor: int = 2,
    blocks: int = 4,
    fine_thumbnails: np.ndarray | None = None,
    valid: np.ndarray | None = None,
    batch_size: int = 256,
    threads: int = 1,
    progress: bool = True,
) -> np.ndarray:
    """``s(i, j)`` of the module docstring for every pair, float32 in [-1, 1] (NaN where an image
    is not ``valid``, e.g. unreadable).

    ``thumbnails`` (n, S, S) from :func:`luminance_thumbnails`; ``scales`` the crop fractions
    searched (each in (0, 1]); ``sigma`` the high-pass scale in thumbnail pixels (0: no filter);
    ``subtract_mean`` projects the valid images' mean pattern (:func:`mean_pattern`) out of every
    compared frame (:func:`project_out`); ``blocks`` scores every registered frame by
    :func:`agreement` over ``blocks x blocks`` tiles (1: the whole-frame cosine).

    The score is the better of two: the full frames compared as they are (and mirrored), which
    decides exact, mirrored and re-coloured copies; and, with ``refine``, the best crop hypothesis
    refined in the copy's frame (:func:`refine_crop`). Crop hypotheses are searched in three steps,
    so that the expensive ones run on few pairs: (1) every direction, mirror and crop fraction on
    thumbnails reduced by ``coarse_factor`` (an S/2 search costs ~1/10 of an S one); (2) for pairs
    whose coarse crop score reaches ``refine_gate`` and whose full frames are not already a match
    (< 0.99), the found direction and mirror at full size over the template sides within one
    coarse pixel of the found one; (3) the sub-pixel refinement, sampling the source from
    ``fine_thumbnails`` (n, 2S, 2S) when given. ``threads`` caps torch's intra-op threads for the
    call (small FFTs lose time to thread hand-offs: one thread was measured ~20x faster than two on
    a busy 2-core machine).
    """
    raw = np.asarray(thumbnails, np.float32)
    if raw.ndim != 3 or raw.shape[1] != raw.shape[2]:
        raise ValueError(f"thumbnails must be (n, S, S), got shape {raw.shape}")
    i = np.asarray(pairs_i, np.int64)
    j = np.asarray(pairs_j, np.int64)
    if i.shape != j.shape:
        raise ValueError("pairs_i and pairs_j differ in length")
    if i.size and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= len(raw)):
        raise IndexError("pair index out of range")
    if any(not 0 < f <= 1 for f in scales) or not len(scales):
        raise ValueError(f"scales must be non-empty fractions in (0, 1], got {list(scales)}")
    if coarse_factor < 1 or raw.shape[1] % coarse_factor:
        raise ValueError(f"coarse_factor {coarse_factor} must be >= 1 and divide the thumbnail side {raw.shape[1]}")
    valid = np.ones(len(raw), bool) if valid is None else np.asarray(valid, bool)
    size = raw.shape[1]
    small = size // coarse_factor
    coarse_sides = sorted({min(small - 1, max(2, int(round(f * small)))) for f in scales if f < 1}, reverse=True)
    fine = None
    if fine_thumbnails is not None:
        fine = torch.from_numpy(np.ascontiguousarray(fine_thumbnails, np.float32))
        if fine.shape[0] != len(raw) or fine.ndim != 3 or fine.shape[1] != fine.shape[2] or fine.shape[1] % size:
            raise ValueError(f"fine_thumbnails must be (n, zS, zS) for S = {size}, got {tuple(fine.shape)}")
    out = np.full(i.size, np.nan, np.float32)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        plain = torch.from_numpy(np.ascontiguousarray(raw))
        plain_hp = _highpass(plain[:, None], sigma)[:, 0]
        pattern_hp = (_highpass(torch.from_numpy(mean_pattern(raw, valid))[None, None], sigma)[0, 0]
                      if subtract_mean else torch.zeros(size, size))
        framed_hp = project_out(plain_hp, pattern_hp)
        coarse = torch.from_numpy(reduce_thumbnails(raw, coarse_factor)) if coarse_factor > 1 else plain
        coarse_hp = _highpass(coarse[:, None], sigma)[:, 0]
        todo = np.flatnonzero(valid[i] & valid[j]) if i.size else np.zeros(0, np.int64)
        for start in tqdm(range(0, todo.size, batch_size), desc="registering pairs", disable=not progress,
                          leave=False):
            rows = todo[start:start + batch_size]
            a, b = torch.from_numpy(i[rows]), torch.from_numpy(j[rows])
            best = _full_frame(framed_hp[a], framed_hp[b], blocks)
            if refine and coarse_sides:
                # (1) crop hypotheses on the reduced raw thumbnails (a crop magnifies the device pattern)
                crop_best = torch.full((rows.size,), -2.0)
                crop_hyp = torch.zeros((rows.size, 5), dtype=torch.long)  # direction, mirrored, side, dy, dx
                for direction, (u, v) in enumerate(((a, b), (b, a))):
                    score, hyp = _search(coarse_hp[u], coarse[v], coarse_sides, sigma)
                    better = score > crop_best
                    crop_best = torch.where(better, score, crop_best)
                    crop_hyp = torch.where(better[:, None], torch.cat([torch.full((rows.size, 1), direction), hyp], 1),
                                           crop_hyp)
                gate = (crop_best >= refine_gate) & (best < 0.99)
                if gate.any():
                    h = crop_hyp[gate]
                    forward = h[:, 0] == 0
                    src = torch.where(forward, a[gate], b[gate])
                    cpy = torch.where(forward, b[gate], a[gate])
                    # (2) the found direction and mirror at full size, sides within one coarse pixel
                    centre = h[:, 2] * coarse_factor
                    sides = [s for s in range(int(centre.min()) - coarse_factor, int(centre.max()) + coarse_factor + 1)
                             if 2 <= s < size]
                    fine_best = torch.full((len(h),), -2.0)
                    window = torch.zeros((len(h), 3))
                    for side in sides:
                        near = torch.nonzero((centre - side).abs() <= coarse_factor)[:, 0]
                        if not len(near):
                            continue
                        score, hyp = _search(plain_hp[src[near]], plain[cpy[near]], [side], sigma,
                                             mirrors=h[near, 1].bool())
                        better = score > fine_best[near]
                        fine_best[near] = torch.where(better, score, fine_best[near])
                        window[near] = torch.where(better[:, None], torch.stack([hyp[:, 2], hyp[:, 3], hyp[:, 1]], 1).float(),
                                                   window[near])
                    # (3) sub-pixel refinement in the copy's frame
                    copies = torch.where(h[:, 1, None, None].bool(), plain[cpy].flip(-1), plain[cpy])
                    refined = refine_crop(plain[src] if fine is None else fine[src], copies, window, sigma=sigma,
                                          pattern=pattern_hp if subtract_mean else None, blocks=blocks)
                    best[gate] = torch.maximum(best[gate], refined)
            out[rows] = best.numpy()
    finally:
        torch.set_num_threads(old_threads)
    return out
