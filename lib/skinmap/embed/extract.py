"""Batched, cached, resumable extraction of one member's vectors for a list of image files.

Cache
    ``cache_dir/vectors/<member>-<sha(identity)>/part-*.npz``; each part holds the SHA-256 of the
    image *file bytes*, the l2-normalised vector and the decode status. ``identity`` is the
    encoder's identity (incl. its weights hash) joined with the decoding recipe
    (:data:`skinmap.embed.images.PREPROCESSING`), so the key is (image content, encoder, decoding):
    a renamed file is not re-embedded; an edited file, a retrained encoder or a changed decoding
    is. Parts are written atomically every ``shard_size`` images, so a crash loses at most one
    shard and a rerun embeds only what is missing.
Engines
    ``"lightning"`` runs ``Trainer.predict`` (one CPU, one GPU, or DDP over many devices/nodes,
    e.g. under ``torchrun`` or ``srun``). Each rank embeds the missing images it owns by content
    hash (:mod:`skinmap.embed.shards`: a fixed, coordination-free slice) and writes its own parts
    ``part-r<rank>-w<world>-*.npz``; after a barrier every rank merges the parts in the list's
    order with :func:`~skinmap.embed.shards.merge_vectors`, which verifies that every image has
    exactly one vector (an error names the missing or conflicting image and part file), and rank 0
    removes half-written parts. ``"inline"`` is the same DataLoader and writer without a Trainer
    (for a handful of images, e.g. the atlas app's upload). With ``num_workers=0`` the inline
    engine decodes in one thread ahead of the encoder (:func:`decode_ahead`); that overlaps
    decoding with encoding at less CPU cost than a worker process (measured in
    ``tests/benchmarks/bench_embed.py``).
Bad input
    Unreadable/truncated files are skipped, grayscale/RGBA/16-bit converted (see
    :mod:`skinmap.embed.images`); a vector that is non-finite or constant is rejected as
    ``skipped:nan_vector`` / ``skipped:constant_vector``. Skipped rows are NaN in ``vectors``
    and counted in :meth:`ExtractionResult.counts` -- never a crash, never a silent vector.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from skinmap.embed.images import PREPROCESSING, STATUS_OK, is_skipped, read_image
from skinmap.embed.members import ImageEncoder
from skinmap.embed.shards import PART_GLOB, UNREADABLE_PART, clean_parts, merge_vectors, part_tag, rank_positions
from skinmap.hashing import file_sha256
from skinmap.io import atomic_path

__all__ = [
    "ExtractionResult", "VectorCache", "cache_identity", "decode_ahead", "extract_vectors", "hash_files",
    "validate_vectors",
]


def _sha256_file(path) -> str | None:
    if path is None or path is pd.NA or (isinstance(path, float) and np.isnan(path)):
        return None
    try:
        return file_sha256(path)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return None


def hash_files(paths: Sequence, *, threads: int = 4, progress: bool = True) -> list[str | None]:
    """SHA-256 of each file's bytes (``None`` for a missing path); hashing releases the GIL."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        it = pool.map(_sha256_file, list(paths), chunksize=64)
        return list(tqdm(it, total=len(paths), desc="hash images", disable=not progress, leave=False))


