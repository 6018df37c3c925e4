"""Content hashes: the one definition of every digest the project keys caches and fingerprints by.

``canonical_hash``
    SHA-256 of an object's canonical JSON (sorted keys, no whitespace).
``json_default``
    the JSON encoding of non-JSON values (dataclasses, numpy scalars and arrays, paths, sets,
    pandas' missing values), shared by :func:`canonical_hash` and :func:`skinmap.io.write_json`.
``file_sha256``, ``array_digest``
    digests of a file's bytes and of an array's dtype, shape and bytes.
``source_hash``
    digest of the source files of Python modules (code that determines a result).
``library_versions``
    installed versions of distributions, read from package metadata (nothing is imported).

This module sits below every other one (it imports only the standard library and numpy), so
``data/``, ``embed/``, ``analysis/`` and ``book/`` may all use it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import platform
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "TRACKED_LIBRARIES",
    "array_digest",
    "canonical_hash",
    "canonical_json",
    "file_sha256",
    "json_default",
    "library_versions",
    "source_hash",
]

# Distributions whose versions a chapter's provenance records (numerics or output formats depend on them).
TRACKED_LIBRARIES = (
    "numpy", "scipy", "pandas", "pyarrow", "scikit-learn", "faiss-cpu", "torch", "lightning",
    "open_clip_torch", "onnxruntime", "ripser", "persim", "umap-learn", "matplotlib", "seaborn",
    "plotly", "papermill", "nbconvert", "pydantic",
)


def json_default(obj: Any) -> Any:
    """JSON-compatible form of a value :mod:`json` cannot encode; ``TypeError`` for unknown types.

    Dataclass instances become dicts, numpy scalars Python numbers (non-finite floats ``None``),
    arrays nested lists, paths strings, sets sorted lists, ``pd.NA``/``pd.NaT`` ``None``.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    # pandas' missing-value singletons, recognised by type name so this module needs no pandas.
    if type(obj).__name__ in ("NAType", "NaTType"):
        return None
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def _json_default_or_str(obj: Any) -> Any:
    # A hash must accept anything; an object JSON cannot encode is hashed by its ``str``.
    try:
        return json_default(obj)
    except TypeError:
        return str(obj)


def canonical_json(obj: Any) -> str:
    """``obj`` as canonical JSON: sorted keys, no whitespace, :func:`json_default` for other
    values, ``str`` for anything else."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default_or_str)


def canonical_hash(obj: Any) -> str:
    """Hex SHA-256 of :func:`canonical_json` of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def file_sha256(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def array_digest(array: np.ndarray | None) -> str | None:
    """Hex SHA-256 of an array's dtype, shape and C-order bytes (``None`` stays ``None``)."""
    if array is None:
        return None
    a = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    digest.update(a.tobytes())
    return digest.hexdigest()


def source_hash(modules: Iterable[str]) -> str:
    """Hex SHA-256 over the source files of ``modules`` (by module name, in sorted order)."""
    digest = hashlib.sha256()
    for name in sorted(set(modules)):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"no source file for module {name!r}", name=name)
        digest.update(name.encode())
        digest.update(Path(spec.origin).read_bytes())
    return digest.hexdigest()


def library_versions(
    names: Iterable[str] | None = None, *, keep_missing: bool = False
) -> dict[str, str | None]:
    """Installed versions of distributions, read from package metadata (not by importing: a cache
    hit should not pay for importing torch or open_clip).

    Parameters
    ----------
    names : iterable of str, optional
        Distribution names. ``None``: ``python``, ``skinmap`` and :data:`TRACKED_LIBRARIES`.
    keep_missing : bool, default False
        Map a distribution that is not installed to ``None`` instead of leaving it out.
    """
    out: dict[str, str | None] = {}
    if names is None:
        import skinmap

        out = {"python": platform.python_version(), "skinmap": skinmap.__version__}
        names = TRACKED_LIBRARIES
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if keep_missing:
                out[name] = None
    return out
