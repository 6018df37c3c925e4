"""Verifying candidate duplicate pairs by registered pixel correlation (methods.md section 10).

A global embedding ranks candidates well (a copy is almost always among an image's few nearest
neighbours) but cannot *decide* them: look-alike images of one kind reach cosine similarities as
high as a cropped copy's. What only a copy shares with its source is the picture itself, pixel for
pixel, up to the copy's transform. So each candidate pair is registered and compared on pixels:

.. math::  s(a, b) = \\max_{(u, v) \\in \\{(a, b), (b, a)\\}} \\; \\max_{\\phi \\in \\{1, \\mathrm{mirror}\\}}
           \\; \\max_{f \\in F} \\; \\max_{t} \\;
           \\operatorname{ncc}\\big(h(W_t\\, x_u),\\; h(R_f\\, \\phi(x_v))\\big)

where ``x`` is the image's grey-level thumbnail (``size x size``), ``R_f`` resizes the thumbnail by
the factor ``f`` (a copy cropped to a fraction ``f`` of its source is, shrunk by ``f``, a window of
the source), ``W_t`` is the window of that size at offset ``t`` (all offsets searched),
``h(x) = x - G_sigma * x`` keeps the fine detail (Gaussian high-pass) and ``ncc`` is the cosine of
the two centred windows (normalised cross-correlation). Brightness and contrast changes (affine in
luminance) cancel in ``ncc``; the mirror flip, crop fraction and offset are searched.

Two refinements make the score decide what a copy is:

* *The collection's mean pattern is subtracted* (mirror-symmetrised, so a mirrored copy stays
  exact): what every image of a device shares at the same pixels -- a dermoscope's circular
  vignette, a fixed background -- would otherwise correlate any two images of that device.
* *Crops are scored in the copy's frame.* Shrinking a copy back onto its source (``R_f``) loses the
  detail the copy gained when its crop was enlarged, and the crop fraction and offset are only
  found on a grid, so a true crop scores well below 1 there. The best crop hypothesis (``f < 1``,
  located on the raw thumbnails, where the mean pattern -- magnified in a crop -- is left alone)
  is therefore refined: the source's window is resampled into the copy's frame (bicubic) over a
  small grid of sub-pixel offsets and scales around it, and correlated with the copy at full size.
  Only pairs whose crop hypothesis already reaches ``refine_gate`` are refined (the cost is 27
  resamplings per pair).

A high-pass filter leaves the detail a copy inherits and that a look-alike, however similar in
shape and colour, draws independently (texture, noise, hairs). ``s`` lies in [-1, 1]; an exact
copy scores 1. All pairs are processed in batches with FFT cross-correlation (and summed-area
tables for the window norms), so a pair costs a few 2-D FFTs per transform, not a loop over offsets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

__all__ = [
    "luminance_thumbnails", "reduce_thumbnails", "subtract_mean_pattern", "crop_scales", "summed_area_tables",
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


def subtract_mean_pattern(thumbnails: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Thumbnails minus the mirror-symmetrised mean thumbnail of the ``valid`` rows.

    Symmetrising (``(m + mirror(m)) / 2``) keeps a mirrored copy an exact mirror after the
    subtraction. Without valid rows the thumbnails are returned unchanged.
    """
    x = np.asarray(thumbnails, np.float32)
    valid = np.ones(len(x), bool) if valid is None else np.asarray(valid, bool)
    if not valid.any():
        return x.copy()
    m = x[valid].mean(axis=0)
    return x - (m + m[:, ::-1]) / 2


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


