"""Checking an uploaded image before anything else touches it.

An upload is refused unless every check passes, in this order (cheapest first):

1. size: non-empty and at most ``max_bytes`` (the server also refuses an oversized
   ``Content-Length`` before reading a byte);
2. type by *content*: the leading magic bytes must be JPEG, PNG or WebP (the file name and the
   client's ``Content-Type`` are ignored), and Pillow must identify the same format;
3. decompression bombs: the header's width x height must not exceed ``max_pixels`` (and each
   side ``max_side``) *before* any pixel is decoded. Pillow's own ``MAX_IMAGE_PIXELS`` guard is
   a second line: it raises ``DecompressionBombError`` at twice its limit;
4. integrity: ``Image.verify()`` and then a full decode (truncated or corrupt data fail here).

:class:`UploadRejected` carries the HTTP status to answer with (413 too large, 415 wrong type,
422 corrupt) and a message that names the problem without echoing the payload.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageFile, UnidentifiedImageError

__all__ = ["ALLOWED_FORMATS", "UploadRejected", "CheckedImage", "sniff_format", "check_image"]

# Truncated files must fail, never be padded with grey by Pillow.
ImageFile.LOAD_TRUNCATED_IMAGES = False

#: Pillow format name -> file suffix used in the cache.
ALLOWED_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}


class UploadRejected(ValueError):
    """An upload that was refused; ``status`` is the HTTP status code to answer with.

    ``retry_after`` (seconds) is set when the refusal is temporary (a full embedding queue: 503).
    """

    def __init__(self, status: int, message: str, *, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class CheckedImage:
    format: str
    width: int
    height: int
    suffix: str


def sniff_format(data: bytes) -> str | None:
    """The format named by the leading magic bytes (JPEG, PNG, WEBP), or ``None``."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def check_image(
    data: bytes, *, max_bytes: int = 10 * 2**20, max_pixels: int = 40_000_000, max_side: int = 20_000
) -> CheckedImage:
    """Validate an upload (see the module docstring); raise :class:`UploadRejected` on failure."""
    if not data:
        raise UploadRejected(400, "empty upload")
    if len(data) > max_bytes:
        raise UploadRejected(413, f"upload is {len(data)} bytes; the limit is {max_bytes}")
    fmt = sniff_format(data)
    if fmt is None:
        raise UploadRejected(415, "not a JPEG, PNG or WebP image (checked by content, not by name)")
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as img:
            width, height = img.size
            if img.format != fmt:
                raise UploadRejected(415, f"content claims {fmt} but decodes as {img.format}")
    except UploadRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise UploadRejected(413, f"image refused as a decompression bomb ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UploadRejected(422, f"unreadable {fmt} image: {exc}") from None
    if width <= 0 or height <= 0:
        raise UploadRejected(422, "image has zero width or height")
    if width * height > max_pixels or max(width, height) > max_side:
        raise UploadRejected(
            413,
            f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels} "
            f"pixels and {max_side} per side (decompression-bomb guard)",
        )
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as img:
            img.verify()
        with Image.open(io.BytesIO(data), formats=[fmt]) as img:
            img.load()
    except Image.DecompressionBombError as exc:
        raise UploadRejected(413, f"image refused as a decompression bomb ({exc})") from None
    except Exception as exc:  # Pillow raises many types for corrupt streams
        raise UploadRejected(422, f"corrupt or truncated {fmt} image: {type(exc).__name__}") from None
    return CheckedImage(format=fmt, width=width, height=height, suffix=ALLOWED_FORMATS[fmt])