def validate_vectors(vectors: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """l2-normalise rows; non-finite or constant rows become NaN with a named status."""
    vectors = np.asarray(vectors, dtype=np.float32)
    out = np.full_like(vectors, np.nan)
    status: list[str] = []
    for i, v in enumerate(vectors):
        if not np.isfinite(v).all():
            status.append("skipped:nan_vector")
            continue
        scale = max(1.0, float(np.abs(v).max()))
        norm = float(np.linalg.norm(v))
        if norm <= 1e-12 or float(np.ptp(v)) <= 1e-8 * scale:
            status.append("skipped:constant_vector")
            continue
        out[i] = v / norm
        status.append(STATUS_OK)
    return out, status


def cache_identity(encoder: ImageEncoder) -> str:
    """What the cached vectors depend on besides the image bytes: the encoder and the decoding."""
    return f"{encoder.identity}|{PREPROCESSING}"


class VectorCache:
    """Content-addressed vector store of one encoder (see the module doc)."""

    def __init__(self, cache_dir: str | os.PathLike, identity: str, name: str = "member"):
        digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
        self.identity = identity
        self.root = Path(cache_dir) / "vectors" / f"{name}-{digest}"

    def load(self) -> dict[str, tuple[np.ndarray, str]]:
        entries: dict[str, tuple[np.ndarray, str]] = {}
        for part in sorted(self.root.glob(PART_GLOB)):
            try:
                with np.load(part, allow_pickle=False) as z:
                    for h, v, s in zip(z["hashes"], z["vectors"], z["status"]):
                        entries[str(h)] = (v, str(s))
            except UNREADABLE_PART:
                continue  # a part from a crashed writer: its images are simply re-embedded
        return entries

    def write(self, hashes: Sequence[str], vectors: np.ndarray, status: Sequence[str], tag: str = "") -> None:
        if len(hashes) == 0:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "IDENTITY").write_text(self.identity + "\n")
        target = self.root / f"part-{tag}{uuid.uuid4().hex}.npz"
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, hashes=np.asarray(hashes, dtype=str),
                         vectors=np.asarray(vectors, dtype=np.float32), status=np.asarray(status, dtype=str))


class _FileDataset(Dataset):
    def __init__(self, paths: Sequence[str], size: int):
        self.paths = list(paths)
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        decoded, data = read_image(self.paths[i], self.size)
        pixels = decoded.pixels if decoded.pixels is not None else np.zeros((self.size, self.size, 3), np.uint8)
        digest = hashlib.sha256(data).hexdigest() if data is not None else ""
        return {"index": i, "pixels": pixels, "status": decoded.status, "hash": digest}


def _collate(items):
    # numpy, not torch.stack: a torch op here would start torch's OpenMP pool in the decoding
    # thread, whose idle workers then spin against the encoder for the cores.
    return {
        "index": torch.from_numpy(np.array([it["index"] for it in items], dtype=np.int64)),
        "pixels": torch.from_numpy(np.stack([it["pixels"] for it in items])),
        "status": [it["status"] for it in items],
        "hash": [it["hash"] for it in items],
    }


def _encode_batch(encoder: ImageEncoder, batch) -> tuple[list[str], np.ndarray, list[str]]:
    status = list(batch["status"])
    ok = np.array([not is_skipped(s) for s in status])
    vectors = np.full((len(status), encoder.dim), np.nan, np.float32)
    if ok.any():
        raw = encoder.encode_uint8(batch["pixels"].numpy()[ok])
        valid, vstatus = validate_vectors(raw)
        vectors[ok] = valid
        for j, i in enumerate(np.flatnonzero(ok)):
            if vstatus[j] != STATUS_OK:
                status[i] = vstatus[j]
    return list(batch["hash"]), vectors, status


class _ShardBuffer:
    def __init__(self, cache: VectorCache, shard_size: int, tag: str):
        self.cache, self.shard_size, self.tag = cache, shard_size, tag
        self.hashes: list[str] = []
        self.vectors: list[np.ndarray] = []
        self.status: list[str] = []

    def add(self, hashes, vectors, status):
        for h, v, s in zip(hashes, vectors, status):
            if h:  # a missing file has no content hash and is not cached
                self.hashes.append(h), self.vectors.append(v), self.status.append(s)
        if len(self.hashes) >= self.shard_size:
            self.flush()

    def flush(self):
        if self.hashes:
            self.cache.write(self.hashes, np.stack(self.vectors), self.status, self.tag)
        self.hashes, self.vectors, self.status = [], [], []


