"""Run-directory layout and atomic file writes.

Chapters exchange data only through files under ``runs/<profile>/<chapter>/``. Every writer here
goes through :func:`atomic_path`: the payload is written to a temporary file in the same folder
and moved into place with :func:`os.replace`, so a crash halfway never leaves a truncated file and
never destroys the previous good version.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "atomic_path",
    "chapter_dir",
    "file_sha256",
    "write_bytes",
    "write_csv",
    "write_json",
    "write_npy",
    "write_parquet",
    "write_text",
    "read_json",
]


def chapter_dir(run_dir: str | os.PathLike, chapter: str) -> Path:
    """Return (and create) the output folder of ``chapter`` inside ``run_dir``."""
    path = Path(run_dir) / chapter
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path`` atomically.

    On an exception the temporary file is removed and ``path`` is left as it was.
    The temporary name keeps the final suffix so that libraries which dispatch on the
    extension (matplotlib, pandas) write the right format.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_bytes(data: bytes, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(text: str, path: str | os.PathLike) -> Path:
    return write_bytes(text.encode("utf-8"), path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if obj is pd.NA or obj is pd.NaT:
        return None
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def _finite_floats(obj: Any) -> Any:
    """Replace NaN/inf floats (Python or numpy, which subclass float) by None, recursively."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_floats(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_floats(v) for v in obj]
    if isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
        return [_finite_floats(v) for v in obj.tolist()]
    return obj


def write_json(obj: Any, path: str | os.PathLike, *, indent: int = 2) -> Path:
    """Write ``obj`` as UTF-8 JSON (numpy scalars and arrays converted; NaN/inf written as null)."""
    text = json.dumps(
        _finite_floats(obj), indent=indent, default=_json_default, sort_keys=False, allow_nan=False
    )
    return write_text(text + "\n", path)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_npy(array: np.ndarray, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        np.save(tmp, np.asarray(array), allow_pickle=False)
    return Path(path)


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


def file_sha256(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
