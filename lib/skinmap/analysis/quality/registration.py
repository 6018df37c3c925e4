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
* *Windows keep the true aspect ratio.* The thumbnails squeeze every image into a square, so a copy
  that changes a non-square image's aspect ratio (a square or a tilted crop of a 4:3 photograph) is
  a rectangle of its source's thumbnail: the window's width over height is the ratio of the two
  images' aspect ratios (:func:`template_ratio`, :func:`template_shape`; 1 for two images of one
  aspect, the square windows of a plain crop), and a tilt rotates the unsqueezed picture
  (:func:`~skinmap.analysis.quality.thumbnails.orient`). A pair of two aspect ratios is searched in
  the squeezed geometry too (a copy resized to another aspect ratio, then cropped). A tilt found on
  the coarse grid is searched again at full size in quarter steps (:func:`tilt_offsets`).
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

The thumbnails and the compared signal are :mod:`~skinmap.analysis.quality.thumbnails`; the
correlation, tile agreement and crop refinement :mod:`~skinmap.analysis.quality.matching`; every
knob :class:`~skinmap.analysis.quality.verification.CopyVerificationConfig`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from skinmap.analysis.knn import knn_search
from skinmap.analysis.quality.duplicates import near_duplicate_pairs, rescored_pairs
from skinmap.analysis.quality.matching import agreement, normalized_cross_correlation, refine_crop, summed_area_tables
from skinmap.analysis.quality.thumbnails import (dihedral, highpass, image_aspects, luminance_thumbnails,
                                                 mean_pattern, orient, orientations, project_out, reduce_thumbnails,
                                                 rotation_invariant_descriptor)
from skinmap.analysis.quality.verification import CopyVerificationConfig

__all__ = ["crop_scales", "tilt_crop", "tilt_offsets", "template_ratio", "template_shape", "aspects_differ", "rotation_gate",
           "registered_similarity", "registered_candidates"]


def crop_scales(min_crop: float, step: float) -> tuple[float, ...]:
    """The crop fractions searched: 1, 1 - step, ... down to ``min_crop`` (inclusive)."""
    if not 0 < min_crop <= 1 or step <= 0:
        raise ValueError(f"need 0 < min_crop <= 1 and step > 0, got {min_crop}, {step}")
    n = int(np.floor((1.0 - min_crop) / step + 1e-9))
    return tuple(round(1.0 - i * step, 6) for i in range(n + 1))


def _oriented(images: torch.Tensor, index: torch.Tensor, table: Sequence[tuple[int, float]],
              aspect: torch.Tensor) -> torch.Tensor:
    """Each image of ``images`` (P, S, S) in its own orientation ``table[index[p]]``; ``aspect`` (P,)
    the images' true ``width / height`` (:func:`~skinmap.analysis.quality.thumbnails.orient`)."""
    out = torch.empty_like(images)
    for k in torch.unique(index).tolist():
        rows = torch.nonzero(index == k)[:, 0]
        out[rows] = orient(images[rows], *table[k], aspect=aspect[rows])
    return out


def template_ratio(code: int, fixed_aspect: torch.Tensor, moving_aspect: torch.Tensor) -> torch.Tensor:
    """Width over height, in the fixed image's thumbnail pixels, of the window a copy covers (P,).

    Thumbnails squeeze every image into a square, so a window of true aspect ``r`` in an image of
    aspect ``r_f`` spans ``r / r_f`` as many thumbnail columns as rows. The moving image (the copy)
    in dihedral orientation ``code`` has true aspect ``r_m`` (``1 / r_m`` after a quarter turn), and
    its window in the fixed image (its source) the same: the ratio is ``r_m / r_f`` (1 for two
    images of one aspect, e.g. any crop that keeps the aspect ratio)."""
    moving = moving_aspect if code % 2 == 0 else 1.0 / moving_aspect
    return moving / fixed_aspect


