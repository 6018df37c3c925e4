"""Matching registered thumbnails: normalised cross-correlation over all offsets, tile-by-tile
agreement, and the sub-pixel refinement of a crop in the copy's frame (methods.md section 10).

The primitives of :mod:`~skinmap.analysis.quality.registration`: :func:`normalized_cross_correlation`
scores every offset of a template at once (FFT correlation, summed-area tables for the window
norms); :func:`agreement` caps the whole-frame cosine by the median cosine of the tiles;
:func:`refine_crop` resamples a source window into the copy's frame (bicubic, separable).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from skinmap.analysis.quality.thumbnails import highpass, project_out

__all__ = ["summed_area_tables", "normalized_cross_correlation", "agreement", "refine_crop"]


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
    source's thumbnail). ``window`` (P, 4) float ``(y0, x0, height, width)`` in S-pixel units of the
    source (the coarse crop hypothesis; a window of another shape than the frame is a crop that
    changes the aspect ratio), or (P, 3) ``(y0, x0, side)`` for square windows. Each candidate window
    ``(y0 + dy + c_y, x0 + dx + c_x, height * r, width * r)`` (``c`` keeps it centred when ``r`` scales it) is
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
        x = highpass(x[:, None], sigma)[:, 0]
        return x if pattern is None else project_out(x, pattern)

    target = prepared(copy)
    n_in = source.shape[-1]
    centres = (torch.arange(size * zoom, dtype=torch.float32) + 0.5) / (size * zoom)  # output centres, frame fractions
    if window.ndim != 2 or window.shape[1] not in (3, 4):
        raise ValueError(f"window must be (P, 3) or (P, 4), got shape {tuple(window.shape)}")
    y0, x0, height = window[:, 0].clone(), window[:, 1].clone(), window[:, 2].clone()
    width = window[:, 3].clone() if window.shape[1] == 4 else height.clone()
    best = torch.full((p,), -1.0)
    for round_ in range(rounds):
        step = 0.5 ** round_  # each round searches a grid half as wide around the best window so far
        new_y0, new_x0, new_height, new_width = y0.clone(), x0.clone(), height.clone(), width.clone()
        for r in rel_sizes:
            scaled_h, scaled_w = height * (1 + (r - 1) * step), width * (1 + (r - 1) * step)
            start_y = y0 + (height - scaled_h) / 2  # scaled about the window's centre
            start_x = x0 + (width - scaled_w) / 2

            def axis(start: torch.Tensor, d: float, extent: torch.Tensor) -> torch.Tensor:  # S-px -> source px
                return _cubic_weights((start[:, None] + d * step + centres[None] * extent[:, None]) * zoom, n_in, zoom)

            columns = [axis(start_x, dx, scaled_w).transpose(1, 2) for dx in offsets]
            for dy in offsets:
                rows = axis(start_y, dy, scaled_h) @ source  # (P, S, zS)
                for dx, cols in zip(offsets, columns):
                    score = agreement(prepared(rows @ cols), target, blocks)
                    better = score > best
                    best = torch.where(better, score, best)
                    new_y0 = torch.where(better, start_y + dy * step, new_y0)
                    new_x0 = torch.where(better, start_x + dx * step, new_x0)
                    new_height = torch.where(better, scaled_h, new_height)
                    new_width = torch.where(better, scaled_w, new_width)
        y0, x0, height, width = new_y0, new_x0, new_height, new_width
    return best.clamp(-1.0, 1.0)
