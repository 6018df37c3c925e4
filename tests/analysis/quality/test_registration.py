"""Registered pixel correlation: FFT machinery vs brute force, invariances, planted copies, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from skinmap.analysis.quality import duplicates, registration


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
    got = registration.normalized_cross_correlation(torch.from_numpy(images), torch.from_numpy(templates)).numpy()
    want = [_brute_ncc(images[k], templates[k]) for k in range(3)]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert got[1] == pytest.approx(1.0, abs=1e-5)


def test_flat_template_is_zero_not_nan():
    image = torch.rand(1, 8, 8)
    flat = torch.full((1, 6, 6), 0.5)
    assert registration.normalized_cross_correlation(image, flat).item() == 0.0


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
    fine, ok = registration.luminance_thumbnails([planted[n] for n in names], 128)
    thumbs = registration.reduce_thumbnails(fine)
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
    coarse = registration.registered_similarity(thumbs, [pos["source"]], [pos["crop"]], refine=False, progress=False)
    assert coarse[0] < score[("source", "crop")]  # shrinking the copy onto its source loses detail
    assert np.isnan(score[("source", "broken")])


def test_symmetric_in_pair_order(planted):
    thumbs, ok = registration.luminance_thumbnails([planted["source"], planted["crop"]], 64)
    ab = registration.registered_similarity(thumbs, [0], [1], progress=False)
    ba = registration.registered_similarity(thumbs, [1], [0], progress=False)
    assert ab[0] == pytest.approx(ba[0], abs=1e-6)


def test_bad_arguments():
    thumbs = np.zeros((2, 8, 8), np.float32)
    with pytest.raises(IndexError):
        registration.registered_similarity(thumbs, [0], [2], progress=False)
    with pytest.raises(ValueError):
        registration.registered_similarity(thumbs, [0], [1], scales=(1.2,), progress=False)
    with pytest.raises(ValueError):
        registration.registered_similarity(np.zeros((2, 8, 9)), [0], [1], progress=False)
    assert registration.registered_similarity(thumbs, [], [], progress=False).shape == (0,)


def test_rescored_and_thresholded_pairs():
    cand = pd.DataFrame({"i": [0, 0, 1, 2], "j": [1, 2, 2, 3], "similarity": [0.9, 0.8, 0.7, 0.6]})
    scored = duplicates.rescored_pairs(cand, np.array([0.2, 0.97, np.nan, 0.99], np.float32))
    assert scored[["i", "j"]].values.tolist() == [[2, 3], [0, 2], [0, 1]]  # NaN dropped, by score
    assert scored["embedding_similarity"].tolist() == pytest.approx([0.6, 0.8, 0.9])
    kept = duplicates.thresholded(scored, 0.95, k=2)
    assert kept[["i", "j"]].values.tolist() == [[2, 3], [0, 2]]
    assert kept.attrs["saturated"] == 1  # image 2 kept both of its 2 candidates: its list may be incomplete
    kept1 = duplicates.thresholded(scored, 0.95, k=1)
    assert kept1.attrs["saturated"] == 3  # images 0, 2, 3 each kept >= 1 pair
    with pytest.raises(ValueError):
        duplicates.rescored_pairs(cand, np.zeros(3))


def test_refine_crop_recovers_the_identity_window():
    rng = np.random.default_rng(3)
    img = torch.from_numpy(rng.random((2, 32, 32)).astype(np.float32))
    window = torch.tensor([[0.0, 0.0, 32.0], [0.0, 0.0, 32.0]])
    # the window that is the whole frame resamples the image onto itself: NCC 1
    score = registration.refine_crop(img, img, window, sigma=1.0, offsets=(0.0,), rel_sizes=(1.0,))
    np.testing.assert_allclose(score.numpy(), 1.0, atol=1e-5)
    # an unrelated image stays near 0
    other = torch.from_numpy(rng.random((2, 32, 32)).astype(np.float32))
    assert registration.refine_crop(img, other, window, sigma=1.0).abs().max() < 0.3


def test_subtract_mean_pattern_keeps_mirrors_exact():
    rng = np.random.default_rng(4)
    x = rng.random((5, 8, 8)).astype(np.float32)
    x[1] = x[0, :, ::-1]
    y = registration.subtract_mean_pattern(x)
    np.testing.assert_allclose(y[1], y[0, :, ::-1], atol=1e-6)
    np.testing.assert_allclose(registration.subtract_mean_pattern(x, np.zeros(5, bool)), x)


def test_reduce_thumbnails_is_a_box_mean():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    np.testing.assert_allclose(registration.reduce_thumbnails(x)[0], [[2.5, 4.5], [10.5, 12.5]])
