"""The retrieval atlas' operations, independent of HTTP (paper §9, "digital atlas").

Upload a picture (or name a catalog id) and get its nearest cases in the fused space with their
metadata, filtered by body site, FST, modality and dataset, and the picture's place on the
atlas' 2-D map. :mod:`skinmap.atlas.server` serves these operations over HTTP; tests call them
directly too.

Uploads are content-addressed: the query id is the SHA-256 of the bytes, the vector is stored
under that id (:class:`~skinmap.atlas.store.CacheStore`), and the embedding runs behind a bounded
single-flight queue (:class:`~skinmap.atlas.inference.InferenceQueue`): identical concurrent
uploads share one inference, and a full queue answers 503 with a retry time instead of an
unbounded wait.

What a result list leaves out, by default (:mod:`skinmap.atlas.search`): a catalog case's own
group (lesion, patient, near-duplicate cluster: the atlas chapter's strict benchmark protocol) and
images the quality chapter flags (off-topic, conflicting near-duplicates; ``include_flagged``
shows them with their reason); rows of one near-duplicate cluster collapse to one result with a
count. Every answer says whether the query is out of distribution: its nearest similarity below
the ``ood_percentile``-th percentile of the atlas's own nearest-neighbour similarities.

Position of an upload on the map: the map is a UMAP of the atlas without a stored transform, so a
new point is placed at the similarity-weighted mean map position of its k nearest atlas cases
(the usual k-NN out-of-sample placement); a catalog case uses its own map position.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from skinmap import runs
from skinmap.analysis.retrieval import FILTERABLE
from skinmap.atlas.inference import InferenceQueue, QueueFull
from skinmap.atlas.search import FLAG_REASONS, AtlasIndex, AtlasIndexConfig, quality_flags
from skinmap.atlas.store import CacheStore
from skinmap.atlas.uploads import UploadRejected, check_image

__all__ = ["SHOWN_COLUMNS", "EmbedFn", "AtlasApp", "json_value", "default_embed_fn", "dataset_pages",
           "run_profile"]

EmbedFn = Callable[[list[str]], np.ndarray]
SHOWN_COLUMNS = (
    "uid", "dataset", "diagnosis", "icd10_code", "body_site", "fst", "age", "sex", "modality", "release_year",
)


def json_value(v):
    """A metadata value as plain JSON (numpy scalars unwrapped; NA, NaN and inf as ``None``)."""
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and not np.isfinite(v)):
        return None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


class AtlasApp:
    """The atlas' state and operations.

    Parameters
    ----------
    vectors, metadata : the atlas (fused space; one metadata row per vector with ``uid`` and
        ideally ``path`` for thumbnails).
    cache_dir : the only folder the app writes to.
    map2d : ``uid, x, y`` positions of the 2-D map, optional.
    embed_fn : ``embed_fn(paths) -> (n, d)`` embeds new images into the same space (``None``:
        uploads answer 503).
    max_pending : distinct uploads that may wait for or run on the embedder at once; more answer
        503 with ``Retry-After``.
    groups : (n,) group of each row (lesion, patient, near-duplicate cluster); a catalog query
        never retrieves its own group.
    flags : :func:`~skinmap.atlas.search.quality_flags` of the rows (``offtopic``, ``conflict``,
        ``flagged``, ``cluster``), optional.
    profile, synthetic : what the banner says about the atlas.
    index_config : :class:`~skinmap.atlas.search.AtlasIndexConfig` (IVF threshold, OOD percentile).
    """

    def __init__(
        self,
        vectors: np.ndarray,
        metadata: pd.DataFrame,
        *,
        cache_dir: str | Path,
        map2d: pd.DataFrame | None = None,
        embed_fn: EmbedFn | None = None,
        max_upload_bytes: int = 10 * 2**20,
        max_pixels: int = 40_000_000,
        k_default: int = 12,
        k_max: int = 100,
        thumb_size: int = 160,
        max_map_points: int = 20_000,
        vector_memory: int = 256,
        max_pending: int = 8,
        groups: np.ndarray | None = None,
        flags: pd.DataFrame | None = None,
        profile: str | None = None,
        synthetic: bool = False,
        index_config: AtlasIndexConfig | None = None,
    ):
        self.flags = flags.reset_index(drop=True) if flags is not None else None
        self.index = AtlasIndex(
            vectors, metadata, groups=groups, config=index_config,
            flagged=None if flags is None else flags["flagged"].to_numpy(bool),
            clusters=None if flags is None else flags["cluster"])
        self.metadata = self.index.metadata
        self.profile, self.synthetic = profile, bool(synthetic)
        self.pages = dataset_pages()
        self.store = CacheStore(cache_dir, vector_memory=vector_memory)
        self.cache_dir = self.store.root
        self.embed_fn = embed_fn
        self.queue = InferenceQueue(max_pending=max_pending)
        self.max_upload_bytes = int(max_upload_bytes)
        self.max_pixels = int(max_pixels)
        self.k_default, self.k_max = int(k_default), int(k_max)
        self.thumb_size = int(thumb_size)
        self.xy = np.full((len(self.metadata), 2), np.nan)
        if map2d is not None and len(map2d):
            pos = map2d.set_index(map2d["uid"].astype(str))[["x", "y"]]
            self.xy = pos.reindex(self.metadata["uid"].astype(str)).to_numpy(dtype=np.float64)
        rng = np.random.default_rng(0)
        has_xy = np.flatnonzero(np.isfinite(self.xy).all(axis=1))
        self.map_rows = np.sort(rng.choice(has_xy, size=min(max_map_points, has_xy.size), replace=False))
        self.shown = [c for c in SHOWN_COLUMNS if c in self.metadata]

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, *, cache_dir: str | Path | None = None,
                     embed_fn: EmbedFn | None = None, **kwargs) -> AtlasApp:
        """The atlas of a built run: fused vectors joined with the catalog, and the 2-D map.

        ``cache_dir`` defaults to the atlas chapter's app cache in the run directory; the
        embedder is the run's own pipeline unless ``embed_fn`` is given.
        """
        atlas = runs.load_atlas(run_dir)
        meta = atlas.samples
        map2d = runs.load_map2d(run_dir, missing_ok=True)
        # the atlas chapter's groups: the evaluation split's (lesion, patient, near-duplicate) and the
        # quality chapter's near-duplicate clusters
        clusters = runs.load_duplicate_clusters(run_dir, meta["uid"], missing_ok=True)
        groups = runs.load_groups(run_dir, meta["uid"])
        flags = quality_flags(meta["uid"], _optional_export(run_dir, "quality.offtopic_ranking"),
                              _optional_export(run_dir, "quality.clusters"), clusters)
        kwargs.setdefault("profile", run_profile(run_dir))
        kwargs.setdefault("synthetic", runs.load_ground_truth(run_dir) is not None)
        cache_dir = Path(cache_dir) if cache_dir is not None else runs.folder_path(run_dir, "atlas.app_cache")
        if embed_fn is None:
            embed_fn = default_embed_fn(run_dir, cache_dir)
        return cls(atlas.vectors, meta, cache_dir=cache_dir, map2d=map2d, embed_fn=embed_fn, groups=groups,
                   flags=flags, **kwargs)

    # ---------------------------------------------------------------- page data

    def options(self) -> dict:
        """Filter choices (distinct values with counts) and atlas facts for the page."""
        idx = self.index
        out = {"n_cases": len(self.metadata), "k_default": self.k_default, "k_max": self.k_max,
               "can_upload": self.embed_fn is not None, "max_upload_bytes": self.max_upload_bytes,
               "profile": self.profile, "synthetic": self.synthetic,
               "n_flagged": int(idx.flagged.sum()), "exclude_flagged": bool(idx.config.exclude_flagged),
               "index": {"kind": idx.kind, "nlist": idx.nlist, "nprobe": idx.nprobe},
               "ood": {"threshold": json_value(idx.ood_threshold), "percentile": idx.config.ood_percentile,
                       "n_reference": int(idx.nn_similarities.size)},
               "filters": {}}
        for col in FILTERABLE:
            if col in self.metadata:
                counts = self.metadata[col].astype("string").value_counts(dropna=True).sort_index()
                out["filters"][col] = [[str(v), int(n)] for v, n in counts.items()]
        return out

    def map_points(self) -> dict:
        """The (subsampled) map positions with a dataset group per point."""
        rows = self.map_rows
        if "dataset" in self.metadata:
            ds = self.metadata["dataset"].astype("string").fillna("?")
        else:
            ds = pd.Series(["?"] * len(self.metadata))
        codes, names = pd.factorize(ds.iloc[rows])
        return {"x": np.round(self.xy[rows, 0], 4).tolist(), "y": np.round(self.xy[rows, 1], 4).tolist(),
                "group": codes.tolist(), "groups": [str(n) for n in names], "n_total": len(self.metadata)}

    # ---------------------------------------------------------------- uploads

    def submit_upload(self, data: bytes) -> tuple[str, Future | None]:
        """Check an upload and queue its embedding: ``(query_id, future or None if known)``.

        Raises :class:`~skinmap.atlas.uploads.UploadRejected` for a bad image (4xx), no
        embedder (503) or a full queue (503, ``retry_after`` set).
        """
        check = check_image(data, max_bytes=self.max_upload_bytes, max_pixels=self.max_pixels)
        query_id = hashlib.sha256(data).hexdigest()
        try:
            self.store.recall(query_id)
            return query_id, None  # already embedded
        except KeyError:
            pass
        if self.embed_fn is None:
            raise UploadRejected(503, "this atlas has no embedding model; query by catalog id instead")
        try:
            future = self.queue.submit(query_id, self._embed_upload, query_id, data, check.suffix)
        except QueueFull as exc:
            raise UploadRejected(503, str(exc), retry_after=exc.retry_after) from None
        return query_id, future

    def upload(self, data: bytes) -> str:
        """Validate and embed an upload, waiting for the embedder; return its query id."""
        query_id, future = self.submit_upload(data)
        if future is not None:
            future.result()
        return query_id

    def _embed_upload(self, query_id: str, data: bytes, suffix: str) -> None:
        # Runs on the queue's one worker thread.
        try:
            self.store.recall(query_id)
            return  # a job for the same bytes finished between the caller's check and now
        except KeyError:
            pass
        with self.store.upload_file(data, suffix) as path:
            vector = np.asarray(self.embed_fn([str(path)]), dtype=np.float32).reshape(1, -1)[0]
        if vector.shape[0] != self.index.vectors.shape[1]:
            raise UploadRejected(500, "the embedder returned a vector of the wrong dimension")
        if not np.isfinite(vector).all():  # the pipeline marks images it cannot use with NaN
            raise UploadRejected(422, "the embedding model could not use this image")
        self.store.remember(query_id, vector)

    # ---------------------------------------------------------------- queries

    def neighbours(self, *, query_id: str | None = None, uid: str | None = None,
                   filters: Mapping[str, Sequence[str]] | None = None, k: int | None = None,
                   include_flagged: bool | None = None) -> dict:
        """Nearest cases of an uploaded query or a catalog case, with metadata and map positions.

        A catalog case never retrieves its own group; flagged images are left out unless
        ``include_flagged``; a near-duplicate cluster is one result with ``copies``. ``ood`` says
        whether the query's nearest eligible similarity is below the atlas's threshold.
        """
        k = max(1, min(int(k or self.k_default), self.k_max))
        filters = {c: v for c, v in (filters or {}).items() if c in FILTERABLE and c in self.metadata}
        if uid is not None:
            row = self.index.row_of(uid)
            exclude = self.index.group_rows(row)
            vector = self.index.vectors[row]
            position = self.xy[row]
            query = {"kind": "catalog", "uid": str(uid), "thumb": f"/thumb/{row}.jpg",
                     "n_excluded_group": int(exclude.size)}
        elif query_id is not None:
            vector = self.store.recall(query_id)
            exclude = np.empty(0, np.int64)
            near = self.index.search(vector, self.k_default)  # unfiltered: placement on the map
            position = self._place(near["row"].to_numpy(), near["similarity"].to_numpy())
            query = {"kind": "upload", "query_id": query_id}
        else:
            raise KeyError("give a query id or a catalog uid")
        hits = self.index.search(vector, k, filters=filters, exclude_rows=exclude,
                                 include_flagged=include_flagged, collapse=True)
        nearest = self.index.search(vector, 1, exclude_rows=exclude)  # unfiltered, eligible rows
        results = []
        for rec in hits.itertuples(index=False):
            row = int(rec.row)
            item = {"rank": int(rec.rank), "row": row, "similarity": round(float(rec.similarity), 5),
                    "thumb": f"/thumb/{row}.jpg", "x": json_value(self.xy[row, 0]), "y": json_value(self.xy[row, 1]),
                    "copies": int(rec.copies), "flags": self._flag_reasons(row)}
            item.update({c: json_value(getattr(rec, c)) for c in self.shown})
            item["dataset_url"] = self.pages.get(str(item.get("dataset")))
            results.append(item)
        query["x"], query["y"] = json_value(position[0]), json_value(position[1])
        top = float(nearest["similarity"].iloc[0]) if len(nearest) else float("nan")
        threshold = self.index.ood_threshold
        ood = {"nearest_similarity": json_value(round(top, 5)), "threshold": json_value(threshold),
               "percentile": self.index.config.ood_percentile,
               "out_of_distribution": bool(np.isfinite(top) and np.isfinite(threshold) and top < threshold)}
        include = (not self.index.config.exclude_flagged) if include_flagged is None else bool(include_flagged)
        return {"query": query, "k": k, "filters": filters, "include_flagged": include, "ood": ood,
                "results": results}

    def _flag_reasons(self, row: int) -> list[str]:
        if self.flags is None:
            return []
        return [FLAG_REASONS[key] for key in ("offtopic", "conflict") if bool(self.flags.at[row, key])]

    def _place(self, rows: np.ndarray, sims: np.ndarray) -> np.ndarray:
        xy = self.xy[rows]
        ok = np.isfinite(xy).all(axis=1)
        if not ok.any():
            return np.array([np.nan, np.nan])
        w = np.clip(sims[ok], 1e-6, None)
        return (xy[ok] * w[:, None]).sum(axis=0) / w.sum()

    def thumbnail(self, row: int) -> bytes:
        """JPEG thumbnail of a catalog case, cached; ``KeyError`` when there is none."""
        if not 0 <= row < len(self.metadata):
            raise KeyError("no such case")
        cached = self.store.thumbnail(row)
        if cached is not None:
            return cached
        path = self.metadata["path"].iloc[row] if "path" in self.metadata else None
        if path is None or pd.isna(path) or not Path(path).is_file():
            raise KeyError("this case has no image")
        try:
            with Image.open(path) as img:
                if img.width * img.height > self.max_pixels:
                    raise KeyError("catalog image too large for a thumbnail")
                img = img.convert("RGB")
                img.thumbnail((self.thumb_size, self.thumb_size))
                buf = io.BytesIO()
                img.save(buf, format="JPEG", quality=85)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise KeyError(f"unreadable catalog image ({type(exc).__name__})") from None
        data = buf.getvalue()
        self.store.store_thumbnail(row, data)
        return data

    def close(self) -> None:
        """Stop the inference worker (queued uploads are cancelled)."""
        self.queue.close()


def default_embed_fn(run_dir: str | Path, cache_dir: str | Path) -> EmbedFn | None:
    """The run's embedding pipeline as an ``embed_fn`` (``None`` when it is not installed).

    Its feature cache goes under the app's own ``cache_dir`` (never into the run directory).
    """
    try:
        from skinmap.embed import pipeline
    except ImportError:
        return None
    # Loaded once and reused for every upload (loading the members takes seconds).
    return pipeline.FusedEmbedder(runs.chapter_dir(run_dir, "embedding"), Path(cache_dir) / "embed")


def dataset_pages() -> dict[str, str]:
    """Dataset name -> its official page, from the dataset registry (synthetic sets have none)."""
    from skinmap.data.registry import registry

    reg = registry()
    if "url" not in reg:
        return {}
    reg = reg[reg["url"].notna()]
    return dict(zip(reg["dataset"].astype(str), reg["url"].astype(str)))


def run_profile(run_dir: str | Path) -> str | None:
    """The profile a run was built with (its manifest), or None when it does not say."""
    path = runs.run_file(run_dir, "manifest")
    try:
        import json

        return json.loads(Path(path).read_text()).get("profile")
    except (OSError, ValueError, AttributeError):
        return None


def _optional_export(run_dir: str | Path, key: str) -> pd.DataFrame | None:
    path = runs.export_path(run_dir, key)
    return runs.read_export(run_dir, key) if Path(path).is_file() else None
