"""Cosine k-nearest-neighbour search with faiss, shared by every analysis: exact or IVF, CPU or GPU.

All vectors are l2-normalised first, so inner product equals cosine similarity and the cosine
distance used throughout the paper (eq. 2) is ``1 - similarity``.

Two engines behind one class, :class:`VectorIndex`, chosen by :class:`SearchConfig`:

* ``search_method="exact"``: ``IndexFlatIP``, brute force, exact (the default everywhere, so demo
  and mini results never depend on an approximation);
* ``search_method="ivf"``: ``IndexIVFFlat`` with inner product, for paper scale (about 1.1M x
  1,024 rows on 2 cores). The coarse quantiser is trained once by k-means on a seeded sample of
  ``ivf_train_size`` rows; a query visits the ``ivf_nprobe`` nearest of ``ivf_nlist`` lists, so
  it is approximate: measure its error with :func:`knn_recall` against an exact search on a
  sample. With ``ivf_nprobe == ivf_nlist`` every list is visited and the search is exact.
* ``search_method="ivf"`` with ``ivf_pca_components = p > 0``: candidates come from the IVF lists
  of the rows projected on their ``p`` leading principal axes (faiss ``PCAMatrix``, fitted on the
  same training sample; squared l2 in the projection, which for unit vectors ranks as cosine up to
  the discarded variance), and the best ``ivf_refine_factor * k`` candidates are re-ranked by their
  exact cosine in the full dimension (``IndexRefineFlat``). Every returned similarity is therefore
  exact; the only error is a true neighbour that never became a candidate, which
  :func:`knn_recall` measures. Scanning ``p``-d codes instead of ``d``-d rows makes a probed list
  ``d / p`` times cheaper, so far more lists can be probed for the same time (measured on the
  1.1M x 1,024 synthetic atlas: ``p = 64``, 128 of 2,564 lists, factor 2: recall@10 0.985 at
  1.2 CPU-ms per query, against 0.87-0.91 at 32 lists of 1,024-d IVF-flat at 100k rows). The index keeps the full
  rows for re-ranking (``n x d`` float32, as IVF-flat does) plus ``n x p`` codes.
* ``ivf_min_rows``: an IVF index grown from few rows (novelty's first years) holds a handful of rows
  spread over lists trained for the whole corpus, so a query's true neighbours are far away and
  rarely in its probed lists; while it holds fewer than ``ivf_min_rows`` rows it answers from an
  exact flat copy (dropped once the index reaches that size).

GPU: when ``use_gpu`` is true (``None``: the installed faiss has ``StandardGpuResources`` and
``get_num_gpus() > 0``) the *same* CPU-built index is moved with ``faiss.index_cpu_to_gpu``;
training, adding and searching then run the same code on the GPU index. There is no separate
GPU code path.

Memory: :meth:`VectorIndex.add` and :meth:`VectorIndex.search` read their inputs in row chunks
(optionally a subset ``rows``), so a read-only ``np.memmap`` / ``np.load(..., mmap_mode="r")``
array is never copied whole besides the index's own float32 storage (``n x d``, as flat and
IVF-flat both keep full vectors); each chunk is l2-normalised on its own. No ``n x n`` matrix is
ever formed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from tqdm import tqdm

from skinmap.config import check_knobs, knob

__all__ = [
    "l2_normalize",
    "KnnResult",
    "SearchConfig",
    "SearchMethod",
    "VectorIndex",
    "ivf_nlist",
    "training_sample",
    "knn_search",
    "knn_recall",
    "build_index",
    "gpu_available",
]

SearchMethod = Literal["exact", "ivf"]

def l2_normalize(x: np.ndarray, *, eps: float = 1e-12) -> np.ndarray:
    """Return float32 rows scaled to unit l2 norm.

    Raises ``ValueError`` on non-finite values or an all-zero row, which has no direction and
    would otherwise silently become a zero vector with similarity 0 to everything.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array (n, d), got shape {x.shape}")
    if not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        raise ValueError(f"{bad.size} row(s) contain NaN/inf (first: row {bad[0]})")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms <= eps).any():
        bad = np.flatnonzero(norms[:, 0] <= eps)
        raise ValueError(f"{bad.size} row(s) have zero norm (first: row {bad[0]})")
    return np.ascontiguousarray(x / norms, dtype=np.float32)


def gpu_available(faiss=None) -> bool:
    """Whether the installed faiss has GPU support and sees at least one device."""
    if faiss is None:
        import faiss
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _to_device(index, use_gpu: bool | None):
    """The one place an index moves to a GPU (``use_gpu=None``: when one is available)."""
    import faiss

    if use_gpu is None:
        use_gpu = gpu_available(faiss)
    if use_gpu:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    return index


