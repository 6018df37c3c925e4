"""Cheap image checks: size from the header and a truncation test, without decoding pixels.

Decoding every image of a large corpus is slow; PIL reads only the header on ``Image.open``. A
truncated JPEG/PNG still has a valid header, so we also look for the format's end marker in the
file's last bytes (JPEG ``FFD9``, PNG ``IEND``), which catches files cut short by a broken
download. Full decoding (``decode=True``) is available for thorough audits.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

__all__ = ["probe_image", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
_TAIL = 64


def _tail(path: Path) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - _TAIL))
        return handle.read()


def probe_image(path: str | os.PathLike, *, decode: bool = False) -> tuple[int | None, int | None, str | None]:
    """Return ``(width, height, problem)``; ``problem`` is None, ``"unreadable_image"`` or
    ``"truncated_image"`` (width/height are None when the header cannot be read)."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            width, height = img.size
            fmt = img.format
            if decode:
                img.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        if decode and "truncated" in str(exc).lower():
            return None, None, "truncated_image"
        return None, None, "unreadable_image"
    try:
        tail = _tail(path)
    except OSError:
        return None, None, "unreadable_image"
    if fmt == "JPEG" and b"\xff\xd9" not in tail:
        return width, height, "truncated_image"
    if fmt == "PNG" and b"IEND" not in tail:
        return width, height, "truncated_image"
    return int(width), int(height), None