def _highpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``x - G_sigma * x`` for (P, 1, H, W), reflecting at the borders."""
    if sigma <= 0:
        return x
    k = _gaussian_kernel(sigma)
    r = min(len(k) // 2, x.shape[-1] - 1, x.shape[-2] - 1)
    k = k[len(k) // 2 - r: len(k) // 2 + r + 1]
    k = k / k.sum()
    y = F.pad(x, (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    y = F.conv2d(y, k.view(1, 1, -1, 1))
    return x - y


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


def refine_crop(
    source: torch.Tensor,
    copy: torch.Tensor,
    window: torch.Tensor,
    *,
    sigma: float,
    offsets: Sequence[float] = (-0.4, 0.0, 0.4),
    rel_sizes: Sequence[float] = (0.99, 1.0, 1.01),
) -> torch.Tensor:
    """NCC of each copy with its source's window resampled into the copy's frame, maximised over
    sub-pixel shifts and sizes around ``window``.

    ``copy`` (P, S, S) (already mirrored if needed); ``source`` (P, zS, zS) for an integer ``z``:
    the source thumbnail itself (z = 1) or a finer one (z = 2), which keeps the detail an enlarged
    crop shows (a copy cropped from a large original has more of it per thumbnail pixel than its
    source's thumbnail). ``window`` (P, 3) float ``(y0, x0, side)`` in S-pixel units of the source
    (the coarse crop hypothesis). Each candidate window
    ``(y0 + dy + c, x0 + dx + c, side * r)`` (``c`` keeps it centred when ``r`` scales it) is
    sampled on the copy's S x S pixel centres with bicubic interpolation, high-passed and compared
    with the high-passed copy. Returns (P,) maxima in [-1, 1].
    """
    p, size, _ = copy.shape
    zoom = source.shape[-1] // size  # a finer source (2S) is sampled at 2S and box-reduced to S
    if source.shape[-1] != zoom * size or zoom < 1:
        raise ValueError(f"source side {source.shape[-1]} must be a multiple of the copy's {size}")
    target = _unit_rows(_highpass(copy[:, None], sigma)[:, 0])
    out = size * zoom
    centres = (torch.arange(out, dtype=torch.float32) + 0.5) / out  # output pixel centres as frame fractions
    y0, x0, side = window[:, 0], window[:, 1], window[:, 2]
    best = torch.full((p,), -1.0)
    for r in rel_sizes:
        new_side = side * r
        shift = (side - new_side) / 2
        for dy in offsets:
            for dx in offsets:
                ys = y0[:, None] + shift[:, None] + dy + centres[None] * new_side[:, None]
                xs = x0[:, None] + shift[:, None] + dx + centres[None] * new_side[:, None]
                # grid_sample's normalised coordinates (align_corners=False): -1 and 1 are the outer pixel edges
                grid = torch.stack([(2 * xs / size - 1)[:, None, :].expand(p, out, out),
                                    (2 * ys / size - 1)[:, :, None].expand(p, out, out)], dim=-1)
                sampled = F.grid_sample(source[:, None], grid, mode="bicubic", padding_mode="border",
                                        align_corners=False)
                if zoom > 1:  # box reduction = antialiasing down to the copy's resolution
                    sampled = F.avg_pool2d(sampled, zoom)
                score = (_unit_rows(_highpass(sampled, sigma)[:, 0]) * target).sum(dim=1)
                best = torch.maximum(best, score)
    return best.clamp(-1.0, 1.0)


def _search(fixed_hp: torch.Tensor, moving: torch.Tensor, sizes: Sequence[int], sigma: float,
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Best NCC over mirror and template sizes for one direction; returns (P,) scores and (P, 4)
    hypotheses ``(mirrored, side, dy, dx)``."""
    p, size, _ = moving.shape
    fixed_fft = torch.fft.rfft2(fixed_hp)  # shared by every mirror and template size below
    fixed_tables = summed_area_tables(fixed_hp)
    best = torch.full((p,), -2.0)
    hyp = torch.zeros((p, 4), dtype=torch.long)
    for mirrored in (0, 1):
        m = moving.flip(-1)[:, None] if mirrored else moving[:, None]
        for side in sizes:
            t = m if side == size else F.interpolate(m, size=(side, side), mode="bicubic", antialias=True,
                                                     align_corners=False)
            score, offset = normalized_cross_correlation(fixed_hp, _highpass(t, sigma)[:, 0], image_fft=fixed_fft,
                                                         image_tables=fixed_tables, return_offset=True)
            better = score > best
            best = torch.where(better, score, best)
            found = torch.cat([torch.full((p, 1), mirrored), torch.full((p, 1), side), offset], dim=1)
            hyp = torch.where(better[:, None], found, hyp)
    return best, hyp


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
    ``subtract_mean`` removes the valid images' mean pattern (:func:`subtract_mean_pattern`) for
    the grid search; ``refine`` scores the best crop hypothesis in the copy's frame
    (:func:`refine_crop`) for pairs whose crop hypothesis reaches ``refine_gate``, sampling the
    source from ``fine_thumbnails`` (n, 2S, 2S) when given. ``threads`` caps
    torch's intra-op threads for the call (small FFTs lose time to thread hand-offs: one thread was
    measured ~20x faster than two on a busy 2-core machine).
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
    valid = np.ones(len(raw), bool) if valid is None else np.asarray(valid, bool)
    size = raw.shape[1]
    sizes = sorted({min(size, max(2, int(round(f * size)))) for f in scales}, reverse=True)
    crop_sizes = [c for c in sizes if c < size]
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
        pattern = torch.from_numpy(subtract_mean_pattern(raw, valid)) if subtract_mean else plain
        pattern_hp = _highpass(pattern[:, None], sigma)[:, 0]
        plain_hp = _highpass(plain[:, None], sigma)[:, 0] if subtract_mean else pattern_hp
        todo = np.flatnonzero(valid[i] & valid[j]) if i.size else np.zeros(0, np.int64)
        for start in tqdm(range(0, todo.size, batch_size), desc="registering pairs", disable=not progress,
                          leave=False):
            rows = todo[start:start + batch_size]
            best = torch.full((rows.size,), -1.0)
            crop_best = torch.full((rows.size,), -2.0)
            crop_hyp = torch.zeros((rows.size, 5), dtype=torch.long)  # direction, mirrored, side, dy, dx
            for direction, (u, v) in enumerate(((i[rows], j[rows]), (j[rows], i[rows]))):
                u, v = torch.from_numpy(u), torch.from_numpy(v)
                score, _ = _search(pattern_hp[u], pattern[v], sizes, sigma)
                best = torch.maximum(best, score)
                if refine and crop_sizes:  # crop hypotheses located on the raw thumbnails
                    score, hyp = _search(plain_hp[u], plain[v], crop_sizes, sigma)
                    better = score > crop_best
                    crop_best = torch.where(better, score, crop_best)
                    crop_hyp = torch.where(better[:, None], torch.cat([torch.full((rows.size, 1), direction), hyp], 1),
                                           crop_hyp)
            gate = (crop_best >= refine_gate).numpy() if refine and crop_sizes else np.zeros(rows.size, bool)
            if gate.any():
                h = crop_hyp[torch.from_numpy(gate)]
                a, b = i[rows][gate], j[rows][gate]
                forward = (h[:, 0] == 0).numpy()
                src = torch.from_numpy(np.where(forward, a, b))
                cpy = torch.from_numpy(np.where(forward, b, a))
                copies = torch.where(h[:, 1:2, None].bool(), plain[cpy].flip(-1), plain[cpy])
                window = torch.stack([h[:, 3], h[:, 4], h[:, 2]], dim=1).float()
                refined = refine_crop(plain[src] if fine is None else fine[src], copies, window, sigma=sigma)
                best[torch.from_numpy(gate)] = torch.maximum(best[torch.from_numpy(gate)], refined)
            out[rows] = best.numpy()
    finally:
        torch.set_num_threads(old_threads)
    return out