def _ivf_part(index):
    """The IVF index inside ``index`` (its ``nprobe``), or None where faiss cannot reach it from
    Python (a GPU IVF inside a PCA wrapper; :meth:`VectorIndex._set_nprobe` then goes through
    ``GpuParameterSpace``)."""
    import faiss

    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def build_index(base: np.ndarray, *, use_gpu: bool | None = None):
    """An exact inner-product faiss index over already-normalised ``base`` rows.

    ``use_gpu=None`` uses a GPU when the installed faiss has GPU support and sees a device.
    """
    import faiss

    base = np.ascontiguousarray(base, dtype=np.float32)
    index = _to_device(faiss.IndexFlatIP(base.shape[1]), use_gpu)
    index.add(base)
    return index


@dataclass(frozen=True)
class SearchConfig:
    """The knobs of the k-NN engine (:class:`VectorIndex`, :func:`knn_search`)."""

    search_method: SearchMethod = knob(
        "exact", description="k-NN engine: brute-force 'exact' (IndexFlatIP) or approximate 'ivf' (IndexIVFFlat)")
    ivf_nlist: int = knob(
        0, ge=0, description="IVF inverted lists; 0 = about 4 sqrt(n), at most (training rows) // 39")
    ivf_nprobe: int = knob(32, ge=1, description="IVF lists visited per query (more = slower, higher recall)")
    ivf_train_size: int = knob(
        100_000, ge=1, description="rows sampled (seeded) to train the IVF coarse quantiser by k-means")
    ivf_min_rows: int = knob(
        0, ge=0, description="an IVF index answers by brute force while it holds fewer rows than this "
                             "(a few rows spread over many lists defeat the coarse quantiser); 0 = never")
    ivf_pca_components: int = knob(
        0, ge=0, description="IVF candidates searched in this many principal axes, then re-ranked exactly "
                             "in the full dimension; 0 = IVF-flat in the full dimension")
    ivf_refine_factor: int = knob(
        2, ge=1, description="with ivf_pca_components: candidates re-ranked per neighbour asked (k_factor)")
    seed: int = knob(0, ge=0, description="seed of the IVF training sample and k-means")

    def __post_init__(self) -> None:
        check_knobs(self)


