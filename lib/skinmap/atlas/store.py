"""The atlas app's only writable place: a content-addressed cache folder.

Every name in it is derived by the server, never taken from a client: upload vectors are
``vectors/<sha256 of the upload>.npy``, thumbnails ``thumbs/<catalog row>.jpg``, and the picture
an embedder needs as a file is a private per-request temporary file under ``uploads/`` that is
deleted as soon as the vector exists. Files land with an atomic rename (:mod:`skinmap.io`), so a
reader sees the old file or the whole new one, and concurrent writers of the same key write the
same bytes. Nothing here is shared between requests except finished, immutable files.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from skinmap.io import write_bytes, write_npy

__all__ = ["QUERY_ID", "CacheStore"]

#: A query id is the hex SHA-256 of the uploaded bytes.
QUERY_ID = re.compile(r"^[0-9a-f]{64}$")


class CacheStore:
    """Vectors (memory LRU over disk), thumbnails and per-request upload files under ``root``.

    Parameters
    ----------
    root : path
        The cache folder (created). Every path this class touches resolves inside it.
    vector_memory : int
        Upload vectors kept in memory; older ones are re-read from disk on demand.
    """

    def __init__(self, root: str | os.PathLike, *, vector_memory: int = 256):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._memory_size = int(vector_memory)
        self._lock = threading.Lock()

    def _inside(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts).resolve()
        if self.root not in path.parents:
            raise ValueError("refusing to touch a path outside the cache directory")
        return path

    # ---------------------------------------------------------------- vectors

    def remember(self, query_id: str, vector: np.ndarray, *, persist: bool = True) -> None:
        """Keep ``vector`` under ``query_id`` (in memory, and on disk when ``persist``)."""
        if persist:
            write_npy(vector, self._inside("vectors", f"{query_id}.npy"))
        with self._lock:
            self._memory[query_id] = vector
            self._memory.move_to_end(query_id)
            while len(self._memory) > self._memory_size:
                self._memory.popitem(last=False)

    def recall(self, query_id: str) -> np.ndarray:
        """The vector of an earlier upload; ``KeyError`` when malformed or unknown."""
        if not QUERY_ID.match(query_id or ""):
            raise KeyError("malformed query id")
        with self._lock:
            if query_id in self._memory:
                return self._memory[query_id]
        path = self._inside("vectors", f"{query_id}.npy")
        if not path.is_file():
            raise KeyError("unknown query id (upload the image again)")
        vector = np.load(path, allow_pickle=False)
        self.remember(query_id, vector, persist=False)
        return vector

    # ---------------------------------------------------------------- thumbnails

    def thumbnail(self, row: int) -> bytes | None:
        path = self._inside("thumbs", f"{int(row)}.jpg")
        return path.read_bytes() if path.is_file() else None

    def store_thumbnail(self, row: int, data: bytes) -> None:
        write_bytes(data, self._inside("thumbs", f"{int(row)}.jpg"))

    # ---------------------------------------------------------------- upload files

    @contextlib.contextmanager
    def upload_file(self, data: bytes, suffix: str) -> Iterator[Path]:
        """A private file holding ``data`` for the duration of the block, then deleted.

        The name is unique per call (``mkstemp``), so two requests never share or delete each
        other's file, even for identical bytes.
        """
        folder = self._inside("uploads")
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", suffix=suffix, dir=folder)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            yield path
        finally:
            path.unlink(missing_ok=True)  # keep the vector, not the picture