@dataclass
class ExtractionResult:
    """Vectors in input order (NaN rows where skipped) with per-image status."""

    vectors: np.ndarray
    status: list[str]
    hashes: list[str | None]
    n_cached: int
    n_computed: int
    identity: str
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> np.ndarray:
        return np.array([not is_skipped(s) for s in self.status], dtype=bool)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.status).items()))


def _make_loader(paths, encoder, batch_size, num_workers):
    return DataLoader(
        _FileDataset(paths, encoder.image_size), batch_size=batch_size, shuffle=False,
        num_workers=num_workers, collate_fn=_collate, persistent_workers=False,
        prefetch_factor=4 if num_workers > 0 else None,
    )


def decode_ahead(batches: Iterable, depth: int = 2) -> Iterator:
    """Yield ``batches`` in order while a background thread produces up to ``depth`` ahead.

    Decoding (Pillow) and encoding (ONNX Runtime, torch) both release the GIL, so one thread
    decoding the next batch overlaps the current batch's encoding without a worker process:
    no fork, no pickling, no shared-memory copy of every batch. An exception in the producer is
    re-raised here; leaving the loop early (or an exception in the consumer) stops the producer.
    """
    items: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put((None, batch)):
                    return
        except BaseException as exc:  # handed to the consumer, re-raised there
            put((exc, None))
            return
        put((None, done))

    thread = threading.Thread(target=produce, name="decode-ahead", daemon=True)
    thread.start()
    try:
        while True:
            exc, batch = items.get()
            if exc is not None:
                raise exc
            if batch is done:
                return
            yield batch
    finally:
        stop.set()
        thread.join()


def _run_lightning(paths, hashes, encoder, cache, shard_size, batch_size, num_workers, trainer_kwargs):
    """Embed the images this rank owns (:func:`skinmap.embed.shards.owner_ranks`) with ``Trainer.predict``.

    Every rank calls this with the same missing images (or a superset: the slice is by content,
    so ranks need not agree on what is missing) and builds its own DataLoader once the process
    group exists (``predict_dataloader``; Lightning's distributed sampler is off). Returns
    ``(rank, world_size)`` after a barrier: every rank's parts are on disk.
    """
    import lightning as L
    from lightning.pytorch.callbacks import BasePredictionWriter

    class ExtractionModule(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.encoder = encoder
            if isinstance(getattr(encoder, "module", None), torch.nn.Module):
                self.net = encoder.module  # registered, so Lightning moves it to this rank's device

        def predict_dataloader(self):
            rank, world = self.trainer.global_rank, self.trainer.world_size
            mine = rank_positions(hashes, rank, world)
            # Lightning refuses an empty DataLoader: a rank with nothing to embed gets one placeholder
            # (no file: status skipped:missing, no content hash, so nothing is encoded or cached)
            return _make_loader([paths[i] for i in mine] or [None], encoder, batch_size, num_workers)

        def predict_step(self, batch, batch_idx):
            return _encode_batch(self.encoder, batch)

    class ShardWriter(BasePredictionWriter):
        def __init__(self):
            super().__init__(write_interval="batch")
            self.buffer = None

        def setup(self, trainer, pl_module, stage):
            self.buffer = _ShardBuffer(cache, shard_size, part_tag(trainer.global_rank, trainer.world_size))

        def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
            self.buffer.add(*prediction)

        def on_predict_epoch_end(self, trainer, pl_module):
            self.buffer.flush()

    kwargs = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                  enable_model_summary=False, enable_progress_bar=True)
    kwargs.update(trainer_kwargs or {})
    kwargs["use_distributed_sampler"] = False  # the slice is by content hash, made in predict_dataloader
    trainer = L.Trainer(callbacks=[ShardWriter()], **kwargs)
    trainer.predict(ExtractionModule(), return_predictions=False)
    trainer.strategy.barrier()
    return trainer.global_rank, trainer.world_size