def ivf_nlist(config: SearchConfig, n_total: int, n_train: int) -> int:
    """The number of IVF lists: ``config.ivf_nlist``, or ``round(4 sqrt(n_total))`` when 0, capped
    at ``n_train // 39`` (faiss k-means wants >= 39 training points per centroid) and >= 1."""
    nlist = config.ivf_nlist or int(round(4.0 * math.sqrt(max(n_total, 1))))
    return max(1, min(nlist, n_train // 39))


def _chunks(n: int, size: int, desc: str):
    starts = range(0, n, size)
    return tqdm(starts, desc=desc, unit="chunk", disable=True if len(starts) < 2 else None, leave=False)


def _read_rows(vectors, rows: np.ndarray | None, start: int, stop: int, normalize: bool) -> np.ndarray:
    """Rows ``start:stop`` of ``vectors`` (or of ``vectors[rows]``) as float32, normalised if asked."""
    block = vectors[start:stop] if rows is None else vectors[rows[start:stop]]
    return l2_normalize(block) if normalize else np.ascontiguousarray(block, dtype=np.float32)


def _check_2d(x, name: str) -> tuple[int, int]:
    shape = np.shape(x)
    if len(shape) != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {shape}")
    return int(shape[0]), int(shape[1])


def training_sample(vectors, size: int, *, seed: int = 0, rows: np.ndarray | None = None,
                    normalize: bool = True, chunk_size: int = 65_536) -> np.ndarray:
    """A seeded uniform sample of at most ``size`` rows of ``vectors`` (or of ``vectors[rows]``).

    The sampled row numbers are read in increasing order (sequential on a memmap) and
    l2-normalised per chunk. Returns an array of shape ``(min(size, n), d)``.
    """
    n, _ = _check_2d(vectors, "vectors")
    pool = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    if pool.size > size:
        pick = np.random.default_rng(seed).choice(pool.size, size=size, replace=False)
        pool = pool[np.sort(pick)]
    pool = np.sort(pool)
    parts = [_read_rows(vectors, pool, s, min(s + chunk_size, pool.size), normalize)
             for s in _chunks(pool.size, chunk_size, "IVF training sample")]
    return np.concatenate(parts, axis=0) if parts else np.empty((0, np.shape(vectors)[1]), np.float32)


class VectorIndex:
    """One faiss inner-product index (exact flat or IVF-flat), on CPU or GPU by one code path.

    Row ids returned by :meth:`search` are insertion order (``0 .. ntotal - 1``), ``-1`` where
    fewer than ``k`` neighbours exist.

    Parameters
    ----------
    dim : int
        Vector dimension ``d``.
    config : SearchConfig, optional
        Engine knobs (default: exact).
    use_gpu : bool, optional
        Move the index to a GPU; ``None`` = when faiss has GPU support and sees a device.

    Examples
    --------
    >>> index = VectorIndex(d, SearchConfig(search_method="ivf"))
    >>> index.train(training_sample(vectors, 100_000))   # IVF only; exact is a no-op
    >>> index.add(vectors)                                 # memmap-friendly, chunked
    >>> res = index.search(queries, 10)
    """

    def __init__(self, dim: int, config: SearchConfig | None = None, *, use_gpu: bool | None = None):
        self.dim = int(dim)
        self.config = SearchConfig() if config is None else config
        self.use_gpu = use_gpu
        self.nlist: int | None = None
        self._index = None
        self._quantizer = None
        self._ivf = None  # the IVF part (its nprobe), inside the PCA/re-rank wrappers when present
        self._small = None  # an exact copy answering while the IVF index holds < ivf_min_rows rows
        self._nprobe = 0
        if self.config.search_method == "exact":
            import faiss

            self._index = _to_device(faiss.IndexFlatIP(self.dim), use_gpu)

    @property
    def ntotal(self) -> int:
        """Number of vectors added so far."""
        return 0 if self._index is None else int(self._index.ntotal)

    @property
    def is_trained(self) -> bool:
        return self._index is not None and bool(self._index.is_trained)

    def train(self, sample: np.ndarray, *, n_total: int | None = None, normalize: bool = True) -> None:
        """Train the IVF coarse quantiser on ``sample`` (n_train, d); a no-op for the exact engine.

        ``n_total`` (default ``len(sample)``) is the number of rows the index will eventually hold,
        used by the automatic ``ivf_nlist`` rule (:func:`ivf_nlist`).
        """
        if self.config.search_method == "exact":
            return
        import faiss

        n_train, d = _check_2d(sample, "sample")
        if d != self.dim:
            raise ValueError(f"sample has dimension {d} but the index has {self.dim}")
        if n_train < 1:
            raise ValueError("an IVF index needs at least one training row")
        x = l2_normalize(sample) if normalize else np.ascontiguousarray(sample, dtype=np.float32)
        self.nlist = ivf_nlist(self.config, n_train if n_total is None else n_total, n_train)
        p = min(self.config.ivf_pca_components, self.dim)
        if p:
            # candidates in p principal axes (squared l2 ranks unit vectors as cosine), re-ranked exactly
            self._quantizer = faiss.IndexFlatL2(p)
            ivf = faiss.IndexIVFFlat(self._quantizer, p, self.nlist, faiss.METRIC_L2)
            ivf.cp.seed = self.config.seed
            base = _to_device(faiss.IndexPreTransform(faiss.PCAMatrix(self.dim, p), ivf), self.use_gpu)
            base.train(x)
            index = faiss.IndexRefineFlat(base)
            index.k_factor = float(self.config.ivf_refine_factor)
            self._ivf = _ivf_part(base)
        else:
            self._quantizer = faiss.IndexFlatIP(self.dim)
            index = faiss.IndexIVFFlat(self._quantizer, self.dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = self.config.seed
            index = _to_device(index, self.use_gpu)
            index.train(x)
            self._ivf = _ivf_part(index)
        self._index = index
        self._set_nprobe(min(self.config.ivf_nprobe, self.nlist))
        if self.config.ivf_min_rows > 0:
            self._small = _to_device(faiss.IndexFlatIP(self.dim), self.use_gpu)

    def _set_nprobe(self, nprobe: int) -> None:
        if self._ivf is not None:
            self._ivf.nprobe = nprobe
        else:  # a GPU IVF inside the wrappers: faiss's GPU parameter space reaches it
            import faiss

            faiss.GpuParameterSpace().set_index_parameter(self._index, "nprobe", nprobe)
        self._nprobe = nprobe

    def _require_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError("the IVF index must be trained before add/search (VectorIndex.train)")

    def add(self, vectors, *, normalize: bool = True, chunk_size: int = 65_536,
            rows: np.ndarray | None = None) -> None:
        """Append ``vectors`` (n, d) — or only ``vectors[rows]``, in that order — in row chunks.

        A memmap is read chunk by chunk and each chunk l2-normalised on its own (``normalize``);
        the new rows get ids ``ntotal .. ntotal + n - 1``.
        """
        self._require_trained()
        n, d = _check_2d(vectors, "vectors")
        if d != self.dim:
            raise ValueError(f"vectors have dimension {d} but the index has {self.dim}")
        m = n if rows is None else len(rows)
        for start in _chunks(m, chunk_size, "index add"):
            block = _read_rows(vectors, rows, start, min(start + chunk_size, m), normalize)
            self._index.add(block)
            if self._small is not None:
                if self._index.ntotal >= self.config.ivf_min_rows:
                    self._small = None  # large enough: the IVF index answers from now on
                else:
                    self._small.add(block)

    def search(self, queries, k: int, *, normalize: bool = True, batch_size: int = 8192,
               rows: np.ndarray | None = None) -> KnnResult:
        """The ``k`` most similar indexed rows of each query (or of ``queries[rows]``), nearest first.

        Returns a :class:`KnnResult` of shape (n_queries, k): ids in insertion order, ``-1`` and
        similarity ``-inf`` where fewer than ``k`` neighbours were found.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self._require_trained()
        n, d = _check_2d(queries, "queries")
        if d != self.dim:
            raise ValueError(f"queries have dimension {d} but the index has {self.dim}: "
                             "both must come from the same embedding")
        m = n if rows is None else len(rows)
        out_idx = np.full((m, k), -1, dtype=np.int64)
        out_sim = np.full((m, k), -np.inf, dtype=np.float32)
        if self.ntotal == 0:
            return KnnResult(out_idx, out_sim)
        k_search = min(k, self.ntotal)
        for start in _chunks(m, batch_size, "index search"):
            stop = min(start + batch_size, m)
            x = _read_rows(queries, rows, start, stop, normalize)
            if self._small is not None:  # fewer than ivf_min_rows rows: brute force, exact
                sims, idx = self._small.search(x, k_search)
            else:
                sims, idx = self._search(x, k_search)
            if self.nlist is not None and self._small is None:
                sims, idx = self._complete(x, sims, idx, k_search)
            out_idx[start:stop, :k_search] = idx
            out_sim[start:stop, :k_search] = np.where(idx >= 0, sims, -np.inf)
        return KnnResult(out_idx, out_sim)

    def _search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """faiss search returning cosine similarities (the re-ranked engine scores squared l2 between
        unit vectors, ``2 - 2 cos``)."""
        sims, idx = self._index.search(x, k)
        if self.config.search_method == "ivf" and self.config.ivf_pca_components:
            sims = np.where(idx >= 0, 1.0 - sims / 2.0, -np.inf).astype(np.float32)
        return sims, idx

    def _complete(self, x: np.ndarray, sims: np.ndarray, idx: np.ndarray, k: int):
        """IVF: queries whose probed lists held fewer than ``k`` rows (sparse or far-away data) are
        searched again with 4x the lists, up to all of them, so ``k`` neighbours come back whenever
        the index holds ``k`` rows."""
        nprobe = self._nprobe
        try:
            while nprobe < self.nlist:
                short = np.flatnonzero(idx[:, k - 1] < 0)
                if short.size == 0:
                    break
                nprobe = min(self.nlist, nprobe * 4)
                self._set_nprobe(nprobe)
                sims[short], idx[short] = self._search(x[short], k)
        finally:
            self._set_nprobe(min(self.config.ivf_nprobe, self.nlist))
        return sims, idx


@dataclass(frozen=True)
class KnnResult:
    """Neighbours of each query, nearest first.

    ``indices[i, l]`` is a row of the base set (-1 where fewer than ``k`` exist) and
    ``similarities[i, l]`` its cosine similarity (``-inf`` for missing neighbours).
    """

    indices: np.ndarray
    similarities: np.ndarray

    @property
    def distances(self) -> np.ndarray:
        """Cosine distances ``1 - similarity`` (paper eq. 2)."""
        return 1.0 - self.similarities


def _exclude_self(idx: np.ndarray, sims: np.ndarray, own: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own id by identity (not rank 0), keeping the order of the others."""
    keep = (idx != own[:, None]) & (idx >= 0)
    order = np.argsort(~keep, axis=1, kind="stable")
    idx = np.take_along_axis(idx, order, axis=1)
    sims = np.take_along_axis(sims, order, axis=1)
    n_keep = keep.sum(axis=1)
    cols = np.arange(idx.shape[1])[None, :]
    return np.where(cols < n_keep[:, None], idx, -1), np.where(cols < n_keep[:, None], sims, -np.inf)


def knn_search(
    queries: np.ndarray,
    base: np.ndarray,
    k: int,
    *,
    exclude_self: bool = False,
    normalize: bool = True,
    batch_size: int = 8192,
    use_gpu: bool | None = None,
    search: SearchConfig | None = None,
) -> KnnResult:
    """Cosine k-NN of ``queries`` (n_q, d) in ``base`` (n, d); exact unless ``search`` says IVF.

    ``exclude_self=True`` requires ``queries`` to be ``base`` (same rows, same order) and removes
    each query's own row *by index*, not by position in the result: an exact duplicate of a
    point stays a legitimate neighbour at similarity 1, while the point itself never is. Queries
    and base of different dimensions (vectors of two embeddings) are a ``ValueError``.

    Both inputs may be memmaps: they are read and normalised in chunks of ``batch_size`` rows
    (base: 65,536 rows). ``search=None`` is the exact engine. With ``SearchConfig(search_method=
    "ivf")`` the IVF index is trained on a seeded sample of ``ivf_train_size`` base rows.

    Returns
    -------
    KnnResult
        ``indices`` (n_q, k) rows of ``base``, ``similarities`` (n_q, k), nearest first.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    q_shape, b_shape = np.shape(queries), np.shape(base)
    if len(q_shape) != 2 or len(b_shape) != 2:
        raise ValueError(f"queries and base must be 2-D (n, d), got shapes {q_shape} and {b_shape}")
    if q_shape[1] != b_shape[1]:
        raise ValueError(f"queries have dimension {q_shape[1]} but base has {b_shape[1]}: "
                         "both must come from the same embedding")
    n_base = b_shape[0]
    if exclude_self and q_shape[0] != n_base:
        raise ValueError("exclude_self=True needs queries and base to be the same rows")
    config = SearchConfig() if search is None else search
    index = VectorIndex(b_shape[1], config, use_gpu=use_gpu)
    if config.search_method != "exact":
        index.train(training_sample(base, config.ivf_train_size, seed=config.seed, normalize=normalize),
                    n_total=n_base, normalize=False)
    index.add(base, normalize=normalize)
    k_search = min(k + int(exclude_self), n_base)
    out_idx = np.full((q_shape[0], k), -1, dtype=np.int64)
    out_sim = np.full((q_shape[0], k), -np.inf, dtype=np.float32)
    if k_search == 0:
        return KnnResult(out_idx, out_sim)
    for start in _chunks(q_shape[0], batch_size, "k-NN search"):
        stop = min(start + batch_size, q_shape[0])
        res = index.search(queries[start:stop], k_search, normalize=normalize, batch_size=batch_size)
        idx, sims = res.indices, res.similarities
        if exclude_self:
            idx, sims = _exclude_self(idx, sims, np.arange(start, stop))
        width = min(k, idx.shape[1])
        out_idx[start:stop, :width] = idx[:, :width]
        out_sim[start:stop, :width] = sims[:, :width]
    return KnnResult(out_idx, out_sim)


def knn_recall(approx_indices: np.ndarray, exact_indices: np.ndarray) -> float:
    """Mean recall@k over queries: the share of each query's exact neighbours the approximate
    search also returned (in any order).

    Parameters
    ----------
    approx_indices, exact_indices : ndarray (n_q, k)
        Neighbour ids of the same queries; ``-1`` (missing) entries of ``exact_indices`` are not
        counted, and a query with no exact neighbour is left out of the mean.

    Returns
    -------
    float
        Mean over queries of ``|approx_i & exact_i| / |exact_i|`` (NaN if no query counts). Ids are
        compared, so two exactly tied neighbours swapped between the searches count as a miss.
    """
    a = np.asarray(approx_indices)
    e = np.asarray(exact_indices)
    if a.ndim != 2 or e.ndim != 2 or a.shape[0] != e.shape[0]:
        raise ValueError(f"expected two (n_queries, k) arrays with the same rows, got {a.shape} and {e.shape}")
    hits = np.zeros(e.shape[0], dtype=np.int64)
    step = max(1, 2**22 // max(1, a.shape[1] * e.shape[1]))
    for s in range(0, e.shape[0], step):
        ea, aa = e[s:s + step], a[s:s + step]
        found = ((aa[:, :, None] == ea[:, None, :]) & (ea[:, None, :] >= 0)).any(axis=1)
        hits[s:s + step] = found.sum(axis=1)
    n_exact = (e >= 0).sum(axis=1)
    ok = n_exact > 0
    return float(np.mean(hits[ok] / n_exact[ok])) if ok.any() else float("nan")
