"""Run-directory layout and atomic file writes.

Chapters exchange data only through files under ``runs/<profile>/<chapter>/``. Every writer here
goes through :func:`atomic_path`: the payload is written to a temporary file in the same folder
and moved into place with :func:`os.replace`, so a crash halfway never leaves a truncated file and
never destroys the previous good version.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from skinmap.hashing import file_sha256, json_default

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


def _new_temp_file(target: Path) -> Path:
    """Create an empty, uniquely named file next to ``target`` with mode ``0o666 & ~umask``.

    ``tempfile.mkstemp`` would create it ``0600``, and :func:`os.replace` keeps that mode: every
    export would then be private to its writer whatever the user's umask says.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = target.parent / f".{target.stem}.{secrets.token_hex(6)}.tmp{target.suffix}"
        try:
            os.close(os.open(tmp, flags, 0o666))
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue
        return tmp


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path`` atomically.

    On an exception the temporary file is removed and ``path`` is left as it was.
    The temporary name keeps the final suffix so that libraries which dispatch on the
    extension (matplotlib, pandas) write the right format. The file gets the permissions the
    process umask allows (``0o666 & ~umask``), like any file the user creates.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp_file(target)
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


def _finite_floats(obj: Any) -> Any:
    """Replace NaN/inf floats (Python or numpy, which subclass float) by None, recursively."""
    if isinstance(obj, (float, np.floating)):
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
        _finite_floats(obj), indent=indent, default=json_default, sort_keys=False, allow_nan=False
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
