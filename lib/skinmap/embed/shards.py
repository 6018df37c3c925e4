"""Per-rank sharding of an image list and the merge of a vector cache's parts.

Sharding
    The image with content hash ``h`` (SHA-256 of the file bytes, hex) belongs to rank
    ``int(h[:15], 16) % world_size`` (:func:`owner_ranks`). The slice is a pure function of the
    image's *content* and the world size: every rank computes its own slice from the list alone,
    with no communication, even while other ranks are already writing; it does not depend on the
    list's order (adding images to a catalog does not move the others) and is balanced in
    expectation (SHA-256 is uniform). It is *not* independent of the world size, by design: resume
    is keyed by content, not by rank, so a restart with another number of GPUs or nodes embeds
    exactly the images that have no vector yet, dealt over the new ranks. No vector is lost or
    computed twice when the world size changes.
Parts
    Rank ``r`` of ``w`` writes ``part-r<r>-w<w>-<uuid>.npz`` files into the member's cache folder
    (:class:`skinmap.embed.extract.VectorCache`), each atomically (temporary file + ``os.replace``),
    every ``shard_size`` images. A process killed mid-write leaves at most a hidden temporary file
    (``.part-*.tmp.npz``), never a truncated part; :func:`clean_parts` removes stale ones.
Merge
    :func:`merge_vectors` assembles the parts in the image list's order and verifies that every
    image with a file has exactly one vector: an image with none, or with two *different* vectors
    in two parts, is an error naming the image and the part file(s). A part that cannot be read
    (e.g. truncated by a full disk or a non-atomic copy) is ignored and reported -- its images
    count as missing and a rerun embeds them again. The merge streams: one pass reads only the
    parts' hash arrays, a second scatters each part's vectors into the output (optionally an
    ``.npy`` memmap), so a million-image cache never sits in memory twice.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

__all__ = [
    "CacheMergeError", "MergeReport", "PART_GLOB", "TEMP_GLOB", "UNREADABLE_PART", "clean_parts", "merge_vectors", "owner_ranks",
    "part_tag", "rank_positions", "scan_parts",
]

PART_GLOB = "part-*.npz"
#: temporary files of :func:`skinmap.io.atomic_path` for a part (``.<stem>.<token>.tmp.npz``)
TEMP_GLOB = ".part-*.tmp.npz"
BAD_SUFFIX = ".bad"
_TAG = re.compile(r"^part-r(\d+)-w(\d+)-")
_HASH_PREFIX = 15  # hex digits: 60 bits, fits an int64
#: what reading a truncated or foreign part raises
UNREADABLE_PART = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


class CacheMergeError(RuntimeError):
    """The parts do not hold exactly one vector for every image of the list."""


def part_tag(rank: int, world_size: int) -> str:
    """The file-name tag of rank ``rank``'s parts: ``part-<tag><uuid>.npz``."""
    return f"r{int(rank)}-w{int(world_size)}-"


def owner_ranks(hashes: Sequence[str | None], world_size: int) -> np.ndarray:
    """The rank that embeds each image.

    Parameters
    ----------
    hashes : sequence of str or None, length n
        Content hashes (hex SHA-256); ``None`` for an image without a file.
    world_size : int
        Number of ranks (processes over all nodes).

    Returns
    -------
    ndarray of int64, shape (n,)
        ``int(h[:15], 16) % world_size``; -1 where the hash is ``None``.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    return np.array([-1 if h is None else int(h[:_HASH_PREFIX], 16) % world_size for h in hashes], dtype=np.int64)


def rank_positions(hashes: Sequence[str | None], rank: int, world_size: int) -> np.ndarray:
    """Positions (ascending, into ``hashes``) of the images rank ``rank`` of ``world_size`` embeds."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size})")
    return np.flatnonzero(owner_ranks(hashes, world_size) == rank)


