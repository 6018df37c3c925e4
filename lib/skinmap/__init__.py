"""SkinMap: a reproducible audit of public dermatology image data.

The library behind the SkinMap book. Chapters (``chapters/*.ipynb``) narrate and plot; every
algorithm lives here as a small, typed, documented function tested on tiny data.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("skinmap")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
