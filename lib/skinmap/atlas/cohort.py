"""A proposed cohort as ``assess`` reads it: ids, image paths or vectors, checked on the way in.

Every problem names the file: a ``.npy`` that is not a NumPy array file, or whose array is not
one row per image (0-d, 1-d, 3-d, non-numeric), is an error; an image that cannot be read or
whose header declares more than ``max_pixels`` pixels (a decompression bomb) is left out of the
cohort with a note naming it, before any pixel is decoded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from skinmap.data.images import IMAGE_SUFFIXES, MAX_IMAGE_PIXELS, probe_image

__all__ = ["load_cohort", "load_cohort_vectors", "check_vectors", "cohort_name", "folder_name", "screen_images"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def load_cohort(source: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """The cohort as a table with ``cohort_id`` and ``path`` (NA when only vectors are given).

    Parameters
    ----------
    source : path or DataFrame
        A folder (every image file below it, sorted), a CSV/TSV/parquet table with a ``path``
        column (relative paths resolve against the table's folder; ``uid`` or ``image_id``
        become ``cohort_id`` when present), a ``.npy`` file of precomputed vectors (ids are row
        numbers), or a DataFrame in either table form.

    Returns
    -------
    DataFrame
        ``cohort_id``, ``path`` and, when given, ``dataset`` and ``diagnosis``.
    """
    if isinstance(source, pd.DataFrame):
        return _cohort_table(source.copy(), Path.cwd())
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"cohort {path} does not exist")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {path}")
        return pd.DataFrame(
            {"cohort_id": [str(p.relative_to(path)) for p in files], "path": [str(p.resolve()) for p in files]}
        )
    suffix = path.suffix.lower()
    if suffix == ".npy":
        n = load_cohort_vectors(path).shape[0]
        return pd.DataFrame({"cohort_id": [str(i) for i in range(n)], "path": pd.Series([pd.NA] * n, dtype="string")})
    if suffix == ".parquet":
        table = pd.read_parquet(path)
    elif suffix in (".csv", ".tsv", ".txt"):
        table = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    else:
        raise ValueError(f"cohort {path}: expected a folder, .csv, .tsv, .parquet or .npy")
    return _cohort_table(table, path.parent)


def _cohort_table(table: pd.DataFrame, base: Path) -> pd.DataFrame:
    id_col = next((c for c in ("cohort_id", "uid", "image_id") if c in table), None)
    ids = table[id_col].astype(str) if id_col else pd.Series([str(i) for i in range(len(table))])
    if "path" in table:
        paths = table["path"].astype("string")
        paths = paths.map(lambda p: p if pd.isna(p) or os.path.isabs(p) else str((base / p).resolve()))
    else:
        paths = pd.Series([pd.NA] * len(table), dtype="string")
    out = pd.DataFrame({"cohort_id": ids.to_numpy(), "path": paths.to_numpy()})
    for extra in ("dataset", "diagnosis"):
        if extra in table:
            out[extra] = table[extra].to_numpy()
    return out


def load_cohort_vectors(path: str | os.PathLike) -> np.ndarray:
    """Precomputed fused-space vectors from a ``.npy`` file, one row per cohort image.

    Raises ``ValueError`` naming the file when it is not a NumPy array file (pickles are never
    loaded) or its array is not a non-empty 2-D numeric table.
    """
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"cohort vectors {path}: not a NumPy .npy array file ({exc})") from None
    if isinstance(array, np.lib.npyio.NpzFile):  # np.load opens .npz archives whatever the name
        array.close()
        raise ValueError(f"cohort vectors {path}: an .npz archive, not one .npy array")
    return check_vectors(array, source=str(path))


def check_vectors(vectors, *, source: str = "cohort vectors", n_rows: int | None = None) -> np.ndarray:
    """``vectors`` as a float32 ``(n, d)`` array, or a ``ValueError`` saying what is wrong."""
    array = np.asarray(vectors)
    if array.dtype.kind not in "fiub":
        raise ValueError(f"{source}: expected numbers, got an array of dtype {array.dtype}")
    if array.ndim != 2:
        hint = " (a single vector? save it with shape (1, d))" if array.ndim == 1 else ""
        raise ValueError(f"{source}: expected a 2-D array, one row per cohort image; got shape {array.shape}{hint}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{source}: the array is empty (shape {array.shape})")
    if n_rows is not None and array.shape[0] != n_rows:
        raise ValueError(f"{source}: {array.shape[0]} vectors for {n_rows} cohort rows")
    return array.astype(np.float32, copy=False)


def cohort_name(source: str | os.PathLike | pd.DataFrame) -> str:
    """The cohort's own name: a folder's name or a file's stem after resolving ``.`` and ``..``
    (so ``..`` is named after the folder it means), ``"cohort"`` for a table in memory."""
    if isinstance(source, pd.DataFrame):
        return "cohort"
    resolved = Path(source).resolve()
    return (resolved.name if resolved.is_dir() else resolved.stem) or "cohort"


def folder_name(name: str) -> str:
    """``name`` made safe as one folder name: never empty, ``.``, ``..`` or a path."""
    return _UNSAFE.sub("_", name).strip("._") or "cohort"


def screen_images(paths: Sequence[str], *, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[np.ndarray, list[str]]:
    """Which images may be decoded: ``(usable mask, one note per image left out)``.

    Reads headers only (:func:`skinmap.data.images.probe_image`), so a decompression bomb is
    recognised by its declared size before a pixel is decoded.
    """
    usable = np.ones(len(paths), dtype=bool)
    notes = []
    for i, path in enumerate(paths):
        if not Path(path).is_file():
            usable[i] = False
            notes.append(f"{path}: no such file; left out")
            continue
        probe = probe_image(path, max_pixels=max_pixels)
        if probe.problem == "unreadable_image":  # no header, or a decompression bomb
            usable[i] = False
            notes.append(f"{path}: {probe.reason}; left out")
    return usable, notes
