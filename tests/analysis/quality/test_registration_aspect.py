"""Copies that change a non-square image's aspect ratio (a tilted crop, a square crop) are registered
in the images' true geometry, while the thumbnails stay squeezed squares: the template shapes and
the tilt against closed forms, and planted copies of a 96 x 160 picture accepted where look-alikes
are not (and missed by the squeezed geometry alone, the search before issue 16's fix)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from skinmap.analysis.quality import matching, registration, thumbnails
from skinmap.analysis.quality.verification import CopyVerificationConfig, accepted_pairs

HEIGHT, WIDTH = 96, 160


def _field(rng, sigma_px: float) -> np.ndarray:
    """A smooth random (HEIGHT, WIDTH) field in [0, 1] (Gaussian-filtered white noise, via FFT)."""
    fy, fx = np.fft.fftfreq(HEIGHT), np.fft.fftfreq(WIDTH)
    kernel = np.exp(-2 * (np.pi * sigma_px) ** 2 * (fy[:, None] ** 2 + fx[None] ** 2))
    x = np.fft.ifft2(np.fft.fft2(rng.normal(size=(HEIGHT, WIDTH))) * kernel).real
    return (x - x.min()) / (x.max() - x.min())


def _picture(layout_seed: int, detail_seed: int) -> Image.Image:
    """A smooth layout (from ``layout_seed``) with fine texture (from ``detail_seed``): another
    ``detail_seed`` is a look-alike with the same texture statistics, not a copy."""
    layout = _field(np.random.default_rng(layout_seed), 12)
    rng = np.random.default_rng(detail_seed)
    x = 0.6 * layout + 0.4 * (0.6 * _field(rng, 1.0) + 0.4 * _field(rng, 2.5))
    return Image.fromarray((x * 255).astype(np.uint8), "L").convert("RGB")


def _tilted_crop(im: Image.Image, degrees: float, shift: tuple[int, int]) -> Image.Image:
    """Rotate by ``degrees`` and cut the largest upright square without black corners, its centre
    moved by ``shift`` (x, y) px: the copy's aspect ratio (1) is not its source's (5:3)."""
    w, h = im.size
    keep = min(w, h) / (abs(np.cos(np.deg2rad(degrees))) + abs(np.sin(np.deg2rad(degrees)))) - 2
    cx, cy = w / 2 + shift[0], h / 2 + shift[1]
    rot = im.rotate(degrees, resample=Image.Resampling.BICUBIC)
    return rot.crop((round(cx - keep / 2), round(cy - keep / 2), round(cx + keep / 2), round(cy + keep / 2)))


def test_template_ratio_and_shape_closed_forms():
    four_three, square = torch.tensor([4 / 3], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64)
    # a square crop of a 4:3 image covers 3/4 of its squeezed thumbnail's columns per row
    assert registration.template_ratio(0, four_three, square).item() == pytest.approx(0.75)
    # a 3:4 copy (a 4:3 image turned by a quarter) turned back has its source's aspect: square window
    assert registration.template_ratio(1, four_three, 1 / four_three).item() == pytest.approx(1.0)
    assert registration.template_ratio(4, four_three, four_three).item() == pytest.approx(1.0)
    heights, widths = registration.template_shape(48, torch.tensor([0.75, 1.0, 2.0]), 64)
    assert heights.tolist() == [48, 48, 24] and widths.tolist() == [36, 48, 48]
    assert registration.tilt_offsets(5.0) == (-2.5, -1.25, 0.0, 1.25, 2.5)


def test_aspects_read_from_headers_and_compared(tmp_path):
    Image.new("RGB", (160, 96)).save(tmp_path / "wide.png")
    Image.new("RGB", (30, 40)).save(tmp_path / "tall.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    got = thumbnails.image_aspects([tmp_path / "wide.png", tmp_path / "tall.png", tmp_path / "broken.png", None])
    np.testing.assert_allclose(got, [160 / 96, 0.75, 1.0, 1.0])
    differ = registration.aspects_differ(np.array([1.0, 1.005, 4 / 3]), [0, 0, 1], [1, 2, 2], 64)
    assert differ.tolist() == [False, True, True]  # 0.5 % is under a pixel of 64, a third is not


def test_orient_tilts_the_unsqueezed_picture():
    """A plane wave in true coordinates, squeezed into a square thumbnail and tilted by ``orient``
    with its aspect, equals the wave rotated in true coordinates and sampled on the inscribed
    rectangle (the closed form of the affine map), away from the border."""
    size, aspect, tilt = 64, 5 / 3, 8.0
    centres = (np.arange(size) + 0.5) / size * 2 - 1  # normalised pixel centres u, v in (-1, 1)
    u, v = np.meshgrid(centres, centres)

    def wave(x_true, y_true):  # slow enough for bicubic resampling to be exact to ~1e-3
        return np.cos(2.1 * x_true + 1.3 * y_true) + 0.5 * np.sin(-0.7 * x_true + 2.4 * y_true)

    thumb = torch.from_numpy(wave(aspect * u, v)[None].astype(np.float32))
    got = thumbnails.orient(thumb, 0, tilt, aspect=aspect)[0].numpy()
    c, s = np.cos(np.deg2rad(tilt)), np.sin(np.deg2rad(tilt))
    half = min(aspect / (aspect * c + s), 1 / (aspect * s + c))
    x_out, y_out = half * aspect * u, half * v  # the inscribed rectangle of the copy's aspect
    want = wave(c * x_out - s * y_out, s * x_out + c * y_out)
    inner = slice(4, -4)
    np.testing.assert_allclose(got[inner, inner], want[inner, inner], atol=0.02)
    # the squeezed geometry (aspect 1) rotates the squeezed picture: a different image
    assert np.abs(thumbnails.orient(thumb, 0, tilt)[0].numpy() - want)[inner, inner].max() > 0.1


def test_refine_crop_takes_a_rectangular_window():
    rng = np.random.default_rng(5)
    source = torch.from_numpy(rng.random((1, 32, 32)).astype(np.float32))
    # the copy: columns 4..27 of the source (a 32 x 24 window) stretched to 32 x 32, as a square
    # crop of a 4:3 picture is in its squeezed thumbnail
    copy = torch.nn.functional.interpolate(source[:, None, :, 4:28], size=(32, 32), mode="bicubic",
                                           align_corners=False)[:, 0]
    rect = matching.refine_crop(source, copy, torch.tensor([[0.0, 4.0, 32.0, 24.0]]), sigma=1.0, blocks=4)
    square = matching.refine_crop(source, copy, torch.tensor([[0.0, 4.0, 24.0]]), sigma=1.0, blocks=4)
    assert rect.item() > 0.9 > square.item()
    with pytest.raises(ValueError):
        matching.refine_crop(source, copy, torch.zeros(1, 5), sigma=1.0)


def test_aspect_changing_copies_of_a_non_square_image(tmp_path):
    transforms = {
        "tilt_7_crop": lambda im: _tilted_crop(im, 7, (9, 2)),
        "tilt_minus_11_crop": lambda im: _tilted_crop(im, -11, (-6, 0)),
        "square_crop": lambda im: im.crop((40, 0, 136, 96)),
        "rot90": lambda im: im.transpose(Image.Transpose.ROTATE_90),  # worked before: must keep working
        "squeeze_crop": lambda im: im.resize((96, 96), Image.Resampling.BICUBIC).crop((5, 4, 91, 90)),
    }
    sources = [_picture(k, 100 + k) for k in range(len(transforms))]
    lookalikes = [_picture(k, 200 + k) for k in range(len(transforms))]  # same layout and texture statistics
    copies = [fn(sources[k]) for k, fn in enumerate(transforms.values())]
    paths = []
    for name, im in enumerate(sources + lookalikes + copies):
        paths.append(tmp_path / f"{name}.png")
        im.save(paths[-1])
    fine, ok = thumbnails.luminance_thumbnails(paths, 128)
    assert ok.all()
    aspects = thumbnails.image_aspects(paths)
    n = len(transforms)
    i = list(range(n)) * 2
    j = [2 * n + k for k in range(n)] + [n + k for k in range(n)]  # copies, then look-alikes
    config = CopyVerificationConfig()  # the defaults every profile uses

    def scores(cfg: CopyVerificationConfig, with_aspects: bool = True) -> np.ndarray:
        return registration.registered_similarity(thumbnails.reduce_thumbnails(fine), i, j, cfg,
                                                  fine_thumbnails=fine, aspects=aspects if with_aspects else None,
                                                  rotated=np.ones(len(i), bool), progress=False)

    s = scores(config)
    copy_scores, look_scores = dict(zip(transforms, s[:n])), s[n:]
    assert look_scores.max() < 0.3, look_scores
    scored = pd.DataFrame({"i": i, "j": j, "similarity": s}).sort_values("similarity", ascending=False)
    accepted = accepted_pairs(scored, 0.95, config)
    assert sorted(zip(accepted["i"], accepted["j"])) == sorted(zip(i[:n], j[:n])), copy_scores
    assert min(copy_scores.values()) >= config.ratio_floor, copy_scores
    # the squeezed square geometry alone (the search before this fix) misses the aspect-changing copies
    changed = ["tilt_7_crop", "tilt_minus_11_crop", "square_crop"]
    for squeezed in (scores(config, with_aspects=False), scores(CopyVerificationConfig(keep_aspect=False))):
        old = dict(zip(transforms, squeezed[:n]))
        assert max(old[name] for name in changed) < config.ratio_floor, old
        assert old["rot90"] >= config.ratio_floor and old["squeeze_crop"] >= config.ratio_floor, old
