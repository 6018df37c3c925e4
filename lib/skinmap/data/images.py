"""Cheap image checks: size from the header and a truncation test, without decoding pixels.

Decoding every image of a large corpus is slow; PIL reads only the header on ``Image.open``. A
truncated JPEG/PNG still has a valid header, so we also look for the format's end marker in the
file's last bytes (JPEG ``FFD9``, PNG ``IEND``), which catches files cut short by a broken
download. Full decoding (``decode=True``) is available for thorough audits.

Decompression bombs: a PNG of 48 KB can declare 20,000 x 20,000 pixels (1.2 GB once decoded). The
header's width x height is compared with :data:`MAX_IMAGE_PIXELS` *before* any pixel is decoded; an
image over the cap is reported like any other unreadable image (the catalog goes on without it).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import NamedTuple

from PIL import Image, UnidentifiedImageError

__all__ = ["probe_image", "ImageProbe", "IMAGE_SUFFIXES", "MAX_IMAGE_PIXELS"]

#: File suffixes read as images (compared lower-case), by the catalog and by cohort assessment.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
#: Largest width x height accepted (10^8 pixels, 300 MB as 8-bit RGB): several times the largest
#: camera image of any dataset in the registry (ISIC 2020: 6,000 x 4,000 = 2.4 x 10^7).
MAX_IMAGE_PIXELS = 100_000_000
_TAIL = 64
_PILLOW_BOMB = re.compile(r"\((\d+) pixels\)")


class ImageProbe(NamedTuple):
    """What :func:`probe_image` found: header size, problem kind (None if fine) and why."""

    width: int | None
    height: int | None
    problem: str | None  # None, "unreadable_image" or "truncated_image"
    reason: str = ""


def _tail(path: Path) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - _TAIL))
        return handle.read()


def probe_image(path: str | os.PathLike, *, decode: bool = False, max_pixels: int = MAX_IMAGE_PIXELS) -> ImageProbe:
    """Read an image's size from its header and check it for truncation and decompression bombs.

    Parameters
    ----------
    path : path-like
        The image file.
    decode : bool, default False
        Also decode every pixel (slow; catches corruption inside the stream).
    max_pixels : int, default :data:`MAX_IMAGE_PIXELS`
        Images whose header declares more than ``max_pixels`` pixels are refused undecoded.

    Returns
    -------
    ImageProbe
        ``(width, height, problem, reason)``: the header's size (None when it cannot be read);
        ``problem`` None, ``"unreadable_image"`` (no readable header, or more than ``max_pixels``)
        or ``"truncated_image"``; ``reason`` a sentence saying why (empty when fine).
    """
    path = Path(path)
    bomb = f"more than the cap of {max_pixels:,} pixels (decompression-bomb guard); not decoded"
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 Mpx and raises from 179 Mpx; our own cap below decides instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                fmt = img.format
                if width * height > max_pixels:
                    return ImageProbe(int(width), int(height), "unreadable_image",
                                      f"declares {width} x {height} = {width * height:,} pixels, {bomb}")
                if decode:
                    img.load()
    except Image.DecompressionBombError as exc:  # over Pillow's own limit: it does not tell the sides
        n = _PILLOW_BOMB.search(str(exc))
        return ImageProbe(None, None, "unreadable_image",
                          f"declares {int(n.group(1)):,} pixels, {bomb}" if n else f"{exc}")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        if decode and "truncated" in str(exc).lower():
            return ImageProbe(None, None, "truncated_image", f"decoding failed: {exc}")
        return ImageProbe(None, None, "unreadable_image", f"cannot be opened as an image: {exc}")
    try:
        tail = _tail(path)
    except OSError as exc:
        return ImageProbe(None, None, "unreadable_image", f"cannot be read: {exc}")
    if fmt == "JPEG" and b"\xff\xd9" not in tail:
        return ImageProbe(width, height, "truncated_image", "no JPEG end marker (file cut short)")
    if fmt == "PNG" and b"IEND" not in tail:
        return ImageProbe(width, height, "truncated_image", "no PNG end marker (file cut short)")
    return ImageProbe(int(width), int(height), None)

