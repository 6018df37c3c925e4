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
