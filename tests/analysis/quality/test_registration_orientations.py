"""Copies in any orientation: right-angle rotations, flips on either axis and small tilts with a
crop, found on pixels at the default settings, while look-alikes (other lesions of the same kind)
stay below the acceptance floor. Independent of the demo atlas: the images are rendered here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from skinmap.analysis.quality import registration, thumbnails
from skinmap.analysis.quality.verification import CopyVerificationConfig

SIDE = 256


def _field(rng, sigma_px):
    """A smooth random field in [0, 1] (Gaussian-filtered white noise, via FFT)."""
    f = np.fft.fftfreq(SIDE)
    kernel = np.exp(-2 * (np.pi * sigma_px) ** 2 * (f[:, None] ** 2 + f[None] ** 2))
    x = np.fft.ifft2(np.fft.fft2(rng.normal(size=(SIDE, SIDE))) * kernel).real
    return (x - x.min()) / (x.max() - x.min())


def _lesion(shape_seed: int, detail_seed: int) -> Image.Image:
    """A lesion-like picture: an irregular blob (from ``shape_seed``) on skin with fine texture
    (from ``detail_seed``). Renders with other seeds are look-alikes (same kind, same colours and
    size), not copies."""
    shape, detail = np.random.default_rng(shape_seed), np.random.default_rng(detail_seed)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / SIDE - 0.5
    blob = (np.hypot(yy * 1.3, xx) + 0.12 * (_field(shape, 18) - 0.5)) < 0.28
    texture = 0.55 * _field(detail, 1.5) + 0.45 * _field(detail, 4)
    skin = np.array([0.85, 0.67, 0.55]) * (0.9 + 0.1 * texture[..., None])
    lesion = np.array([0.45, 0.28, 0.2]) * (0.7 + 0.6 * texture[..., None])
    img = np.where(blob[..., None], lesion, skin)
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


def _tilted(img: Image.Image, degrees: float) -> Image.Image:
    """Rotate by ``degrees`` and keep the largest upright square without black corners."""
    rot = img.rotate(degrees, resample=Image.Resampling.BICUBIC)
    keep = SIDE / (abs(np.cos(np.deg2rad(degrees))) + abs(np.sin(np.deg2rad(degrees))))
    lo = (SIDE - keep) / 2
    return rot.crop((round(lo), round(lo), round(lo + keep), round(lo + keep))).resize((SIDE, SIDE), Image.Resampling.BICUBIC)


TRANSFORMS = {
    "rot90": lambda im: im.transpose(Image.Transpose.ROTATE_90),
    "rot180": lambda im: im.transpose(Image.Transpose.ROTATE_180),
    "rot270": lambda im: im.transpose(Image.Transpose.ROTATE_270),
    "flip_vertical": lambda im: im.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    "transpose": lambda im: im.transpose(Image.Transpose.TRANSPOSE),
    "tilt_7_crop": lambda im: _tilted(im, 7),
    "tilt_minus_9_crop_mirror": lambda im: _tilted(im, -9).transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "rot90_crop_jpeg": lambda im: im.transpose(Image.Transpose.ROTATE_90).crop((20, 10, 240, 230)),
}


def _thumbs(images, tmp_path):
    paths = []
    for k, im in enumerate(images):
        paths.append(tmp_path / f"{k}.jpg")
        im.save(paths[-1], quality=90)
    fine, ok = thumbnails.luminance_thumbnails(paths, 128)
    assert ok.all()
    return fine


def test_dihedral_codes_are_the_eight_distinct_symmetries():
    x = torch.arange(16.0).reshape(1, 4, 4)
    outs = {thumbnails.dihedral(x, c).numpy().tobytes() for c in range(8)}
    assert len(outs) == 8
    assert torch.equal(thumbnails.dihedral(x, 4), x.flip(-1))
    assert torch.equal(thumbnails.dihedral(x, 2), x.flip(-1).flip(-2))  # half turn
    with pytest.raises(ValueError):
        thumbnails.dihedral(x, 8)


def test_orientations_table():
    assert thumbnails.orientations(False, 0) == [(0, 0.0), (4, 0.0)]
    table = thumbnails.orientations(True, 10, 5)
    assert [c for c, t in table if not t] == list(range(8))
    assert sorted(t for c, t in table if c == 0 and t) == [-10, -5, 5, 10]


def test_tilt_crop_closed_form():
    # 45 degrees: the upright square of a square rotated by 45 has side 1/sqrt(2), twice over
    assert registration.tilt_crop(45) == pytest.approx(0.5)
    assert registration.tilt_crop(0) == 1.0


def test_rotation_invariant_descriptor_ignores_right_angles_and_mirrors():
    rng = np.random.default_rng(3)
    x = rng.random((4, 32, 32)).astype(np.float32)
    views = np.concatenate([x, np.rot90(x, 1, (1, 2)), x[:, :, ::-1], np.rot90(x, 2, (1, 2)) * 0.5 + 0.2])
    d = thumbnails.rotation_invariant_descriptor(np.ascontiguousarray(views))
    sims = d[:4] @ d[4:].T
    for block in range(3):
        assert np.allclose(np.diag(sims[:, 4 * block:4 * block + 4]), 1.0, atol=1e-4)


@pytest.mark.slow
def test_copies_in_any_orientation_are_found_and_lookalikes_are_not(tmp_path):
    sources = [_lesion(s, 100 + s) for s in range(3)]
    lookalikes = [_lesion(50 + s, 200 + s) for s in range(3)]  # same kind of lesion, another picture
    copies = [(name, k, fn(sources[k])) for k, name in enumerate(TRANSFORMS) for fn in [TRANSFORMS[name]]
              for k in [k % len(sources)]]
    images = sources + lookalikes + [im for _, _, im in copies]
    fine = _thumbs(images, tmp_path)
    n_src, n_look = len(sources), len(lookalikes)
    copy_i = [k for _, k, _ in copies]
    copy_j = [n_src + n_look + t for t in range(len(copies))]
    look_i = list(range(n_src)) + [k for _, k, _ in copies]
    look_j = [n_src + k for k in range(n_src)] + [n_src + k for _, k, _ in copies]
    config = CopyVerificationConfig()  # the defaults every profile uses
    scores = registration.registered_similarity(thumbnails.reduce_thumbnails(fine), copy_i + look_i,
                                                copy_j + [j if i != j else j for i, j in zip(look_i, look_j)],
                                                config, fine_thumbnails=fine, progress=False)
    copy_scores = dict(zip(TRANSFORMS, scores[:len(copies)]))
    look_scores = scores[len(copies):]
    # accepted at the profiles' ratio floor at least (0.65), and above every look-alike
    assert min(copy_scores.values()) >= 0.65, copy_scores
    assert look_scores.max() < min(copy_scores.values()), (look_scores, copy_scores)
    assert look_scores.max() < 0.65, look_scores
    # the old search (identity and horizontal mirror only) misses the rotated ones
    old = CopyVerificationConfig(all_right_angles=False, max_tilt=0)
    rot = [name for name in TRANSFORMS if name.startswith("rot9") or name == "transpose"]
    rows = [list(TRANSFORMS).index(name) for name in rot]
    old_scores = registration.registered_similarity(thumbnails.reduce_thumbnails(fine), [copy_i[r] for r in rows],
                                                    [copy_j[r] for r in rows], old, fine_thumbnails=fine,
                                                    progress=False)
    assert old_scores.max() < 0.65, dict(zip(rot, old_scores))


def test_rotation_gate_is_the_brute_force_descriptor_rank(rng):
    """The gate passes a pair exactly when one image is among the other's ``rank`` nearest images,
    two images as close as their closest centred-crop views (brute force over all view pairs), and
    a rotated copy passes with its source."""
    x = rng.random((9, 32, 32)).astype(np.float32)
    x[8] = np.rot90(x[2], 1)  # a copy of image 2, rotated
    scales = [1.0, 0.925, 0.85]
    views = registration._centre_crops(x, scales)
    d = thumbnails.rotation_invariant_descriptor(views)
    n = len(x)
    sim = (d @ d.T).reshape(len(scales), n, len(scales), n).max(axis=(0, 2))
    np.fill_diagonal(sim, -np.inf)
    rank = 2
    top = {(a, int(b)) for a in range(n) for b in np.argsort(-sim[a], kind="stable")[:rank]}
    i, j = np.triu_indices(n, 1)
    want = np.array([(a, b) in top or (b, a) in top for a, b in zip(i, j)])
    got = registration.rotation_gate(x, i, j, rank, min_crop=0.85, sigma=1.0)
    assert got.tolist() == want.tolist()
    assert got[(i == 2) & (j == 8)].all()  # the rotated copy passes
    assert 0 < got.sum() < len(got)  # and the gate does cut pairs
    assert registration.rotation_gate(x, i, j, n - 1).all()  # a rank covering everyone passes every pair
    with pytest.raises(ValueError):
        registration.rotation_gate(x, i, j, 0)

    # the default rank is the descriptor's own candidate rank
    assert CopyVerificationConfig().rotation_rank == CopyVerificationConfig().n_candidates