@dataclass
class MergeReport:
    """What a merge found: ``n_images`` rows, ``n_vectors`` distinct images with a vector, the part
    files read, unreadable parts (``bad_parts``, with the reason), hashes stored identically in two
    parts (``n_identical_duplicates``: harmless, e.g. two runs raced on one image), and the world
    sizes named by the parts' tags."""

    n_images: int
    n_vectors: int
    n_parts: int
    bad_parts: list[tuple[str, str]] = field(default_factory=list)
    n_identical_duplicates: int = 0
    world_sizes: list[int] = field(default_factory=list)


def scan_parts(root: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """``(parts, temporary files)`` in a cache folder, both sorted by name."""
    root = Path(root)
    return sorted(root.glob(PART_GLOB)), sorted(root.glob(TEMP_GLOB))


def clean_parts(root: str | os.PathLike, *, stale_after: float = 600.0, bad_parts: Sequence[str] = ()) -> list[str]:
    """Remove half-written parts and set unreadable ones aside; returns the names removed or renamed.

    Only call this when no writer is active (after the job, or rank 0 after the barrier):
    temporary files older than ``stale_after`` seconds are deleted (a live write takes well under
    a second; the guard protects a concurrent writer such as the atlas app sharing the cache), and
    each of ``bad_parts`` (names from :attr:`MergeReport.bad_parts`) is renamed ``<name>.bad`` so
    that neither the cache nor a merge reads it again and a rerun re-embeds its images.
    """
    root = Path(root)
    done: list[str] = []
    now = time.time()
    for tmp in scan_parts(root)[1]:
        with contextlib.suppress(FileNotFoundError):
            if now - tmp.stat().st_mtime >= stale_after:
                tmp.unlink()
                done.append(tmp.name)
    for name in bad_parts:
        with contextlib.suppress(FileNotFoundError):
            os.replace(root / name, root / (name + BAD_SUFFIX))
            done.append(name)
    return done


def _describe(i: int, h: str, paths: Sequence | None) -> str:
    where = f"{paths[i]}" if paths is not None and paths[i] is not None else f"image #{i}"
    return f"{where} (sha256 {h[:12]}, row {i})"


def merge_vectors(
    root: str | os.PathLike,
    hashes: Sequence[str | None],
    *,
    paths: Sequence | None = None,
    dim: int | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = False,
    max_listed: int = 10,
) -> tuple[np.ndarray, list[str], MergeReport]:
    """Assemble the parts of one cache folder in the order of an image list, verified.

    Parameters
    ----------
    root : path
        A member's cache folder (``VectorCache.root``: ``<cache_dir>/vectors/<member>-<digest>``).
    hashes : sequence of str or None, length n
        The image list's content hashes (:func:`skinmap.embed.extract.hash_files`); ``None`` for
        an image without a file (its row is NaN with status ``skipped:missing``, not an error).
    paths : sequence, length n, optional
        The image paths, only to name images in error messages.
    dim : int, optional
        Vector dimension (default: the first readable part's).
    out : path, optional
        Write the vectors to this ``.npy`` (a memmap) instead of memory.
    max_listed : int
        Images named in an error message (the count is always complete).

    Returns
    -------
    vectors : ndarray of float32, shape (n, dim)
        Row i is image i's vector (NaN where skipped); a memmap when ``out`` is given.
    status : list of str, length n
        The status stored with each vector (``ok``, ``converted:*``, ``skipped:*``).
    report : MergeReport

    Raises
    ------
    CacheMergeError
        An image with a file has no vector in any readable part, or two parts hold different
        vectors (or statuses) for it; the message names the image and the part file(s).
    """
    root = Path(root)
    hashes = list(hashes)
    if paths is not None and len(paths) != len(hashes):
        raise ValueError(f"{len(paths)} paths for {len(hashes)} hashes")
    positions: dict[str, list[int]] = {}
    for i, h in enumerate(hashes):
        if h is not None:
            positions.setdefault(h, []).append(i)
    parts = scan_parts(root)[0]
    # pass 1: which part row holds each needed hash (hash arrays only)
    where: dict[str, tuple[int, int]] = {}
    duplicates: dict[str, list[tuple[int, int]]] = {}
    readable: list[int] = []
    bad: list[tuple[str, str]] = []
    world_sizes: set[int] = set()
    for p, part in enumerate(tqdm(parts, desc="scan parts", disable=not progress, leave=False)):
        try:
            with np.load(part, allow_pickle=False) as z:
                part_hashes = z["hashes"]
                if dim is None:
                    dim = int(z["vectors"].shape[1])
        except UNREADABLE_PART as exc:
            bad.append((part.name, f"{type(exc).__name__}: {exc}"))
            continue
        readable.append(p)
        if (m := _TAG.match(part.name)) is not None:
            world_sizes.add(int(m.group(2)))
        for row, h in enumerate(part_hashes.tolist()):
            if h not in positions:
                continue
            if h in where:
                duplicates.setdefault(h, []).append((p, row))
            else:
                where[h] = (p, row)
    missing = [(positions[h][0], h) for h in positions if h not in where]
    if missing:
        owner = ""
        if len(world_sizes) == 1:
            (w,) = world_sizes
            owner = f"; with {w} ranks (the parts' tag) they belong to rank(s) " + ", ".join(
                map(str, sorted(set(owner_ranks([h for _, h in missing], w).tolist()))))
        listed = "; ".join(_describe(i, h, paths) for i, h in sorted(missing)[:max_listed])
        unread = f"; unreadable parts: {', '.join(n for n, _ in bad)}" if bad else ""
        raise CacheMergeError(
            f"{len(missing)} image(s) have no vector in {root}{owner}{unread}: {listed}"
            f"{' ...' if len(missing) > max_listed else ''}. Rerun the extraction: it embeds only these.")
    n = len(hashes)
    dim = int(dim or 0)
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        vectors = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(n, dim))
        vectors[:] = np.nan
    else:
        vectors = np.full((n, dim), np.nan, np.float32)
    status = ["skipped:missing"] * n
    # pass 2: scatter each part's rows; keep the duplicates' values to compare
    wanted: dict[int, list[tuple[int, str]]] = {}
    for h, (p, row) in where.items():
        wanted.setdefault(p, []).append((row, h))
    dup_rows: dict[int, list[tuple[int, str]]] = {}
    for h, extra in duplicates.items():
        for p, row in extra:
            dup_rows.setdefault(p, []).append((row, h))
    dup_values: dict[str, list[tuple[int, np.ndarray, str]]] = {}
    for p in tqdm(readable, desc="merge parts", disable=not progress, leave=False):
        if p not in wanted and p not in dup_rows:
            continue
        with np.load(parts[p], allow_pickle=False) as z:
            part_vectors, part_status = z["vectors"], z["status"]
        for row, h in wanted.get(p, []):
            rows = positions[h]
            vectors[rows] = part_vectors[row]
            s = str(part_status[row])
            for i in rows:
                status[i] = s
            if h in duplicates:
                dup_values.setdefault(h, []).append((p, part_vectors[row].copy(), s))
        for row, h in dup_rows.get(p, []):
            dup_values.setdefault(h, []).append((p, part_vectors[row].copy(), str(part_status[row])))
    conflicts = []
    for h, values in dup_values.items():
        p0, v0, s0 = values[0]
        for p1, v1, s1 in values[1:]:
            if s1 != s0 or v1.tobytes() != v0.tobytes():
                conflicts.append(f"{_describe(positions[h][0], h, paths)} in {parts[p0].name} and {parts[p1].name}")
    if conflicts:
        raise CacheMergeError(
            f"{len(conflicts)} image(s) have two different vectors in {root}: " + "; ".join(conflicts[:max_listed])
            + (" ..." if len(conflicts) > max_listed else "") + ". Delete one of the part files and rerun.")
    if out is not None:
        vectors.flush()
    report = MergeReport(n_images=n, n_vectors=len(where), n_parts=len(readable), bad_parts=bad,
                         n_identical_duplicates=sum(len(v) for v in duplicates.values()),
                         world_sizes=sorted(world_sizes))
    return vectors, status, report
