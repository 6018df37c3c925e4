"""Content fingerprints and cache keys.

A chapter is re-executed only when its cache key changes. The key hashes:

* the validated parameters (canonical JSON),
* the chapter's source (cell types, sources and tags; not outputs or execution metadata),
* the library's source (every file of the installed ``skinmap`` package: a fixed algorithm
  changes results, so it must invalidate them),
* the fingerprints of the files its upstream chapters wrote, and
* the content fingerprints of external inputs (data roots, users' tables).

File contents are hashed with SHA-256; a small memo keyed by (path, size, mtime) avoids
re-reading unchanged files of a large data root on every build.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import nbformat

from skinmap.hashing import canonical_hash, file_sha256
from skinmap.io import read_json, write_json

__all__ = [
    "notebook_source_hash",
    "library_hash",
    "FileHasher",
    "cache_key",
]


def notebook_source_hash(path: str | Path) -> str:
    """Hash of what a notebook *says*: cell types, sources and tags, in order."""
    nb = nbformat.read(os.fspath(path), as_version=4)
    cells = [
        (cell.cell_type, cell.source, sorted(cell.get("metadata", {}).get("tags", [])))
        for cell in nb.cells
    ]
    return canonical_hash(cells)


def library_hash() -> str:
    """Hash of the ``skinmap`` package's source and data files."""
    import skinmap

    root = Path(skinmap.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(file_sha256(path).encode())
    return digest.hexdigest()


class FileHasher:
    """Content hashes of files and folders, memoised by (path, size, mtime) in a JSON file."""

    def __init__(self, memo_path: str | Path | None = None, *, prune_under: str | Path | None = None):
        self.memo_path = Path(memo_path) if memo_path else None
        # Entries below this folder whose file is gone are dropped on save (superseded versions).
        self.prune_under = os.fspath(Path(prune_under).resolve()) + os.sep if prune_under else None
        self._memo: dict[str, list] = {}
        if self.memo_path and self.memo_path.is_file():
            try:
                self._memo = read_json(self.memo_path)
            except (ValueError, OSError):
                self._memo = {}
        self._dirty = False

    def file(self, path: Path) -> str:
        stat = path.stat()
        key = os.fspath(path.resolve())
        sig = [stat.st_size, stat.st_mtime_ns]
        hit = self._memo.get(key)
        if hit and hit[:2] == sig:
            return hit[2]
        value = file_sha256(path)
        self._memo[key] = [*sig, value]
        self._dirty = True
        return value

    def tree(self, path: str | Path, *, exclude: Iterable[str] = ()) -> dict[str, str]:
        """``{relative path: sha256}`` for a file or every file below a folder."""
        path = Path(path)
        if path.is_file():
            return {path.name: self.file(path)}
        if not path.is_dir():
            return {}
        skip = set(exclude)
        out = {}
        for child in sorted(path.rglob("*")):
            rel = child.relative_to(path).as_posix()
            if child.is_file() and not any(part in skip or part.startswith(".") for part in child.relative_to(path).parts):
                out[rel] = self.file(child)
        return out

    def fingerprint(self, path: str | Path, **kwargs) -> str:
        """One hash for a file or folder (missing paths hash as such, not as errors)."""
        path = Path(path)
        if not path.exists():
            return canonical_hash({"missing": os.fspath(path)})
        return canonical_hash(self.tree(path, **kwargs))

    def save(self) -> None:
        if self.prune_under:
            gone = [k for k in self._memo if k.startswith(self.prune_under) and not os.path.exists(k)]
            for key in gone:
                del self._memo[key]
            self._dirty = self._dirty or bool(gone)
        if self.memo_path and self._dirty:
            write_json(self._memo, self.memo_path, indent=0)
            self._dirty = False


def cache_key(
    *,
    params_hash: str,
    source_hash: str,
    lib_hash: str,
    input_fingerprints: Mapping[str, str],
) -> str:
    """The chapter's cache key: changes whenever anything that determines its outputs changes."""
    return canonical_hash(
        {
            "params": params_hash,
            "source": source_hash,
            "lib": lib_hash,
            "inputs": dict(sorted(input_fingerprints.items())),
        }
    )