def template_shape(side: int, ratio: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(P,) heights and widths (px) of templates whose longer side is ``side`` and whose width over
    height is ``ratio`` (P,) (:func:`template_ratio`), each at least 2 px and at most ``size``."""
    side_t = torch.full(ratio.shape, float(side), dtype=torch.float64)
    ratio = ratio.double()
    height = torch.where(ratio > 1, side_t / ratio, side_t).round().clamp(2, size).long()
    width = torch.where(ratio > 1, side_t, side_t * ratio).round().clamp(2, size).long()
    return height, width


def tilt_crop(tilt: float) -> float:
    """Side, relative to the source, of what :func:`~skinmap.analysis.quality.thumbnails.orient`
    keeps of a copy tilted by ``tilt`` degrees and cropped to its largest upright square: the copy
    keeps ``a = 1 / (|cos| + |sin|)`` of its source and the upright square ``a`` of the copy."""
    theta = np.deg2rad(tilt)
    return float(1.0 / (abs(np.cos(theta)) + abs(np.sin(theta)))) ** 2


def _template_sides(size: int, fractions: Sequence[float], tilt: float) -> list[int]:
    """Template sides (px, the longer side of a template) searched for one orientation: 1 and each
    crop fraction of an upright copy, or of a tilted one scaled by :func:`tilt_crop`. Side ``size``
    of an upright copy is the full frame when the template is square (compared separately, so
    :func:`_search` skips it) and a crop that changes the aspect ratio when it is not (a square
    crop of a 4:3 photograph keeps its full height)."""
    if tilt:
        return sorted({min(size - 1, max(2, int(round(f * tilt_crop(tilt) * size)))) for f in [1.0, *fractions]},
                      reverse=True)
    return sorted({min(size, max(2, int(round(f * size)))) for f in [1.0, *fractions]}, reverse=True)


def _search(fixed_hp: torch.Tensor, moving: torch.Tensor, sigma: float, table: Sequence[tuple[int, float]], *,
            fixed_aspect: torch.Tensor, moving_aspect: torch.Tensor, fractions: Sequence[float] = (),
            sides: Sequence[int] | None = None, chosen: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Best NCC over orientations and template sizes for one direction; returns (P,) scores and
    (P, 4) hypotheses ``(orientation, side, dy, dx)``, ``orientation`` an index into ``table``
    (:func:`~skinmap.analysis.quality.thumbnails.orientations`). The templates' longer sides are
    1 and the crop ``fractions`` (below 1) of each orientation (:func:`_template_sides`), or the given
    ``sides``; their shapes follow each pair's true aspect ratios ``fixed_aspect``,
    ``moving_aspect`` (P,) (:func:`template_ratio`; all 1: square templates). ``chosen`` (P,)
    restricts each pair to one orientation (all of ``table`` are searched when None)."""
    p, size, _ = moving.shape
    fixed_fft = torch.fft.rfft2(fixed_hp)  # shared by every orientation and template size below
    fixed_tables = summed_area_tables(fixed_hp)
    best = torch.full((p,), -2.0)
    hyp = torch.zeros((p, 4), dtype=torch.long)
    for k in (range(len(table)) if chosen is None else (None,)):
        if k is None:
            m = _oriented(moving, chosen, table, moving_aspect)[:, None]
            flag = chosen.long()[:, None]
            ratio = torch.ones(p, dtype=torch.float64)
            for c in torch.unique(chosen).tolist():
                rows = chosen == c
                ratio[rows] = template_ratio(table[c][0], fixed_aspect[rows], moving_aspect[rows])
        else:
            m = orient(moving, *table[k], aspect=moving_aspect)[:, None]
            flag = torch.full((p, 1), k)
            ratio = template_ratio(table[k][0], fixed_aspect, moving_aspect)
        for side in (sides if sides is not None else _template_sides(size, fractions, table[k][1])):
            heights, widths = template_shape(side, ratio, size)
            shapes = torch.stack([heights, widths], 1)
            for h, w in torch.unique(shapes, dim=0).tolist():  # one batch per template shape
                if (h, w) == (size, size):
                    continue  # the full frame: compared on its own (:func:`_full_frame`)
                rows = torch.nonzero((heights == h) & (widths == w))[:, 0]
                whole = len(rows) == p
                t = F.interpolate(m if whole else m[rows], size=(h, w), mode="bicubic", antialias=True,
                                  align_corners=False)
                score, offset = normalized_cross_correlation(
                    fixed_hp if whole else fixed_hp[rows], highpass(t, sigma)[:, 0],
                    image_fft=fixed_fft if whole else fixed_fft[rows],
                    image_tables=fixed_tables if whole else tuple(x[rows] for x in fixed_tables), return_offset=True)
                better = score > best[rows]
                best[rows] = torch.where(better, score, best[rows])
                found = torch.cat([flag[rows], torch.full((len(rows), 1), side), offset], dim=1)
                hyp[rows] = torch.where(better[:, None], found, hyp[rows])
    return best, hyp


def _full_frame(a_hp: torch.Tensor, b_hp: torch.Tensor, blocks: int, codes: Sequence[int]) -> torch.Tensor:
    """:func:`agreement` of the full frames, the best of ``b`` in each right-angle orientation (P,)."""
    return torch.stack([agreement(a_hp, dihedral(b_hp, c), blocks) for c in codes]).amax(0)


@dataclass(frozen=True)
class _Frames:
    """Every thumbnail in the forms the search compares, computed once per call."""

    plain: torch.Tensor  # (n, S, S) raw thumbnails
    plain_hp: torch.Tensor  # high-passed
    pattern_hp: torch.Tensor  # (S, S) high-passed mean pattern (zeros when it is not projected out)
    framed_hp: torch.Tensor  # high-passed, mean pattern projected out: the full-frame signal
    coarse: torch.Tensor  # (n, S / coarse_factor, ...) reduced raw thumbnails
    coarse_hp: torch.Tensor  # high-passed
    fine: torch.Tensor | None  # (n, zS, zS) finer thumbnails for the crop refinement


def _frames(raw: np.ndarray, valid: np.ndarray, fine: torch.Tensor | None, config: CopyVerificationConfig) -> _Frames:
    size = raw.shape[1]
    plain = torch.from_numpy(np.ascontiguousarray(raw))
    plain_hp = highpass(plain[:, None], config.sigma)[:, 0]
    pattern = mean_pattern(raw, valid, all_orientations=config.all_right_angles)
    pattern_hp = (highpass(torch.from_numpy(pattern)[None, None], config.sigma)[0, 0]
                  if config.subtract_mean else torch.zeros(size, size))
    coarse = torch.from_numpy(reduce_thumbnails(raw, config.coarse_factor)) if config.coarse_factor > 1 else plain
    return _Frames(plain, plain_hp, pattern_hp, project_out(plain_hp, pattern_hp), coarse,
                   highpass(coarse[:, None], config.sigma)[:, 0], fine)


def _coarse_crop_search(frames: _Frames, a: torch.Tensor, b: torch.Tensor, fractions: Sequence[float],
                        sigma: float, table: Sequence[tuple[int, float]],
                        aspect: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Step (1): every direction, orientation and crop fraction on the reduced raw thumbnails (a crop
    magnifies the device pattern, so it cannot be projected out yet), templates shaped by the
    images' ``aspect`` (n,). Returns (P,) scores and (P, 5) hypotheses
    ``(direction, orientation, side, dy, dx)``, direction 0 when ``b`` is the copy."""
    crop_best = torch.full((len(a),), -2.0)
    crop_hyp = torch.zeros((len(a), 5), dtype=torch.long)
    for direction, (u, v) in enumerate(((a, b), (b, a))):
        score, hyp = _search(frames.coarse_hp[u], frames.coarse[v], sigma, table, fixed_aspect=aspect[u],
                             moving_aspect=aspect[v], fractions=fractions)
        better = score > crop_best
        crop_best = torch.where(better, score, crop_best)
        crop_hyp = torch.where(better[:, None], torch.cat([torch.full((len(a), 1), direction), hyp], 1), crop_hyp)
    return crop_best, crop_hyp


def tilt_offsets(tilt_step: float) -> tuple[float, ...]:
    """Offsets (degrees) added to a tilt found on the coarse grid before it is searched at full size:
    quarter steps within half a step either side, so that a copy tilted between two grid tilts is
    registered within ``tilt_step / 8`` of its angle (at 64 px a tilt off by half a 5-degree step
    moves the frame's edge by more than a pixel, which the high-pass signal does not survive)."""
    return tuple(round(tilt_step * q / 4, 6) for q in (-2, -1, 0, 1, 2))


def _tilt_variants(table: Sequence[tuple[int, float]], offsets: Sequence[float]) -> list[tuple[int, float]]:
    """Each orientation of ``table`` with its tilt shifted by each of ``offsets``, orientation-major
    (entry ``k * len(offsets) + m`` is ``table[k]`` shifted by ``offsets[m]``)."""
    return [(code, tilt + d) for code, tilt in table for d in offsets]


def _full_size_windows(frames: _Frames, src: torch.Tensor, cpy: torch.Tensor, hyp: torch.Tensor,
                       coarse_factor: int, sigma: float, table: Sequence[tuple[int, float]],
                       aspect: torch.Tensor, offsets: Sequence[float] = (0.0,)) -> tuple[torch.Tensor, torch.Tensor]:
    """Step (2): the found direction and orientation at full size, its tilt shifted by each of
    ``offsets`` (:func:`tilt_offsets`; ``(0,)`` for the untilted families), over the template sides
    within one coarse pixel of the found one (scaled by :func:`tilt_crop` when the tilt moves).
    Returns the (P, 4) windows ``(y0, x0, height, width)`` in the source (the template shapes of
    :func:`template_shape`) and the (P,) orientations, entries of ``_tilt_variants(table, offsets)``."""
    size = frames.plain.shape[1]
    n_pairs, n_var = len(hyp), len(offsets)
    variants = _tilt_variants(table, offsets)
    # every pair once per tilt offset, searched together (row r is pair r // n_var, offset r % n_var)
    pair = torch.arange(n_pairs).repeat_interleave(n_var)
    offset_index = torch.arange(n_var).repeat(n_pairs)
    chosen = hyp[pair, 1] * n_var + offset_index
    ratio = torch.ones(len(pair), dtype=torch.float64)
    for c in torch.unique(hyp[:, 1]).tolist():
        rows = hyp[pair, 1] == c
        ratio[rows] = template_ratio(table[c][0], aspect[src[pair[rows]]], aspect[cpy[pair[rows]]])
    scale = torch.tensor([tilt_crop(variants[k][1]) / tilt_crop(table[k // n_var][1]) for k in chosen.tolist()],
                         dtype=torch.float64)
    centre = (hyp[pair, 2] * coarse_factor * scale).round().long()
    sides = [s for s in range(int(centre.min()) - coarse_factor, int(centre.max()) + coarse_factor + 1) if 2 <= s <= size]
    fine_best = torch.full((len(pair),), -2.0)
    window = torch.zeros((len(pair), 4))
    for side in sides:
        near = torch.nonzero((centre - side).abs() <= coarse_factor)[:, 0]
        if not len(near):
            continue
        s_near, c_near = src[pair[near]], cpy[pair[near]]
        score, found = _search(frames.plain_hp[s_near], frames.plain[c_near], sigma, variants, sides=[side],
                               chosen=chosen[near], fixed_aspect=aspect[s_near], moving_aspect=aspect[c_near])
        heights, widths = template_shape(side, ratio[near], size)
        better = score > fine_best[near]
        fine_best[near] = torch.where(better, score, fine_best[near])
        window[near] = torch.where(better[:, None], torch.stack([found[:, 2], found[:, 3], heights, widths], 1).float(),
                                   window[near])
    pick = fine_best.view(n_pairs, n_var).argmax(1) + torch.arange(n_pairs) * n_var  # each pair's best offset
    return window[pick], chosen[pick]


def _orientation_families(table: Sequence[tuple[int, float]]) -> list[list[int]]:
    """Indices of ``table`` in three families searched and refined separately: upright (identity,
    mirror), the other right-angle rotations, the tilts. Refining only the overall best coarse
    hypothesis would let a spurious orientation that wins at coarse resolution hide a true upright
    crop; each family's best is refined instead and the best refined score kept."""
    families = ([k for k, (c, t) in enumerate(table) if not t and c in (0, 4)],
                [k for k, (c, t) in enumerate(table) if not t and c not in (0, 4)],
                [k for k, (c, t) in enumerate(table) if t])
    return [f for f in families if f]


def _is_upright(family: Sequence[tuple[int, float]]) -> bool:
    """Whether an orientation family holds only the identity and the horizontal mirror."""
    return all(c in (0, 4) and not t for c, t in family)


def _score_batch(frames: _Frames, a: torch.Tensor, b: torch.Tensor, fractions: Sequence[float],
                 config: CopyVerificationConfig, rotated: torch.Tensor | None = None,
                 aspect: torch.Tensor | None = None) -> torch.Tensor:
    """``s(a, b)`` for one batch of pairs: the full frames, then the crop steps (1)-(3) per
    orientation family (:func:`_orientation_families`). ``rotated`` (P,) bool: the pairs whose
    rotated and tilted crops are searched (all when None; :func:`rotation_gate`). ``aspect`` (n,):
    the images' true aspect ratios, which shape the crop and tilt hypotheses (None: all 1, the
    squeezed thumbnails' square geometry)."""
    aspect = torch.ones(len(frames.plain), dtype=torch.float64) if aspect is None else aspect
    table = orientations(config.all_right_angles, config.max_tilt, config.tilt_step)
    best = _full_frame(frames.framed_hp[a], frames.framed_hp[b], config.blocks,
                       sorted({code for code, tilt in table if not tilt}))
    if not config.refine:
        return best
    for family in _orientation_families(table):
        sub = [table[k] for k in family]
        if not fractions and not any(t for _, t in sub):
            continue  # no crop fraction below 1 and no tilt: the full frames decided it
        rows = (torch.arange(len(a)) if rotated is None or _is_upright(sub)
                else torch.nonzero(rotated)[:, 0])
        if not len(rows):
            continue
        fa, fb = a[rows], b[rows]
        crop_best, hyp = _coarse_crop_search(frames, fa, fb, fractions, config.sigma, sub, aspect)
        gate = (crop_best >= config.refine_gate) & (best[rows] < 0.99)  # full frames already a match: nothing to refine
        if not gate.any():
            continue
        h = hyp[gate]
        forward = h[:, 0] == 0
        src = torch.where(forward, fa[gate], fb[gate])
        cpy = torch.where(forward, fb[gate], fa[gate])
        offsets = tilt_offsets(config.tilt_step) if any(t for _, t in sub) else (0.0,)
        window, orientation = _full_size_windows(frames, src, cpy, h, config.coarse_factor, config.sigma, sub, aspect,
                                                 offsets)
        # (3) sub-pixel refinement in the copy's frame
        copies = _oriented(frames.plain[cpy], orientation, _tilt_variants(sub, offsets), aspect[cpy])
        refined = refine_crop(frames.plain[src] if frames.fine is None else frames.fine[src], copies, window,
                              sigma=config.sigma, pattern=frames.pattern_hp if config.subtract_mean else None,
                              blocks=config.blocks)
        target = rows[gate]
        best[target] = torch.maximum(best[target], refined)
    return best


def aspects_differ(aspects: np.ndarray, pairs_i: np.ndarray, pairs_j: np.ndarray, size: int) -> np.ndarray:
    """(P,) bool: the pairs whose two images' aspect ratios (``aspects`` (n,), width / height) differ
    by more than a thumbnail pixel in ``size`` (``|log(r_i / r_j)| > 1 / size``). Only these pairs
    are searched a second time as squeezed square thumbnails (a copy resized to another aspect
    ratio, then cropped): for the others the two geometries give the same upright templates."""
    a = np.asarray(aspects, np.float64)
    return np.abs(np.log(a[np.asarray(pairs_i, np.int64)] / a[np.asarray(pairs_j, np.int64)])) > 1.0 / size


def _centre_crops(thumbnails: np.ndarray, scales: Sequence[float]) -> np.ndarray:
    """(len(scales) * n, S, S): every thumbnail's centred crop of relative side ``scale``,
    resampled to S x S (bicubic, antialiased), scale-major."""
    x = torch.from_numpy(np.ascontiguousarray(thumbnails, np.float32))[:, None]
    size = x.shape[-1]
    out = []
    for scale in scales:
        side = min(size, max(2, int(round(scale * size))))
        lo = (size - side) // 2
        crop = x[..., lo:lo + side, lo:lo + side]
        out.append(crop if side == size else F.interpolate(crop, size=(size, size), mode="bicubic", antialias=True,
                                                           align_corners=False))
    return torch.cat(out)[:, 0].numpy()


def rotation_gate(thumbnails: np.ndarray, pairs_i: Sequence[int], pairs_j: Sequence[int], rank: int, *,
                  min_crop: float = 0.85, sigma: float = 1.0, valid: np.ndarray | None = None) -> np.ndarray:
    """Which pairs earn the rotated and tilted crop search: one image is among the other's ``rank``
    nearest images by the rotation-invariant descriptor
    (:func:`~skinmap.analysis.quality.thumbnails.rotation_invariant_descriptor`), each image
    described at three centred crops (relative side 1, ``(1 + min_crop) / 2`` and ``min_crop``, the
    range the crop search models) and two images as close as their closest views. A copy in any
    orientation keeps its source's descriptor up to resampling, and a cropped or tilted copy (a
    tilt is cropped) the descriptor of the source's matching crop, so it ranks among its source's
    nearest; a pair the descriptor does not rank close is compared upright (and its full frames in
    every right-angle orientation) only.

    Parameters
    ----------
    thumbnails : ndarray of shape (n, S, S)
    pairs_i, pairs_j : sequences of P row indices
    rank : int
        Neighbour images per image (>= 1); ``rank >= n - 1`` passes every pair.

    Returns
    -------
    ndarray of shape (P,), bool
    """
    i = np.asarray(pairs_i, np.int64)
    j = np.asarray(pairs_j, np.int64)
    valid = np.ones(len(thumbnails), bool) if valid is None else np.asarray(valid, bool)
    rows = np.flatnonzero(valid)
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    if len(rows) - 1 <= rank:
        return np.ones(i.shape, bool)
    scales = sorted({1.0, round((1.0 + min_crop) / 2, 6), float(min_crop)}, reverse=True)
    views = _centre_crops(np.asarray(thumbnails, np.float32)[rows], scales)
    descriptor = rotation_invariant_descriptor(views, sigma=sigma)
    owner = np.tile(rows, len(scales))  # image of each view
    textured = np.linalg.norm(descriptor, axis=1) > 0.5  # a flat view has no detail to register (zero descriptor)
    descriptor, owner = descriptor[textured], owner[textured]
    if len(np.unique(owner)) - 1 <= rank:
        return np.ones(i.shape, bool)
    k = min(len(descriptor) - 1, len(scales) * (rank + 1))  # enough views for `rank` other images
    near = knn_search(descriptor, descriptor, k, exclude_self=True)
    # per image: its other images by their best view-to-view similarity, the first `rank` kept
    query = np.repeat(owner, near.indices.shape[1])
    other = owner[np.where(near.indices >= 0, near.indices, 0)].ravel()
    sims = np.where(near.indices >= 0, near.similarities, -np.inf).ravel()
    table = pd.DataFrame({"q": query, "o": other, "s": sims})
    table = table[(table["q"] != table["o"]) & np.isfinite(table["s"])]
    table = table.groupby(["q", "o"], as_index=False)["s"].max().sort_values(["q", "s"], ascending=[True, False])
    table = table.groupby("q").head(rank)
    n = len(thumbnails)
    a, b = table["q"].to_numpy(np.int64), table["o"].to_numpy(np.int64)
    codes = np.unique(np.minimum(a, b) * n + np.maximum(a, b))
    return np.isin(np.minimum(i, j) * n + np.maximum(i, j), codes)


def registered_similarity(
    thumbnails: np.ndarray,
    pairs_i: Sequence[int],
    pairs_j: Sequence[int],
    config: CopyVerificationConfig | None = None,
    *,
    fine_thumbnails: np.ndarray | None = None,
    valid: np.ndarray | None = None,
    rotated: np.ndarray | None = None,
    aspects: np.ndarray | None = None,
    batch_size: int = 256,
    progress: bool = True,
) -> np.ndarray:
    """``s(i, j)`` of the module docstring for every pair, float32 in [-1, 1] (NaN where an image
    is not ``valid``, e.g. unreadable).

    ``thumbnails`` (n, S, S) from :func:`~skinmap.analysis.quality.thumbnails.luminance_thumbnails`;
    ``config`` (default :class:`~skinmap.analysis.quality.verification.CopyVerificationConfig()`)
    sets the crop fractions searched (``min_crop``, ``crop_step``), the high-pass scale ``sigma``
    (thumbnail pixels), ``subtract_mean`` (project the valid images' mean pattern out of every
    compared frame), ``blocks`` (score every registered frame by
    :func:`~skinmap.analysis.quality.matching.agreement` over ``blocks x blocks`` tiles),
    ``refine``, ``refine_gate``, ``coarse_factor`` and ``threads``; its ``size`` is not used here
    (the thumbnails give S).

    The score is the better of two: the full frames compared as they are (and mirrored), which
    decides exact, mirrored and re-coloured copies; and, with ``refine``, the best crop hypothesis
    refined in the copy's frame (:func:`~skinmap.analysis.quality.matching.refine_crop`). Crop
    hypotheses are searched in three steps, so that the expensive ones run on few pairs: (1) every
    direction, mirror and crop fraction on thumbnails reduced by ``coarse_factor`` (an S/2 search
    costs ~1/10 of an S one); (2) for pairs whose coarse crop score reaches ``refine_gate`` and
    whose full frames are not already a match (< 0.99), the found direction and mirror at full size
    over the template sides within one coarse pixel of the found one; (3) the sub-pixel refinement,
    sampling the source from ``fine_thumbnails`` (n, 2S, 2S) when given. ``threads`` caps torch's
    intra-op threads for the call (small FFTs lose time to thread hand-offs: one thread was
    measured ~20x faster than two on a busy 2-core machine).

    The rotated and tilted crop searches (most of the cost when ``all_right_angles`` or
    ``max_tilt``) run only for the pairs in ``rotated`` (P,) bool; when None, for the pairs
    :func:`rotation_gate` passes at ``config.rotation_rank`` (every pair when it is 0).

    ``aspects`` (n,) are the images' true ``width / height``
    (:func:`~skinmap.analysis.quality.thumbnails.image_aspects`). The thumbnails squeeze every image
    into a square; with ``config.keep_aspect`` the crop and tilt hypotheses are made in the
    images' true geometry: a copy's window in its source is a ``template_shape`` rectangle of
    width over height :func:`template_ratio` (a square crop of a 4:3 photograph is a 3:4 window of
    its thumbnail) and a tilt rotates the unsqueezed picture
    (:func:`~skinmap.analysis.quality.thumbnails.orient`). Pairs whose aspect ratios differ
    (:func:`aspects_differ`) are searched a second time in the squeezed geometry (a copy resized
    to another aspect ratio), the better score kept. Without ``aspects`` (or ``keep_aspect``
    False) every image counts as square: the squeezed geometry only.
    """
    config = CopyVerificationConfig() if config is None else config
    raw = np.asarray(thumbnails, np.float32)
    if raw.ndim != 3 or raw.shape[1] != raw.shape[2]:
        raise ValueError(f"thumbnails must be (n, S, S), got shape {raw.shape}")
    i = np.asarray(pairs_i, np.int64)
    j = np.asarray(pairs_j, np.int64)
    if i.shape != j.shape:
        raise ValueError("pairs_i and pairs_j differ in length")
    if i.size and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= len(raw)):
        raise IndexError("pair index out of range")
    if raw.shape[1] % config.coarse_factor:
        raise ValueError(f"coarse_factor {config.coarse_factor} must divide the thumbnail side {raw.shape[1]}")
    valid = np.ones(len(raw), bool) if valid is None else np.asarray(valid, bool)
    size = raw.shape[1]
    fractions = [f for f in crop_scales(config.min_crop, config.crop_step) if f < 1]
    fine = None
    if fine_thumbnails is not None:
        fine = torch.from_numpy(np.ascontiguousarray(fine_thumbnails, np.float32))
        if fine.shape[0] != len(raw) or fine.ndim != 3 or fine.shape[1] != fine.shape[2] or fine.shape[1] % size:
            raise ValueError(f"fine_thumbnails must be (n, zS, zS) for S = {size}, got {tuple(fine.shape)}")
    searches_rotations = any(not _is_upright([o]) for o in orientations(config.all_right_angles, config.max_tilt,
                                                                         config.tilt_step))
    if rotated is None and searches_rotations and config.rotation_rank > 0 and i.size:
        rotated = rotation_gate(raw, i, j, config.rotation_rank, min_crop=config.min_crop, sigma=config.sigma,
                                valid=valid)
    if rotated is not None:
        rotated = np.asarray(rotated, bool)
        if rotated.shape != i.shape:
            raise ValueError(f"rotated must have one entry per pair ({i.size}), got shape {rotated.shape}")
    aspect, squeezed = None, np.zeros(i.shape, bool)
    if aspects is not None and config.keep_aspect:
        aspects = np.asarray(aspects, np.float64)
        if aspects.shape != (len(raw),) or not (np.isfinite(aspects) & (aspects > 0)).all():
            raise ValueError(f"aspects must be ({len(raw)},) positive ratios, got shape {aspects.shape}")
        aspect = torch.from_numpy(aspects)
        squeezed = aspects_differ(aspects, i, j, size) if i.size else squeezed
    out = np.full(i.size, np.nan, np.float32)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        frames = _frames(raw, valid, fine, config)
        todo = np.flatnonzero(valid[i] & valid[j]) if i.size else np.zeros(0, np.int64)
        if aspect is not None:  # batches of one pair of aspect ratios share their template shapes (fewer, larger FFTs)
            todo = todo[np.lexsort((np.round(np.log(aspects[j[todo]]), 3), np.round(np.log(aspects[i[todo]]), 3)))]
        for start in tqdm(range(0, todo.size, batch_size), desc="registering pairs", disable=not progress,
                          leave=False):
            rows = todo[start:start + batch_size]
            best = _score_batch(frames, torch.from_numpy(i[rows]), torch.from_numpy(j[rows]), fractions, config,
                                None if rotated is None else torch.from_numpy(rotated[rows]), aspect)
            out[rows] = best.numpy()
        again = todo[squeezed[todo]]  # two aspect ratios: a copy resized to another one, in the squeezed geometry
        for start in range(0, again.size, batch_size):
            rows = again[start:start + batch_size]
            best = _score_batch(frames, torch.from_numpy(i[rows]), torch.from_numpy(j[rows]), fractions, config,
                                None if rotated is None else torch.from_numpy(rotated[rows]))
            out[rows] = np.maximum(out[rows], best.numpy())
    finally:
        torch.set_num_threads(old_threads)
    return out


def registered_candidates(
    vectors: np.ndarray, paths: Sequence, config: CopyVerificationConfig | None = None, *, progress: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Candidate duplicate pairs from an embedding, rescored by registered pixel correlation.

    The candidates are each image's ``config.n_candidates`` nearest neighbours in ``vectors`` (one
    row per image of ``paths``; e.g. the mirror-averaged, unwhitened embedding) with similarity at
    least ``config.candidate_floor`` (:func:`~skinmap.analysis.quality.duplicates.near_duplicate_pairs`).
    When the search covers rotations (``config.all_right_angles`` or ``config.max_tilt``), each
    image's ``config.n_candidates`` nearest neighbours by the rotation-invariant thumbnail descriptor
    (:func:`~skinmap.analysis.quality.thumbnails.rotation_invariant_descriptor`) join them: an
    embedding of upright images need not rank a rotated copy close. Each image is read as a
    ``2 * config.size`` luminance thumbnail (the finer one refines crops), its aspect ratio read
    (:func:`~skinmap.analysis.quality.thumbnails.image_aspects`), and every candidate pair scored by
    :func:`registered_similarity`.

    Returns ``(candidates, scored, readable)``: the candidate pairs ``i, j, similarity`` (the
    embedding's similarity; NaN for a pair only the descriptor proposed) and ``source`` (``embedding``,
    ``rotation`` or ``both``); the pairs rescored (:func:`~skinmap.analysis.quality.duplicates.rescored_pairs`:
    ``similarity`` registered, ``embedding_similarity`` kept; pairs with an unreadable image dropped);
    the mask of readable images. ``scored.attrs["registration"]`` holds the cost: ``seconds`` of
    the gate and registration (wall clock; reading the thumbnails excluded), ``cpu_seconds`` (the
process's CPU time over the same step: what a loaded machine does not inflate), ``pairs`` registered
    and ``squeezed_searched``, the pairs of two aspect ratios also searched as squeezed thumbnails
    (with ``config.keep_aspect``; :func:`aspects_differ`), and ``rotation_searched``, the pairs
    searched for rotated and tilted crops: with
    ``config.rotation_rank`` >= 1, those :func:`rotation_gate` passes and each image's nearest
    neighbour in ``vectors`` (the single likeliest copy by the embedding, which the descriptor, not
    crop-robust, can miss); every pair when it is 0.
    """
    config = CopyVerificationConfig() if config is None else config
    if len(vectors) != len(paths):
        raise ValueError(f"{len(vectors)} vectors but {len(paths)} paths")
    candidates = near_duplicate_pairs(vectors, config.candidate_floor, n_neighbors=config.n_candidates)
    fine, readable = luminance_thumbnails(list(paths), 2 * config.size)  # 2x: crop refinement
    aspects = image_aspects(list(paths))
    coarse = reduce_thumbnails(fine)
    candidates = candidates.assign(source="embedding")
    if (config.all_right_angles or config.max_tilt > 0) and readable.sum() > 1:
        rows = np.flatnonzero(readable)
        descriptor = rotation_invariant_descriptor(coarse[rows], sigma=config.sigma)
        rotated = near_duplicate_pairs(descriptor, 1e-6, n_neighbors=config.n_candidates)
        i, j = rows[rotated["i"].to_numpy()], rows[rotated["j"].to_numpy()]
        rotated = pd.DataFrame({"i": np.minimum(i, j), "j": np.maximum(i, j)})
        merged = candidates.merge(rotated.assign(rot=True), on=["i", "j"], how="outer")
        merged["source"] = np.where(merged["source"].isna(), "rotation",
                                    np.where(merged["rot"].eq(True), "both", "embedding"))
        candidates = (merged.drop(columns="rot").sort_values(["similarity", "i", "j"], ascending=[False, True, True],
                                                              na_position="last").reset_index(drop=True))
        candidates[["i", "j"]] = candidates[["i", "j"]].astype(np.int64)
    i, j = candidates["i"].to_numpy(), candidates["j"].to_numpy()
    start, start_cpu = time.perf_counter(), time.process_time()
    searches_rotations = any(not _is_upright([o]) for o in orientations(config.all_right_angles, config.max_tilt,
                                                                         config.tilt_step))
    rotated = (rotation_gate(coarse, i, j, config.rotation_rank, min_crop=config.min_crop, sigma=config.sigma,
                             valid=readable)
               if searches_rotations and config.rotation_rank > 0 and len(i) else np.full(len(i), searches_rotations))
    if searches_rotations and config.rotation_rank > 0 and len(i):  # and each image's nearest embedding neighbour
        nearest = near_duplicate_pairs(vectors, config.candidate_floor, n_neighbors=1)
        n = len(paths)
        rotated |= np.isin(i * n + j, nearest["i"].to_numpy(np.int64) * n + nearest["j"].to_numpy(np.int64))
    scores = registered_similarity(coarse, i, j, config, fine_thumbnails=fine, valid=readable, rotated=rotated,
                                   aspects=aspects, progress=progress)
    scored = rescored_pairs(candidates, scores)
    squeezed = int(aspects_differ(aspects, i, j, config.size).sum()) if config.keep_aspect and len(i) else 0
    scored.attrs["registration"] = {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - start_cpu,
                                    "pairs": int(len(i)), "rotation_searched": int(rotated.sum()),
                                    "squeezed_searched": squeezed}
    return candidates, scored, readable
