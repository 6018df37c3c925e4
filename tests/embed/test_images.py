"""Decoding: every conversion checked against a direct pixel computation."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from skinmap.embed.images import decode_image, read_image


def _png(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def test_rgb_identity_at_native_size(rng):
    arr = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    out = decode_image(_png(Image.fromarray(arr)), 16)
    assert out.status == "ok"
    np.testing.assert_array_equal(out.pixels, arr)


def test_grayscale_replicated():
    arr = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = decode_image(_png(Image.fromarray(arr, mode="L")), 16)
    assert out.status == "converted:grayscale"
    np.testing.assert_array_equal(out.pixels, np.repeat(arr[..., None], 3, axis=2))


def test_rgba_composited_on_white():
    arr = np.zeros((16, 16, 4), np.uint8)
    arr[..., 0] = 200
    arr[:8, :, 3] = 255  # top half opaque red-ish, bottom half fully transparent
    out = decode_image(_png(Image.fromarray(arr, mode="RGBA")), 16)
    assert out.status == "converted:rgba"
    np.testing.assert_array_equal(out.pixels[:8], np.broadcast_to([200, 0, 0], (8, 16, 3)))
    np.testing.assert_array_equal(out.pixels[8:], np.full((8, 16, 3), 255))


def test_16bit_scaled_by_full_range():
    arr = np.full((16, 16), 65535, np.uint16)
    arr[:8] = 32896  # 32896 * 255 / 65535 = 128
    out = decode_image(_png(Image.fromarray(arr)), 16)
    assert out.status == "converted:16bit"
    assert (out.pixels[:8] == 128).all() and (out.pixels[8:] == 255).all()


def test_truncated_and_unreadable_are_skipped(tmp_path, rng):
    arr = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    data = _png(Image.fromarray(arr), "JPEG")
    assert decode_image(data[: len(data) // 2], 16).status == "skipped:truncated"
    assert decode_image(b"this is not an image", 16).status == "skipped:unreadable"
    assert decode_image(b"", 16).status == "skipped:unreadable"
    decoded, raw = read_image(tmp_path / "absent.png", 16)
    assert decoded.status == "skipped:missing" and raw is None and decoded.pixels is None


def test_resize_keeps_aspect_by_centre_crop():
    arr = np.zeros((16, 48, 3), np.uint8)
    arr[:, 16:32] = 255  # white centre third of a wide image
    out = decode_image(_png(Image.fromarray(arr)), 16)
    assert out.pixels.shape == (16, 16, 3)
    assert out.pixels.mean() > 250  # the crop is the white centre


def _jpeg(w: int, h: int, seed: int = 0) -> bytes:
    """A smooth gradient with pixel noise: JPEG content where decoding choices show."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([200 - 80 * xx / w, 150 - 60 * yy / h, 120 + 40 * (xx + yy) / (w + h)], axis=-1)
    return _png(Image.fromarray(np.clip(base + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)), "JPEG")


def _reference(data: bytes, size: int) -> np.ndarray:
    """Full decode, shorter side to ``size`` (bilinear, antialiased), centre crop: computed directly."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    new_w, new_h = (round(w * size / h), size) if w >= h else (size, round(h * size / w))
    arr = np.asarray(img.resize((new_w, new_h), Image.BILINEAR, reducing_gap=None))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return arr[top:top + size, left:left + size]


def test_full_decode_equals_direct_resize_and_crop():
    data = _jpeg(300, 200)
    np.testing.assert_array_equal(decode_image(data, 32, jpeg_draft=False).pixels, _reference(data, 32))


def test_jpeg_below_four_times_the_target_is_decoded_in_full():
    data = _jpeg(600, 450)  # HAM10000's size: 450 < 4 x 224, so no DCT reduction
    np.testing.assert_array_equal(decode_image(data, 224).pixels, _reference(data, 224))
    data = _jpeg(130, 127)
    np.testing.assert_array_equal(decode_image(data, 32).pixels, _reference(data, 32))  # 127 < 128


def test_large_jpeg_is_decoded_at_half_scale_and_stays_close():
    data = _jpeg(160, 128)  # shorter side exactly 4 x 32: decoded at 80x64, then resized
    half = Image.open(io.BytesIO(data))
    half.draft("RGB", (80, 64))
    half.load()
    assert half.size == (80, 64)
    draft = decode_image(data, 32).pixels
    full = decode_image(data, 32, jpeg_draft=False).pixels
    np.testing.assert_array_equal(draft, np.asarray(half.resize((40, 32), Image.BILINEAR, reducing_gap=None))[:, 4:36])
    assert not np.array_equal(draft, full)  # the reduction happened ...
    assert np.abs(draft.astype(int) - full).mean() < 2.0  # ... and changed little

