"""Exact cosine k-nearest-neighbour search with faiss, shared by every analysis.

All vectors are l2-normalised first, so inner product equals cosine similarity and the cosine
distance used throughout the paper (eq. 2) is ``1 - similarity``. ``IndexFlatIP`` is exact; on a
machine with a GPU and the GPU build of faiss the same index is moved to the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["l2_normalize", "KnnResult", "knn_search", "build_index"]


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


def build_index(base: np.ndarray, *, use_gpu: bool | None = None):
    """An exact inner-product faiss index over already-normalised ``base`` rows.

    ``use_gpu=None`` uses a GPU when the installed faiss has GPU support and sees a device.
    """
    import faiss

    base = np.ascontiguousarray(base, dtype=np.float32)
    index = faiss.IndexFlatIP(base.shape[1])
    if use_gpu is None:
        use_gpu = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    if use_gpu:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(base)
    return index


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


def knn_search(
    queries: np.ndarray,
    base: np.ndarray,
    k: int,
    *,
    exclude_self: bool = False,
    normalize: bool = True,
    batch_size: int = 8192,
    use_gpu: bool | None = None,
) -> KnnResult:
    """Exact cosine k-NN of ``queries`` in ``base``.

    ``exclude_self=True`` requires ``queries`` to be ``base`` (same rows, same order) and removes
    each query's own row *by index*, not by position in the result: an exact duplicate of a
    point stays a legitimate neighbour at similarity 1, while the point itself never is. Queries
    and base of different dimensions (vectors of two embeddings) are a ``ValueError``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    q_shape, b_shape = np.shape(queries), np.shape(base)
    if len(q_shape) != 2 or len(b_shape) != 2:
        raise ValueError(f"queries and base must be 2-D (n, d), got shapes {q_shape} and {b_shape}")
    if q_shape[1] != b_shape[1]:
        raise ValueError(f"queries have dimension {q_shape[1]} but base has {b_shape[1]}: "
                         "both must come from the same embedding")
    if normalize:
        queries = l2_normalize(queries)
        base = l2_normalize(base)
    else:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        base = np.ascontiguousarray(base, dtype=np.float32)
    n_base = base.shape[0]
    if exclude_self and queries.shape[0] != n_base:
        raise ValueError("exclude_self=True needs queries and base to be the same rows")
    index = build_index(base, use_gpu=use_gpu)
    k_search = min(k + int(exclude_self), n_base)
    out_idx = np.full((queries.shape[0], k), -1, dtype=np.int64)
    out_sim = np.full((queries.shape[0], k), -np.inf, dtype=np.float32)
    if k_search == 0:
        return KnnResult(out_idx, out_sim)
    for start in range(0, queries.shape[0], batch_size):
        stop = min(start + batch_size, queries.shape[0])
        sims, idx = index.search(queries[start:stop], k_search)
        if exclude_self:
            own = np.arange(start, stop)[:, None]
            keep = idx != own
            # Each row keeps its first k entries that are not itself (identity, not rank 0).
            order = np.argsort(~keep, axis=1, kind="stable")
            idx = np.take_along_axis(idx, order, axis=1)
            sims = np.take_along_axis(sims, order, axis=1)
            n_keep = keep.sum(axis=1)
            cols = np.arange(k_search)[None, :]
            idx = np.where(cols < n_keep[:, None], idx, -1)
            sims = np.where(cols < n_keep[:, None], sims, -np.inf)
        width = min(k, idx.shape[1])
        out_idx[start:stop, :width] = idx[:, :width]
        out_sim[start:stop, :width] = sims[:, :width]
    return KnnResult(out_idx, out_sim)
