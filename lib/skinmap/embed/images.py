"""Decoding images into fixed-size RGB arrays, with every conversion or failure named.

A real archive contains grayscale scans, RGBA screenshots, 16-bit TIFFs and the occasional
truncated download. Each is converted to 8-bit RGB in a documented way, or skipped, and the
outcome is returned as a status string so extraction can count it instead of crashing
(or, worse, embedding a wrong picture):

``ok``                    8-bit RGB as stored
``converted:grayscale``   L/LA/1 images replicated to three channels
``converted:rgba``        alpha composited over a white background
``converted:palette``     palette (P) images expanded to RGB
``converted:16bit``       16/32-bit integer images scaled by 255/65535 (full 16-bit range)
``converted:float``       float images min-max scaled to 0..255
``converted:cmyk``        CMYK/YCbCr/LAB converted to RGB by Pillow
``skipped:missing``       the path does not exist (or is NA)
``skipped:unreadable``    not an image Pillow can identify
``skipped:truncated``     the file ends early or its data are corrupt
``skipped:empty``         zero width or height

Geometry: the shorter side is resized to ``size`` (bilinear, antialiased) and the centre square
cropped. A JPEG whose shorter side is at least 4x ``size`` is first decoded at half resolution
in the DCT domain (Pillow's ``draft``), 1.7-2.6x cheaper than a full decode of a 1200x900 to
2400x1800 photograph; the resize that follows still shrinks by 2x or more. This changes the
frozen member's vectors by little: cosine 0.998-0.9997 to those of a full decode on lesion-like
and real dermoscopy photographs (tested). Reducing further, to just above ``size`` (1/2 for a
600x450 image, 1/4 or 1/8 for larger ones), left them at only 0.984-0.997 -- as far as a
2-pixel shift moves them, and differently for each dataset's resolution -- so it is not done.
The recipe is named by :data:`PREPROCESSING`, which extraction puts in its cache key: vectors
of two recipes never mix.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

__all__ = ["DecodedImage", "DRAFT_MIN_RATIO", "PREPROCESSING", "decode_image", "read_image", "STATUS_OK", "is_skipped"]

STATUS_OK = "ok"
# Names the decoding recipe above. Change it with any change that alters the decoded pixels, so
# that cached vectors made by the old recipe are not reused (see skinmap.embed.extract).
PREPROCESSING = "pil-rgb8|jpeg-dct-half-if-short-side>=4x|bilinear-aa-short-side|centre-crop"
# A JPEG is decoded at half resolution when its shorter side is at least this multiple of the target.
DRAFT_MIN_RATIO = 4
# Truncated files must fail loudly, never be padded with grey by Pillow.
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class DecodedImage:
    """``pixels`` is uint8 (size, size, 3) or ``None`` when the image was skipped."""

    pixels: np.ndarray | None
    status: str


def is_skipped(status: str) -> bool:
    return status.startswith("skipped:")


def _to_rgb(img: Image.Image) -> tuple[Image.Image, str]:
    mode = img.mode
    if mode == "RGB":
        return img, STATUS_OK
    if mode in ("L", "1"):
        return img.convert("RGB"), "converted:grayscale"
    if mode == "LA":
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img.convert("RGBA"), mask=img.getchannel("A"))
        return background, "converted:grayscale"
    if mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background, "converted:rgba"
    if mode == "P":
        return img.convert("RGB"), "converted:palette"
    if mode.startswith("I"):  # I;16, I;16B, I;16L, I (32-bit int)
        arr = np.asarray(img, dtype=np.float64)
        arr = np.clip(arr * (255.0 / 65535.0), 0, 255).round().astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB"), "converted:16bit"
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = np.nanmin(arr), np.nanmax(arr)
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        arr = np.nan_to_num((arr - lo) * scale).round().astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB"), "converted:float"
    return img.convert("RGB"), "converted:cmyk"


def _fit_square(img: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` (bilinear, antialiased) and centre-crop a square."""
    w, h = img.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((new_w, new_h), Image.BILINEAR, reducing_gap=None)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return img.crop((left, top, left + size, top + size))


def decode_image(data: bytes, size: int, *, jpeg_draft: bool = True) -> DecodedImage:
    """Decode encoded image bytes to a (size, size, 3) uint8 array; see the module doc.

    ``jpeg_draft=False`` decodes large JPEGs at full resolution too (the reference the reduced
    decode is tested against; not :data:`PREPROCESSING`, so never used for cached vectors).
    """
    if not data:
        return DecodedImage(None, "skipped:unreadable")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            if (jpeg_draft and img.format == "JPEG" and img.mode in ("RGB", "L")
                    and min(img.size) >= DRAFT_MIN_RATIO * size):
                # Asking for half of each side makes Pillow pick exactly the 1/2 DCT scale.
                img.draft(img.mode, (img.width // 2, img.height // 2))
            img.load()
    except UnidentifiedImageError:
        return DecodedImage(None, "skipped:unreadable")
    except (OSError, SyntaxError, ValueError, EOFError):
        return DecodedImage(None, "skipped:truncated")
    if img.width == 0 or img.height == 0:
        return DecodedImage(None, "skipped:empty")
    try:
        rgb, status = _to_rgb(img)
        pixels = np.asarray(_fit_square(rgb, size), dtype=np.uint8)
    except (OSError, ValueError):  # corrupt data discovered while converting
        return DecodedImage(None, "skipped:truncated")
    return DecodedImage(np.ascontiguousarray(pixels), status)


def read_image(path: str | os.PathLike | None, size: int) -> tuple[DecodedImage, bytes | None]:
    """Read a file and decode it; returns the decoded image and the raw bytes (for hashing)."""
    if path is None or (isinstance(path, float) and np.isnan(path)):
        return DecodedImage(None, "skipped:missing"), None
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return DecodedImage(None, "skipped:missing"), None
    return decode_image(data, size), data
