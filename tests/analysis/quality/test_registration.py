"""Registered pixel correlation: FFT machinery vs brute force, invariances, planted copies, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from skinmap.analysis.quality import duplicates, matching, registration, thumbnails
from skinmap.analysis.quality.verification import CopyVerificationConfig


def _brute_ncc(image: np.ndarray, template: np.ndarray) -> float:
    h, w = template.shape
    t = template - template.mean()
    best = -np.inf
    for dy in range(image.shape[0] - h + 1):
        for dx in range(image.shape[1] - w + 1):
            win = image[dy:dy + h, dx:dx + w]
            win = win - win.mean()
            den = np.linalg.norm(win) * np.linalg.norm(t)
            best = max(best, float((win * t).sum() / den) if den > 1e-6 else 0.0)
    return best


def test_ncc_matches_brute_force():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, 12, 12)).astype(np.float32)
    templates = rng.normal(size=(3, 9, 9)).astype(np.float32)
    templates[1] = images[1, 2:11, 1:10] * 3.0 + 1.0  # an affine copy of a window: NCC exactly 1
    got = matching.normalized_cross_correlation(torch.from_numpy(images), torch.from_numpy(templates)).numpy()
    want = [_brute_ncc(images[k], templates[k]) for k in range(3)]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert got[1] == pytest.approx(1.0, abs=1e-5)


def test_flat_template_is_zero_not_nan():
    image = torch.rand(1, 8, 8)
    flat = torch.full((1, 6, 6), 0.5)
    assert matching.normalized_cross_correlation(image, flat).item() == 0.0


def test_crop_scales():
    assert registration.crop_scales(0.85, 0.05) == (1.0, 0.95, 0.9, 0.85)
    assert registration.crop_scales(1.0, 0.1) == (1.0,)
    with pytest.raises(ValueError):
        registration.crop_scales(0.0, 0.1)


def _texture(rng, size=96, detail=0.15):
    """A smooth 'lesion' shared by look-alikes plus fine detail drawn anew per image."""
    yy, xx = np.mgrid[-1:1:complex(0, size), -1:1:complex(0, size)]
    base = 0.5 + 0.3 * np.exp(-(xx**2 + yy**2) / 0.2)
    return base, lambda: np.clip(base + detail * rng.normal(size=base.shape), 0, 1)


def _save(arr, path):
    Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8), "L").convert("RGB").save(path)
    return str(path)


@pytest.fixture
def planted(tmp_path):
    rng = np.random.default_rng(1)
    _, draw = _texture(rng)
    source = draw()
    src = Image.fromarray((source * 255).astype(np.uint8), "L")
    files = {
        "source": _save(source, tmp_path / "source.png"),
        "mirror": _save(source[:, ::-1], tmp_path / "mirror.png"),
        "jitter": _save(0.8 * source + 0.1, tmp_path / "jitter.png"),
        "lookalike": _save(draw(), tmp_path / "lookalike.png"),
        "lookalike2": _save(draw(), tmp_path / "lookalike2.png"),
    }
    crop = src.crop((4, 6, 4 + 86, 6 + 86)).resize((96, 96), Image.Resampling.BICUBIC)  # a 90 % crop
    crop.convert("RGB").save(tmp_path / "crop.png")
    files["crop"] = str(tmp_path / "crop.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    files["broken"] = str(tmp_path / "broken.png")
    return files


def test_registered_similarity_on_planted_copies(planted):
    names = list(planted)
    fine, ok = thumbnails.luminance_thumbnails([planted[n] for n in names], 128)
    thumbs = thumbnails.reduce_thumbnails(fine)
    assert ok.tolist() == [n != "broken" for n in names]
    pos = {n: k for k, n in enumerate(names)}
    pairs = [("source", "mirror"), ("source", "jitter"), ("source", "crop"), ("source", "lookalike"),
             ("lookalike", "lookalike2"), ("source", "broken")]
    s = registration.registered_similarity(thumbs, [pos[a] for a, _ in pairs], [pos[b] for _, b in pairs],
                                           valid=ok, fine_thumbnails=fine, progress=False)
    score = dict(zip(pairs, s))
    # mirror and affine brightness/contrast: the same pixels up to the searched transforms
    assert score[("source", "mirror")] > 0.99
    assert score[("source", "jitter")] > 0.99
    # look-alikes share the smooth picture but not its detail: the high-pass correlation stays low
    assert score[("source", "lookalike")] < 0.3 and score[("lookalike", "lookalike2")] < 0.3
    # a crop is found: scored in the copy's frame after sub-pixel refinement from the finer source
    assert score[("source", "crop")] > 0.9
    coarse = registration.registered_similarity(thumbs, [pos["source"]], [pos["crop"]],
                                                CopyVerificationConfig(refine=False), progress=False)
    assert coarse[0] < score[("source", "crop")]  # shrinking the copy onto its source loses detail
    assert np.isnan(score[("source", "broken")])


def test_symmetric_in_pair_order(planted):
    thumbs, ok = thumbnails.luminance_thumbnails([planted["source"], planted["crop"]], 64)
    ab = registration.registered_similarity(thumbs, [0], [1], progress=False)
    ba = registration.registered_similarity(thumbs, [1], [0], progress=False)
    assert ab[0] == pytest.approx(ba[0], abs=1e-6)


def test_bad_arguments():
    thumbs = np.zeros((2, 8, 8), np.float32)
    with pytest.raises(IndexError):
        registration.registered_similarity(thumbs, [0], [2], progress=False)
    with pytest.raises(ValueError):
        registration.registered_similarity(thumbs, [0], [1], CopyVerificationConfig(min_crop=1.2), progress=False)
    with pytest.raises(ValueError):
        registration.registered_similarity(np.zeros((2, 8, 9)), [0], [1], progress=False)
    assert registration.registered_similarity(thumbs, [], [], progress=False).shape == (0,)


def test_rescored_and_thresholded_pairs():
    cand = pd.DataFrame({"i": [0, 0, 1, 2], "j": [1, 2, 2, 3], "similarity": [0.9, 0.8, 0.7, 0.6]})
    scored = duplicates.rescored_pairs(cand, np.array([0.2, 0.97, np.nan, 0.99], np.float32))
    assert scored[["i", "j"]].values.tolist() == [[2, 3], [0, 2], [0, 1]]  # NaN dropped, by score
    assert scored["embedding_similarity"].tolist() == pytest.approx([0.6, 0.8, 0.9])
    kept = duplicates.thresholded(scored, 0.95, n_candidates=2)
    assert kept[["i", "j"]].values.tolist() == [[2, 3], [0, 2]]
    assert kept.attrs["saturated"] == 1  # image 2 kept both of its 2 candidates: its list may be incomplete
    kept1 = duplicates.thresholded(scored, 0.95, n_candidates=1)
    assert kept1.attrs["saturated"] == 3  # images 0, 2, 3 each kept >= 1 pair
    with pytest.raises(ValueError):
        duplicates.rescored_pairs(cand, np.zeros(3))


def test_refine_crop_recovers_the_identity_window():
    rng = np.random.default_rng(3)
    img = torch.from_numpy(rng.random((2, 32, 32)).astype(np.float32))
    window = torch.tensor([[0.0, 0.0, 32.0], [0.0, 0.0, 32.0]])
    # the window that is the whole frame resamples the image onto itself: NCC 1
    score = matching.refine_crop(img, img, window, sigma=1.0, offsets=(0.0,), rel_sizes=(1.0,))
    np.testing.assert_allclose(score.numpy(), 1.0, atol=1e-5)
    # an unrelated image stays near 0
    other = torch.from_numpy(rng.random((2, 32, 32)).astype(np.float32))
    assert matching.refine_crop(img, other, window, sigma=1.0).abs().max() < 0.3


def test_mean_pattern_projection_keeps_mirrors_exact():
    rng = np.random.default_rng(4)
    x = rng.random((5, 8, 8)).astype(np.float32)
    x[1] = x[0, :, ::-1]
    m = thumbnails.mean_pattern(x)
    np.testing.assert_allclose(m, m[:, ::-1])  # symmetrised
    np.testing.assert_allclose(m, (x.mean(0) + x.mean(0)[:, ::-1]) / 2, atol=1e-6)
    y = thumbnails.project_out(torch.from_numpy(x), torch.from_numpy(m)).numpy()
    np.testing.assert_allclose(y[1], y[0, :, ::-1], atol=1e-6)
    np.testing.assert_allclose(thumbnails.mean_pattern(x, np.zeros(5, bool)), 0)


def test_project_out_removes_only_the_pattern():
    rng = np.random.default_rng(5)
    pattern = rng.normal(size=(6, 6))
    other = rng.normal(size=(6, 6))
    other -= (other * pattern).sum() / (pattern * pattern).sum() * pattern  # orthogonal to the pattern
    images = torch.tensor(np.stack([other, other + 2.5 * pattern, 3.0 * pattern]), dtype=torch.float32)
    got = thumbnails.project_out(images, torch.tensor(pattern, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(got[0], other, atol=1e-5)  # an image without the pattern is untouched
    np.testing.assert_allclose(got[1], other, atol=1e-5)  # the pattern's share, whatever its amount, is removed
    np.testing.assert_allclose(got[2], 0, atol=1e-5)
    np.testing.assert_allclose(thumbnails.project_out(images, torch.zeros(6, 6)).numpy(), images.numpy())


def test_highpass_matches_scipy_mirror_filter():
    from scipy.ndimage import correlate1d

    rng = np.random.default_rng(6)
    for side, sigma in ((64, 1.0), (7, 1.5), (3, 1.0)):
        x = rng.random((2, side, side))
        k = thumbnails._gaussian_kernel(sigma).double().numpy()
        r = min(len(k) // 2, side - 1)
        k = k[len(k) // 2 - r: len(k) // 2 + r + 1]
        k = k / k.sum()
        blurred = correlate1d(correlate1d(x, k, axis=1, mode="mirror"), k, axis=2, mode="mirror")
        got = thumbnails.highpass(torch.tensor(x[:, None], dtype=torch.float32), sigma)[:, 0].numpy()
        np.testing.assert_allclose(got, x - blurred, atol=1e-5)


def test_separable_resampling_matches_grid_sample():
    torch.manual_seed(0)
    p, size, zoom = 4, 16, 2
    src = torch.rand(p, zoom * size, zoom * size)
    window = torch.tensor([[1.3, 0.7, 14.2], [0.0, 0.0, 16.0], [-0.5, 2.0, 15.0], [3.0, 1.0, 12.3]])
    out = size * zoom
    c = (torch.arange(out, dtype=torch.float32) + 0.5) / out
    ys = window[:, 0, None] + c[None] * window[:, 2, None]
    xs = window[:, 1, None] + c[None] * window[:, 2, None]
    grid = torch.stack([(2 * xs / size - 1)[:, None, :].expand(p, out, out),
                        (2 * ys / size - 1)[:, :, None].expand(p, out, out)], dim=-1)
    want = F.avg_pool2d(F.grid_sample(src[:, None], grid, mode="bicubic", padding_mode="border",
                                      align_corners=False), zoom)[:, 0]
    wy = matching._cubic_weights(ys * zoom, zoom * size, zoom)
    wx = matching._cubic_weights(xs * zoom, zoom * size, zoom)
    np.testing.assert_allclose((wy @ src @ wx.transpose(1, 2)).numpy(), want.numpy(), atol=1e-5)


def test_flat_photographs_do_not_correlate_through_the_device_pattern():
    """Subtracting a collection's dermoscope vignette from flat clinical photographs imprints the same
    negative ring on each, and they correlate; projecting it out leaves them unrelated."""
    rng = np.random.default_rng(7)
    size = 32
    yy, xx = np.mgrid[-1:1:complex(0, size), -1:1:complex(0, size)]
    vignette = np.clip((0.9 - np.sqrt(xx**2 + yy**2)) / 0.05, 0, 1)
    dermoscopy = [vignette * (0.6 + 0.05 * rng.normal(size=(size, size))) for _ in range(20)]
    flat = [0.5 + 0.01 * rng.normal(size=(size, size)) for _ in range(2)]
    thumbs = np.stack(dermoscopy + flat).astype(np.float32)
    s = registration.registered_similarity(thumbs, [20], [21], CopyVerificationConfig(refine=False), progress=False)
    assert abs(s[0]) < 0.3
    subtracted = registration.registered_similarity(
        thumbs - thumbnails.mean_pattern(thumbs), [20], [21], CopyVerificationConfig(subtract_mean=False, refine=False),
        progress=False)
    assert subtracted[0] > 0.8  # the failure the projection avoids


def test_reduce_thumbnails_is_a_box_mean():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    np.testing.assert_allclose(thumbnails.reduce_thumbnails(x)[0], [[2.5, 4.5], [10.5, 12.5]])


def test_agreement_needs_every_tile():
    rng = np.random.default_rng(8)
    size = 32
    a = rng.normal(size=(size, size))
    b = rng.normal(size=(size, size))
    ruler = np.zeros((size, size))
    ruler[26:30, ::2] = 12.0  # a strong shared object along one edge, e.g. a ruler's ticks
    x = torch.tensor(np.stack([a + ruler, a, np.where(np.arange(size)[None] < 16, a, 0.0)]), dtype=torch.float32)
    y = torch.tensor(np.stack([b + ruler, 0.5 * a + 3.0, np.where(np.arange(size)[None] < 16, a, 0.0)]),
                     dtype=torch.float32)
    whole = matching.agreement(x, y, blocks=1).numpy()
    tiled = matching.agreement(x, y, blocks=4).numpy()
    # brute force: the cosine of the whole centred frames
    for k in range(3):
        u, v = x[k].numpy().ravel() - x[k].numpy().mean(), y[k].numpy().ravel() - y[k].numpy().mean()
        assert whole[k] == pytest.approx(u @ v / np.linalg.norm(u) / np.linalg.norm(v), abs=1e-5)
    assert whole[0] > 0.5 and abs(tiled[0]) < 0.2  # the shared ruler carries the frame, not the tiles
    assert tiled[1] == pytest.approx(1.0, abs=1e-5)  # an affine copy agrees in every tile
    assert tiled[2] == pytest.approx(1.0, abs=1e-5)  # flat (blank) tiles are left out, not counted as 0
    with pytest.raises(ValueError):
        matching.agreement(x, y, blocks=20)