def extract_vectors(
    paths: Sequence,
    encoder: ImageEncoder,
    cache_dir: str | os.PathLike,
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    shard_size: int = 2048,
    engine: str = "auto",
    trainer_kwargs: dict | None = None,
    progress: bool = True,
    hashes: Sequence[str | None] | None = None,
    merge_on: str = "every_rank",
) -> ExtractionResult:
    """Embed ``paths`` with ``encoder``, reusing and extending the cache; see the module doc.

    ``hashes`` (from :func:`hash_files`) can be passed when several members embed the same files.
    ``merge_on`` (lightning engine): ``"every_rank"`` returns the merged, verified result on every
    rank; ``"rank0"`` merges on rank 0 only (the others return an empty result, ``extra["merged"]``
    False), so that a node does not hold ``n x dim`` vectors once per GPU at paper scale.
    """
    if merge_on not in ("every_rank", "rank0"):
        raise ValueError(f"merge_on must be 'every_rank' or 'rank0', got {merge_on!r}")
    if engine not in ("auto", "lightning", "inline"):
        raise ValueError(f"engine must be 'auto', 'lightning' or 'inline', got {engine!r}")
    if engine == "auto":  # a Trainer only when asked for one (devices, strategy, accelerator)
        engine = "lightning" if trainer_kwargs else "inline"
    paths = [None if (p is None or p is pd.NA or (isinstance(p, float) and np.isnan(p))) else str(p)
             for p in paths]
    identity = cache_identity(encoder)
    cache = VectorCache(cache_dir, identity, encoder.name)
    if hashes is None:
        hashes = hash_files(paths, progress=progress)
    elif len(hashes) != len(paths):
        raise ValueError(f"{len(hashes)} hashes for {len(paths)} paths")
    hashes = list(hashes)
    known = cache.load()
    todo = sorted({h: i for i, h in enumerate(hashes) if h is not None and h not in known}.values())
    n_cached = sum(1 for h in hashes if h is not None and h in known)
    if engine == "lightning":
        # every rank enters the Trainer, even with nothing to embed, so that the collectives match
        rank, world = _run_lightning([paths[i] for i in todo], [hashes[i] for i in todo], encoder, cache,
                                   shard_size, batch_size, num_workers, trainer_kwargs)
        del known
        extra = {"rank": rank, "world_size": world, "merged": rank == 0 or merge_on == "every_rank"}
        if not extra["merged"]:
            return ExtractionResult(np.zeros((0, encoder.dim), np.float32), [], hashes, n_cached, len(todo), identity,
                                    extra=extra)
        vectors, status, report = merge_vectors(cache.root, hashes, paths=paths, dim=encoder.dim, progress=progress)
        if rank == 0:  # no writer is left (barrier): drop half-written parts, set unreadable ones aside
            clean_parts(cache.root, bad_parts=[name for name, _ in report.bad_parts])
        return ExtractionResult(vectors, status, hashes, n_cached, len(todo), identity, extra={**extra, "merge": report})
    if todo:
        todo_paths = [paths[i] for i in todo]
        loader = _make_loader(todo_paths, encoder, batch_size, num_workers)
        buffer = _ShardBuffer(cache, shard_size, part_tag(0, 1))
        # Without worker processes, decode in a thread ahead of the encoder (see decode_ahead).
        batches = decode_ahead(loader) if num_workers == 0 else loader
        for batch in tqdm(batches, total=len(loader), desc=f"embed {encoder.name}", disable=not progress,
                          leave=False):
            buffer.add(*_encode_batch(encoder, batch))
        buffer.flush()
        known = cache.load()
    vectors = np.full((len(paths), encoder.dim), np.nan, np.float32)
    status: list[str] = []
    for i, h in enumerate(hashes):
        if h is None:
            status.append("skipped:missing")
        elif h in known:
            vectors[i], s = known[h]
            status.append(s)
        else:  # only possible if a file changed while we ran
            status.append("skipped:unreadable")
    return ExtractionResult(vectors, status, hashes, n_cached, len(todo), identity)
