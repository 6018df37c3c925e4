"""Registered-pixel copy verification with a content-keyed disk cache (issue 15).

The evaluation split (chapter 03, before any training) and the quality chapter (02) decide the same
candidate pairs with the same call,
:func:`skinmap.analysis.quality.registration.registered_candidates`: each image's nearest
neighbours in the frozen pretrained member's vectors, registered on pixels. Registering tens of
thousands of pairs costs minutes, so the result is stored under a key made of what determines it:
the images' content hashes (in row order), the candidate vectors' bytes, every
:class:`~skinmap.analysis.quality.verification.CopyVerificationConfig` knob and the source code of
the registration modules. A rerun with the same images, vectors, knobs and code reads the stored
pairs instead of registering them again; whichever chapter runs first pays, the other reads.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from skinmap.analysis.quality.registration import registered_candidates
from skinmap.analysis.quality.verification import CopyVerificationConfig
from skinmap.hashing import array_digest, canonical_hash, source_hash
from skinmap.io import read_json, write_json, write_npy, write_parquet

__all__ = ["CODE_MODULES", "cache_key", "cached_registered_candidates"]

#: Modules whose source decides the registered scores (a change in any of them re-registers).
CODE_MODULES: tuple[str, ...] = (
    "skinmap.analysis.quality.registration",
    "skinmap.analysis.quality.matching",
    "skinmap.analysis.quality.thumbnails",
    "skinmap.analysis.quality.duplicates",
    "skinmap.analysis.quality.verification",
)


def cache_key(vectors: np.ndarray, hashes: Sequence[str | None], config: CopyVerificationConfig) -> str:
    """Hex key of one verification: content hashes of the images (row order), candidate vectors'
    bytes (float32), every verification knob and the registration code. ``threads`` is left out:
    it changes the speed, not the scores."""
    knobs = {k: v for k, v in dataclasses.asdict(config).items() if k != "threads"}
    return canonical_hash({"what": "registered_candidates", "hashes": [None if h is None else str(h) for h in hashes],
                           "vectors": array_digest(np.ascontiguousarray(vectors, np.float32)), "config": knobs,
                           "code": source_hash(CODE_MODULES)})


def cached_registered_candidates(
    vectors: np.ndarray,
    paths: Sequence,
    hashes: Sequence[str | None],
    config: CopyVerificationConfig,
    cache_dir: str | os.PathLike,
    *,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """:func:`~skinmap.analysis.quality.registration.registered_candidates`, stored by content.

    Parameters
    ----------
    vectors : ndarray of shape (n, d)
        Candidate vectors (e.g. the frozen member's, l2-normalised), row i = image i.
    paths : sequence of length n
        Image files, read only when the result is not stored yet.
    hashes : sequence of length n
        Content hash of each image (:func:`skinmap.embed.extract.hash_files`).
    config : CopyVerificationConfig
    cache_dir : path
        Folder of the stored results (``<cache_dir>/copy_verification/<key>.*``).
    progress : bool
        tqdm bars of the registration (the book's runner sends them to the build log).

    Returns
    -------
    (candidates, scored, readable)
        As :func:`registered_candidates`; ``scored.attrs["registration"]`` holds the cost of the
        computation that produced the pairs and ``cached`` (True when read from the store).
    """
    if not (len(vectors) == len(paths) == len(hashes)):
        raise ValueError(f"{len(vectors)} vectors, {len(paths)} paths and {len(hashes)} hashes")
    vectors = np.ascontiguousarray(vectors, np.float32)
    key = cache_key(vectors, hashes, config)
    folder = Path(cache_dir) / "copy_verification"
    names = {part: folder / f"{key}.{part}" for part in ("candidates.parquet", "scored.parquet", "readable.npy",
                                                        "cost.json")}
    if all(p.is_file() for p in names.values()):
        candidates = pd.read_parquet(names["candidates.parquet"])
        scored = pd.read_parquet(names["scored.parquet"])
        readable = np.load(names["readable.npy"])
        scored.attrs["registration"] = {**read_json(names["cost.json"]), "cached": True}
        return candidates, scored, readable
    start = time.process_time()
    candidates, scored, readable = registered_candidates(vectors, list(paths), config, progress=progress)
    cost = {**scored.attrs.get("registration", {}), "step_cpu_seconds": time.process_time() - start}
    write_parquet(candidates, names["candidates.parquet"])
    write_parquet(scored, names["scored.parquet"])
    write_npy(np.asarray(readable, bool), names["readable.npy"])
    write_json(cost, names["cost.json"])  # last: its presence marks a complete entry
    scored.attrs["registration"] = {**cost, "cached": False}
    return candidates, scored, readable
