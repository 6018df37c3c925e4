"""Case retrieval in the fused space and its benchmark (paper §9, "digital atlas").

:class:`CaseIndex` holds the atlas vectors in an exact faiss inner-product index (built once by
:func:`skinmap.analysis.knn.build_index`) next to a metadata table, and answers "the k nearest
cases to this vector / this catalog id", optionally restricted by metadata filters (body site,
FST, modality, dataset, ...). Filters are applied *inside* the search with a faiss ID selector,
so a filtered query still returns the k nearest cases that pass the filter, not a filtered
subset of the unfiltered top k.

Benchmark metrics, for a query whose label is ``c`` and a ranked list ``r_1..r_k`` from a pool
that holds ``R`` other items labelled ``c`` (the query itself is never in its own pool):

* precision@k = (1/k) Σ_{i≤k} rel_i  (a short list still divides by k),
* recall@k    = (Σ_{i≤k} rel_i) / R,
* AP@k        = (1/min(k, R)) Σ_{i≤k} P@i · rel_i.

Queries with ``R = 0`` (nothing relevant in the pool) are left out of the means and counted.

Evaluation protocol (issue 15). Images of one lesion, of one patient, or of one near-duplicate
cluster are not independent cases: retrieving a second photograph of the query's own lesion is not
evidence that the atlas finds *similar cases*. Every row therefore carries a group id (rows sharing
a lesion, a patient or a near-duplicate cluster share it, :func:`skinmap.analysis.evaluation_split.group_ids`), and

* ``strict``: a query's whole group is removed from its candidates (and from ``R``);
* ``legacy (query only excluded)``: only the query row itself is removed, as before issue 15.

The benchmark (:func:`retrieval_curves`) reports P@k, R@k and AP@k for ``k = 1..K`` under both
protocols, each with a percentile interval from a bootstrap over query *groups*
(:func:`group_bootstrap_means`, the cluster bootstrap of :mod:`skinmap.analysis.resampling`),
and the paired difference strict − legacy: how much leakage inflated the score. Both settings of
one eval set also share their bootstrap draws, so the difference whole atlas − own dataset (the
paper's claim that the atlas improves retrieval for a small collection, Fig. 6) carries a paired
interval too (:attr:`RetrievalCurves.setting_differences`).

Search engine (issue 19). Every function that searches takes ``search`` (a
:class:`~skinmap.analysis.knn.SearchConfig`) and, where a search is repeated, ``index`` (a prebuilt
:class:`~skinmap.analysis.knn.VectorIndex` over *all* rows, :func:`shared_search_index`).
``search=None`` or ``search_method="exact"`` keeps the exact search of the pool (the results of the
demo and mini profiles do not move). ``search_method="ivf"`` searches one index over all rows (built
in row chunks from a memmap, :func:`build_search_index`) and filters the hits afterwards
(:func:`neighbours_outside_group`, :func:`search_allowed`): no ``n x n`` matrix and no copy of the
atlas per setting. :func:`retrieval_recall` measures the approximation's recall@k against an exact
brute-force search (in row chunks) of the same exclusions on a sample of queries.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from tqdm import tqdm

from skinmap.analysis.knn import (
    KnnResult,
    SearchConfig,
    VectorIndex,
    build_index,
    knn_recall,
    knn_search,
    l2_normalize,
    training_sample,
)
from skinmap.analysis.resampling import CI_BOUNDS, bootstrap_weights, percentile_interval
from skinmap.config import check_choice, check_knobs, knob, with_knobs

__all__ = [
    "FILTERABLE",
    "filter_mask",
    "CaseIndex",
    "ranking_metrics",
    "neighbours_excluding",
    "retrieval_benchmark",
    "Protocol",
    "PROTOCOLS",
    "PROTOCOL_LABELS",
    "METRICS",
    "RetrievalConfig",
    "RetrievalCurves",
    "excluded_from_candidates",
    "neighbours_outside_group",
    "relevant_counts",
    "hit_sources",
    "ranking_curves",
    "group_bootstrap_means",
    "retrieval_curves",
    "build_search_index",
    "shared_search_index",
    "search_allowed",
    "retrieval_recall",
]

#: Which rows a query may not retrieve: its whole group (``strict``) or only itself (``legacy``).
Protocol = Literal["strict", "legacy"]
PROTOCOLS: tuple[str, ...] = ("strict", "legacy")
#: How the book names each protocol.
PROTOCOL_LABELS = {
    "strict": "strict (own lesion, patient and near-duplicate cluster excluded)",
    "legacy": "legacy (query only excluded)",
}
#: The per-query metrics of the benchmark, in column order.
METRICS: tuple[str, ...] = ("precision", "recall", "ap")

#: Metadata columns the atlas offers as filters (any other column also works in ``filter_mask``).
FILTERABLE = ("body_site", "fst", "modality", "dataset")


def _as_list(value) -> list:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def filter_mask(metadata: pd.DataFrame, filters: Mapping[str, object] | None) -> np.ndarray:
    """Boolean row mask: a row passes when, for every filter, its value is one of the allowed.

    Values compare as strings, so ``{"fst": "3"}`` (from a URL) matches an ``Int64`` 3. ``None``,
    ``""`` and empty lists mean "no restriction". An unknown column is a ``KeyError``.
    """
    mask = np.ones(len(metadata), dtype=bool)
    for column, value in (filters or {}).items():
        allowed = [str(v) for v in _as_list(value) if v is not None and str(v) != ""]
        if not allowed:
            continue
        if column not in metadata:
            raise KeyError(f"cannot filter on {column!r}: not a metadata column")
        values = metadata[column].astype("string")
        mask &= values.isin(allowed).fillna(False).to_numpy(dtype=bool)
    return mask


class CaseIndex:
    """Exact cosine search over atlas vectors with metadata filters.

    ``vectors`` (n, d) are l2-normalised here; ``metadata`` has one row per vector in the same
    order and must contain ``uid``. ``groups`` (n,), optional, gives each row's group id (rows of
    one lesion, patient or near-duplicate cluster share it, :func:`skinmap.analysis.evaluation_split.group_ids`); without it every
    row is its own group. Searches are read-only and safe to run from several threads.
    """

    def __init__(self, vectors: np.ndarray, metadata: pd.DataFrame, *, groups: np.ndarray | None = None,
                 use_gpu: bool | None = False):
        if len(metadata) != len(vectors):
            raise ValueError(f"{len(vectors)} vectors but {len(metadata)} metadata rows")
        if groups is not None and len(groups) != len(vectors):
            raise ValueError(f"{len(vectors)} vectors but {len(groups)} group ids")
        self.groups = _group_codes(groups, len(vectors))
        if "uid" not in metadata:
            raise ValueError("metadata needs a 'uid' column")
        self.vectors = l2_normalize(vectors)
        self.metadata = metadata.reset_index(drop=True)
        self._row_of_uid = pd.Series(np.arange(len(metadata)), index=self.metadata["uid"].astype(str))
        if not self._row_of_uid.index.is_unique:
            raise ValueError("metadata 'uid' values must be unique")
        self._index = build_index(self.vectors, use_gpu=use_gpu)

    def __len__(self) -> int:
        return len(self.metadata)

    def row_of(self, uid: str) -> int:
        """Row of a catalog id; ``KeyError`` naming it when unknown."""
        try:
            return int(self._row_of_uid[str(uid)])
        except KeyError:
            raise KeyError(f"unknown catalog id {uid!r}") from None

    def search(
        self,
        query: np.ndarray,
        k: int = 10,
        *,
        filters: Mapping[str, object] | None = None,
        exclude_rows: Sequence[int] = (),
    ) -> pd.DataFrame:
        """The k nearest cases to one query vector, nearest first.

        Returns ``rank`` (1-based), ``row``, ``similarity``, ``distance`` (= 1 - similarity) and
        every metadata column. Fewer than k rows come back only when fewer cases pass the filter.
        """
        import faiss

        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = l2_normalize(np.asarray(query, dtype=np.float32).reshape(1, -1))
        if q.shape[1] != self.vectors.shape[1]:
            raise ValueError(f"query has dimension {q.shape[1]}, the atlas {self.vectors.shape[1]}")
        allowed = filter_mask(self.metadata, filters)
        allowed[np.asarray(exclude_rows, dtype=np.int64)] = False
        n_allowed = int(allowed.sum())
        kk = min(k, n_allowed)
        if kk == 0:
            return self._frame(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))
        if n_allowed == len(allowed):
            sims, idx = self._index.search(q, kk)
        else:
            selector = faiss.IDSelectorBatch(np.flatnonzero(allowed).astype(np.int64))
            sims, idx = self._index.search(q, kk, params=faiss.SearchParameters(sel=selector))
        keep = idx[0] >= 0
        return self._frame(idx[0][keep], sims[0][keep])

    def search_uid(self, uid: str, k: int = 10, *, filters: Mapping[str, object] | None = None,
                   protocol: Protocol = "strict") -> pd.DataFrame:
        """Neighbours of a catalog case.

        ``protocol="strict"`` leaves out every row of the case's group (its own lesion, patient and
        near-duplicate cluster); ``"legacy"`` only the case itself, by identity (an exact duplicate
        in another group, or in the same group under legacy, stays a neighbour).
        """
        check_choice("protocol", protocol, Protocol)
        row = self.row_of(uid)
        exclude = np.flatnonzero(self.groups == self.groups[row]) if protocol == "strict" else [row]
        return self.search(self.vectors[row], k, filters=filters, exclude_rows=exclude)

    def search_image(
        self, path: str | os.PathLike, embed_fn, k: int = 10, *, filters: Mapping[str, object] | None = None
    ) -> pd.DataFrame:
        """Neighbours of an image file, embedded by ``embed_fn(paths) -> (n, d)`` (e.g.
        ``lambda p: skinmap.embed.pipeline.embed_paths(p, run_dir / "embedding")``)."""
        vector = np.asarray(embed_fn([os.fspath(path)]), dtype=np.float32).reshape(1, -1)
        if not np.isfinite(vector).all():
            raise ValueError(f"{path}: the embedding model could not use this image")
        return self.search(vector[0], k, filters=filters)

    def _frame(self, rows: np.ndarray, sims: np.ndarray) -> pd.DataFrame:
        out = self.metadata.iloc[rows].reset_index(drop=True)
        head = pd.DataFrame(
            {
                "rank": np.arange(1, rows.size + 1),
                "row": rows.astype(np.int64),
                "similarity": sims.astype(np.float64),
                "distance": 1.0 - sims.astype(np.float64),
            }
        )
        return pd.concat([head, out], axis=1)


# --------------------------------------------------------------------------- metrics


def ranking_metrics(relevance: np.ndarray, n_relevant: np.ndarray, k: int) -> pd.DataFrame:
    """Per-query precision@k, recall@k and AP@k (definitions in the module docstring).

    ``relevance`` is (n_queries, <= k) booleans in rank order (missing ranks False);
    ``n_relevant`` the number of relevant items in each query's pool (the query excluded).
    Recall and AP are NaN where ``n_relevant == 0``.
    """
    rel = np.zeros((relevance.shape[0], k), dtype=bool)
    width = min(k, relevance.shape[1])
    rel[:, :width] = relevance[:, :width]
    curves = ranking_curves(rel, n_relevant)
    out = pd.DataFrame({m: curves[m][:, k - 1] for m in METRICS})
    out["n_relevant"] = np.asarray(n_relevant, dtype=np.float64)
    return out


def neighbours_excluding(
    queries: np.ndarray, base: np.ndarray, query_rows_in_base: np.ndarray, k: int
) -> np.ndarray:
    """k-NN indices into ``base`` for queries that are themselves rows of ``base``.

    Asks :func:`knn_search` for k+1 and removes each query's own row by identity (an exact
    duplicate stays a neighbour); returns (n_queries, k) with -1 for missing neighbours.
    """
    res = knn_search(queries, base, min(k + 1, base.shape[0]))
    idx = res.indices
    own = np.asarray(query_rows_in_base)[:, None]
    keep = idx != own
    order = np.argsort(~keep, axis=1, kind="stable")
    idx = np.take_along_axis(idx, order, axis=1)
    idx = np.where(np.take_along_axis(keep, order, axis=1), idx, -1)
    out = np.full((idx.shape[0], k), -1, dtype=np.int64)
    width = min(k, idx.shape[1])
    out[:, :width] = idx[:, :width]
    return out


def retrieval_benchmark(
    vectors: np.ndarray,
    labels: Sequence,
    datasets: Sequence[str],
    eval_datasets: Sequence[str],
    *,
    n_neighbors: int = 10,
    settings: Sequence[str] = ("same_dataset", "whole_atlas"),
    groups: np.ndarray | None = None,
    protocol: Protocol = "strict",
) -> pd.DataFrame:
    """Diagnosis-match retrieval quality of held-out datasets at one cutoff (paper §9), no intervals.

    Each labelled image of an evaluation dataset queries (``same_dataset``) only the other images
    of its dataset, or (``whole_atlas``) every other image of the atlas. An item is relevant when
    its label equals the query's (NA labels are never relevant; unlabelled queries are skipped).
    ``groups`` and ``protocol`` decide which rows a query may not retrieve (module docstring;
    without ``groups`` both protocols exclude only the query). Returns one row per
    (eval_set, setting) with ``protocol``, ``n_neighbors`` (the cutoff ``k``), mean ``precision``,
    ``recall``, ``ap``, ``n_queries`` and ``n_no_relevant`` (queries left out for having nothing
    relevant). :func:`retrieval_curves` adds k = 1..K, both protocols and bootstrap intervals.
    """
    check_choice("protocol", protocol, Protocol)
    k = n_neighbors
    vectors = l2_normalize(vectors)
    codes = _label_codes(labels)
    datasets = pd.Series(np.asarray(datasets, dtype=object)).astype("string")
    group_ids = _group_codes(groups, len(codes))
    rows = []
    for name in eval_datasets:
        in_ds = (datasets == name).fillna(False).to_numpy()
        q_rows = np.flatnonzero(in_ds & (codes >= 0))
        if q_rows.size == 0:
            continue
        for setting in settings:
            pool = _pool(setting, in_ds)
            per_query = _per_query_curves(vectors, codes, group_ids, q_rows, pool, k, protocol)
            ok = per_query["n_relevant"] > 0
            rows.append(
                {
                    "eval_set": name,
                    "setting": setting,
                    "protocol": protocol,
                    "n_neighbors": k,
                    **{m: float(per_query[m][ok, k - 1].mean()) if ok.any() else np.nan for m in METRICS},
                    "n_queries": int(ok.sum()),
                    "n_no_relevant": int((~ok).sum()),
                }
            )
    return pd.DataFrame(rows, columns=["eval_set", "setting", "protocol", "n_neighbors", *METRICS, "n_queries",
                                       "n_no_relevant"])


# --------------------------------------------------------------------------- leak-free protocol


def _group_codes(groups: np.ndarray | None, n: int) -> np.ndarray:
    """Dense int64 codes of ``groups`` (missing ids become singletons); ``arange(n)`` for None."""
    if groups is None:
        return np.arange(n, dtype=np.int64)
    values = pd.Series(np.asarray(groups, dtype=object))
    codes, _ = pd.factorize(values, use_na_sentinel=True)
    codes = codes.astype(np.int64)
    missing = codes < 0
    codes[missing] = codes.max(initial=-1) + 1 + np.arange(int(missing.sum()))
    return codes


def _label_codes(labels: Sequence) -> np.ndarray:
    """Integer codes of ``labels`` compared as strings; -1 for NA (never relevant)."""
    values = pd.Series(np.asarray(labels, dtype=object)).astype("string")
    return pd.factorize(values, use_na_sentinel=True)[0].astype(np.int64)


def _pool(setting: str, in_dataset: np.ndarray) -> np.ndarray:
    if setting == "same_dataset":
        return np.flatnonzero(in_dataset)
    if setting == "whole_atlas":
        return np.arange(in_dataset.size)
    raise ValueError(f"unknown setting {setting!r} (same_dataset or whole_atlas)")


def excluded_from_candidates(query_rows: np.ndarray, candidate_rows: np.ndarray, groups: np.ndarray | None,
                             protocol: Protocol = "strict") -> np.ndarray:
    """Which candidates each query may not retrieve.

    Parameters
    ----------
    query_rows : ndarray of shape (n_queries,)
        Rows of the atlas that query.
    candidate_rows : ndarray of shape (n_candidates,)
        Rows of the atlas in the searched pool.
    groups : ndarray of shape (n_atlas,) or None
        Group id of every atlas row (None: every row its own group).
    protocol : {"strict", "legacy"}
        ``strict``: the query's whole group; ``legacy``: the query row only.

    Returns
    -------
    ndarray of shape (n_queries, n_candidates), bool
    """
    check_choice("protocol", protocol, Protocol)
    query_rows, candidate_rows = np.asarray(query_rows), np.asarray(candidate_rows)
    if protocol == "legacy" or groups is None:
        return query_rows[:, None] == candidate_rows[None, :]
    g = _group_codes(groups, len(groups))
    return g[query_rows][:, None] == g[candidate_rows][None, :]


def neighbours_outside_group(
    vectors: np.ndarray,
    query_rows: np.ndarray,
    pool_rows: np.ndarray,
    n_neighbors: int,
    *,
    groups: np.ndarray | None = None,
    protocol: Protocol = "strict",
    search: SearchConfig | None = None,
    index: VectorIndex | None = None,
) -> np.ndarray:
    """The ``n_neighbors`` nearest allowed pool rows of each query, nearest first.

    Exact engine (``search`` None or ``search_method="exact"``, no ``index``): exact cosine search
    (:func:`knn_search`) of ``vectors[pool_rows]`` asked for ``n_neighbors`` plus the largest number
    of pool rows any query must skip, then each query's excluded rows
    (:func:`excluded_from_candidates`) are dropped in rank order; the result equals a search of
    the allowed rows alone.

    Index engine (``search_method="ivf"``, or a prebuilt ``index``): one
    :class:`~skinmap.analysis.knn.VectorIndex` is searched and the hits filtered
    (:func:`search_allowed`). The index is ``index`` (over all rows, in row order) when the pool
    holds at least :data:`SHARED_INDEX_MIN_SHARE` of the rows, else one built over the pool rows
    (e.g. the same-dataset setting of a small held-out dataset). Each query first asks for
    ``n_neighbors`` + the size of its own group in the pool (strict; 1 under legacy) +
    :data:`SEARCH_MARGIN` candidates, divided by the pool's share of the index rows; a query left
    with fewer than ``n_neighbors`` allowed rows (out-of-pool rows crowding its neighbourhood) is
    searched again with a larger ``k`` until it has enough or the index has no more candidates for it.
    Nothing of size n x n is formed and ``vectors`` (a memmap is fine) is read in row chunks.

    Parameters
    ----------
    vectors : ndarray or memmap of shape (n_atlas, d)
        The atlas (l2-normalised for the exact engine; the index engine normalises per chunk).
    query_rows : ndarray of shape (n_queries,)
    pool_rows : ndarray of shape (n_pool,)
        Rows of ``vectors`` that may be retrieved (the query's own rows among them are excluded).
    n_neighbors : int
        List length ``K``.
    groups, protocol
        As in :func:`excluded_from_candidates`.
    search : SearchConfig, optional
        Engine knobs (None: exact).
    index : VectorIndex, optional
        A prebuilt index over all ``n_atlas`` rows in row order (:func:`shared_search_index`),
        reused instead of building one per call.

    Returns
    -------
    ndarray of shape (n_queries, n_neighbors), int64
        Rows of ``vectors``; -1 where fewer allowed rows exist (or, with IVF, were found).
    """
    check_choice("protocol", protocol, Protocol)
    query_rows, pool_rows = np.asarray(query_rows, dtype=np.int64), np.asarray(pool_rows, dtype=np.int64)
    n = int(np.shape(vectors)[0])
    g = _group_codes(groups, n) if protocol == "strict" else np.arange(n, dtype=np.int64)
    if _is_approximate(search, index):
        if query_rows.size == 0 or pool_rows.size == 0:
            return np.full((query_rows.size, n_neighbors), -1, dtype=np.int64)
        used, index_rows = _pool_index(vectors, pool_rows, search, index)
        return _neighbours_indexed(vectors, query_rows, pool_rows, n_neighbors, g, used, index_rows)
    pool_group_size = np.bincount(g[pool_rows], minlength=int(g.max(initial=-1)) + 1)
    n_skip = int(pool_group_size[g[query_rows]].max(initial=0))
    out = np.full((query_rows.size, n_neighbors), -1, dtype=np.int64)
    k_search = min(n_neighbors + n_skip, pool_rows.size)
    if query_rows.size == 0 or k_search == 0:
        return out
    res = knn_search(vectors[query_rows], vectors[pool_rows], k_search, normalize=False)
    found = np.where(res.indices >= 0, pool_rows[np.maximum(res.indices, 0)], -1)
    keep = (found >= 0) & (g[np.maximum(found, 0)] != g[query_rows][:, None])
    order = np.argsort(~keep, axis=1, kind="stable")  # allowed rows first, in rank order
    found = np.where(np.take_along_axis(keep, order, axis=1), np.take_along_axis(found, order, axis=1), -1)
    width = min(n_neighbors, found.shape[1])
    out[:, :width] = found[:, :width]
    return out


# --------------------------------------------------------------------------- search engine

#: Extra candidates asked for beyond ``n_neighbors`` plus the rows a query must skip.
SEARCH_MARGIN = 10
#: A shared all-rows index serves a pool holding at least this share of its rows; a smaller pool
#: (e.g. one held-out dataset of a 1.1M-row atlas) gets its own index over the pool rows.
SHARED_INDEX_MIN_SHARE = 0.25
#: Largest (queries x k) result block of one faiss call in :func:`search_allowed`.
_MAX_RESULT_ENTRIES = 1 << 24


def _is_approximate(search: SearchConfig | None, index: VectorIndex | None) -> bool:
    """Whether a call goes through a :class:`VectorIndex` (else: the exact search of the pool)."""
    return index is not None or (search is not None and search.search_method != "exact")


def build_search_index(vectors: np.ndarray, search: SearchConfig | None = None, *, rows: np.ndarray | None = None,
                       normalize: bool = True, chunk_size: int = 65_536,
                       use_gpu: bool | None = None) -> VectorIndex:
    """One :class:`~skinmap.analysis.knn.VectorIndex` over ``vectors`` (or over ``vectors[rows]``).

    IVF: the coarse quantiser is trained on a seeded sample of ``search.ivf_train_size`` rows
    (:func:`~skinmap.analysis.knn.training_sample`), then every row is added in chunks of
    ``chunk_size``, each l2-normalised on its own, so a memmap is never read whole.

    Parameters
    ----------
    vectors : ndarray or memmap of shape (n, d)
    search : SearchConfig, optional
        Engine knobs (None: exact).
    rows : ndarray of shape (m,), optional
        Index only these rows, in this order (index id ``i`` is row ``rows[i]``).
    normalize : bool
        l2-normalise each chunk (False when ``vectors`` are unit rows already).

    Returns
    -------
    VectorIndex
        With ``ntotal == m`` (or ``n``), ids in the order of ``rows`` (or of ``vectors``).
    """
    search = SearchConfig() if search is None else search
    rows = None if rows is None else np.asarray(rows, dtype=np.int64)
    index = VectorIndex(int(np.shape(vectors)[1]), search, use_gpu=use_gpu)
    n_rows = int(np.shape(vectors)[0]) if rows is None else rows.size
    if search.search_method != "exact":
        sample = training_sample(vectors, search.ivf_train_size, seed=search.seed, rows=rows, normalize=normalize,
                                 chunk_size=chunk_size)
        index.train(sample, n_total=n_rows, normalize=False)
        del sample
    index.add(vectors, rows=rows, normalize=normalize, chunk_size=chunk_size)
    return index


def shared_search_index(vectors: np.ndarray, search: SearchConfig | None) -> VectorIndex | None:
    """The one index over all rows that approximate searches share, or None for the exact engine.

    Build it once and pass it as ``index`` to :func:`retrieval_curves`, :func:`hit_sources` and
    :func:`neighbours_outside_group`; with the exact engine (None) each call searches its pool exactly.
    """
    return build_search_index(vectors, search) if _is_approximate(search, None) else None


def _next_power_of_two(x: np.ndarray) -> np.ndarray:
    x = np.maximum(np.asarray(x, dtype=np.int64), 1)
    return (1 << np.ceil(np.log2(x)).astype(np.int64)).astype(np.int64)


def search_allowed(
    index: VectorIndex,
    queries: np.ndarray,
    n_neighbors: int,
    allowed: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    k_start: int | np.ndarray | None = None,
    query_rows: np.ndarray | None = None,
    normalize: bool = True,
    batch_size: int = 8192,
) -> KnnResult:
    """The ``n_neighbors`` nearest *allowed* index entries of each query, by search-and-filter.

    Each query is searched with ``k_start`` candidates (rounded up to a power of two, so queries
    share few distinct ``k``), the candidates ``allowed`` rejects are dropped in rank order, and a
    query left with fewer than ``n_neighbors`` is searched again with a larger ``k`` (at least
    double, more when few candidates passed) until it has enough or its list is exhausted: the
    index returned fewer than ``k`` ids (an IVF search ran out of candidates in its ``nprobe``
    lists) or ``k`` reached ``index.ntotal``. With the exact engine the result equals an exact
    search of the allowed entries alone; with IVF it equals the best allowed entries among the
    probed lists, the same answer as a faiss ID selector inside the IVF search.

    Parameters
    ----------
    index : VectorIndex
    queries : ndarray or memmap of shape (m, d)
    n_neighbors : int
    allowed : callable
        ``allowed(positions, ids) -> bool array`` of the shape of ``ids`` (n_batch, k): whether the
        query at ``positions`` (n_batch,) — positions into ``query_rows`` (or into ``queries``) — may
        retrieve index entry ``ids`` (all >= 0).
    k_start : int or ndarray of shape (m,), optional
        First ``k`` per query (default ``n_neighbors``); an estimate of ``n_neighbors`` plus the
        number of entries it will reject saves a second search.
    query_rows : ndarray of shape (m,), optional
        Search ``queries[query_rows]`` (read in blocks of ``batch_size``).
    normalize : bool
        l2-normalise the query blocks (False when they are unit rows already).

    Returns
    -------
    KnnResult
        (m, n_neighbors) index ids and similarities, nearest first; -1 / -inf where fewer exist.
    """
    if n_neighbors < 1:
        raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors}")
    m = int(np.shape(queries)[0]) if query_rows is None else len(query_rows)
    out_idx = np.full((m, n_neighbors), -1, dtype=np.int64)
    out_sim = np.full((m, n_neighbors), -np.inf, dtype=np.float32)
    ntotal = index.ntotal
    if m == 0 or ntotal == 0:
        return KnnResult(out_idx, out_sim)
    k_first = np.broadcast_to(np.asarray(n_neighbors if k_start is None else k_start, dtype=np.int64), (m,))
    k_first = np.minimum(_next_power_of_two(np.maximum(k_first, n_neighbors)), ntotal)
    for start in tqdm(range(0, m, batch_size), desc="filtered search", unit="block", leave=False,
                      disable=True if m <= batch_size else None):
        stop = min(start + batch_size, m)
        block = queries[start:stop] if query_rows is None else queries[np.asarray(query_rows[start:stop])]
        block = l2_normalize(block) if normalize else np.ascontiguousarray(block, dtype=np.float32)
        k = k_first[start:stop].copy()
        pending = np.arange(stop - start)
        while pending.size:
            retry = []
            for kk in np.unique(k[pending]):
                kk = int(kk)
                members = pending[k[pending] == kk]
                step = max(1, _MAX_RESULT_ENTRIES // kk)
                for s in range(0, members.size, step):
                    local = members[s:s + step]
                    res = index.search(block[local], kk, normalize=False, batch_size=batch_size)
                    ids = res.indices
                    ok = ids >= 0
                    ok &= np.asarray(allowed(start + local, np.maximum(ids, 0)), dtype=bool)
                    n_ok = ok.sum(axis=1)
                    exhausted = (ids < 0).any(axis=1) | (kk >= ntotal)
                    done = (n_ok >= n_neighbors) | exhausted
                    order = np.argsort(~ok[done], axis=1, kind="stable")[:, :n_neighbors]
                    keep = np.take_along_axis(ok[done], order, axis=1)
                    width = order.shape[1]
                    rows_done = start + local[done]
                    out_idx[rows_done, :width] = np.where(keep, np.take_along_axis(ids[done], order, axis=1), -1)
                    out_sim[rows_done, :width] = np.where(
                        keep, np.take_along_axis(res.similarities[done], order, axis=1), -np.inf)
                    again = local[~done]
                    if again.size:
                        # at least double; aim at n_neighbors passes given the share that passed so far
                        want = np.ceil(kk * (n_neighbors + 1) / np.maximum(n_ok[~done], 1)).astype(np.int64)
                        k[again] = np.minimum(_next_power_of_two(np.maximum(want, 2 * kk)), ntotal)
                        retry.append(again)
            pending = np.concatenate(retry) if retry else np.empty(0, dtype=np.int64)
    return KnnResult(out_idx, out_sim)


def _pool_index(vectors: np.ndarray, pool_rows: np.ndarray, search: SearchConfig | None,
                index: VectorIndex | None) -> tuple[VectorIndex, np.ndarray | None]:
    """The index a pool is searched in, and the atlas row of each of its ids (None: id = row).

    A shared all-rows ``index`` serves a pool of at least :data:`SHARED_INDEX_MIN_SHARE` of the rows
    (the other rows are filtered out); a smaller pool gets its own index over its rows, with
    ``search`` (default: the shared index's knobs).
    """
    n = int(np.shape(vectors)[0])
    if index is not None:
        if index.ntotal != n:
            raise ValueError(f"index holds {index.ntotal} rows but vectors has {n}: pass an index over all rows "
                             "in row order (shared_search_index)")
        if pool_rows.size >= SHARED_INDEX_MIN_SHARE * n:
            return index, None
        search = index.config if search is None else search
    if pool_rows.size == n and np.array_equal(pool_rows, np.arange(n)):
        return build_search_index(vectors, search), None
    return build_search_index(vectors, search, rows=pool_rows), pool_rows


def _neighbours_indexed(vectors: np.ndarray, query_rows: np.ndarray, pool_rows: np.ndarray, n_neighbors: int,
                        g: np.ndarray, index: VectorIndex, index_rows: np.ndarray | None) -> np.ndarray:
    """:func:`neighbours_outside_group` through ``index`` (ids -> rows by ``index_rows``; None: identity)."""
    n = int(np.shape(vectors)[0])
    out = np.full((query_rows.size, n_neighbors), -1, dtype=np.int64)
    if query_rows.size == 0 or pool_rows.size == 0:
        return out
    in_pool = np.zeros(n, dtype=bool)
    in_pool[pool_rows] = True
    gq = g[query_rows]
    skip = np.bincount(g[pool_rows], minlength=int(g.max(initial=-1)) + 1)[gq]
    share = 1.0 if index_rows is not None else pool_rows.size / index.ntotal  # expected share of hits in the pool
    k_start = np.ceil((n_neighbors + skip + SEARCH_MARGIN) / share).astype(np.int64)

    def allowed(positions: np.ndarray, ids: np.ndarray) -> np.ndarray:
        rows = ids if index_rows is None else index_rows[ids]
        return in_pool[rows] & (g[rows] != gq[positions][:, None])

    res = search_allowed(index, vectors, n_neighbors, allowed, k_start=k_start, query_rows=query_rows)
    ids = res.indices
    rows = ids if index_rows is None else index_rows[np.maximum(ids, 0)]
    out[:] = np.where(ids >= 0, rows, -1)
    return out


def _exact_neighbours_chunked(vectors: np.ndarray, query_rows: np.ndarray, pool_rows: np.ndarray,
                              n_neighbors: int, g: np.ndarray, *, chunk_size: int = 65_536) -> np.ndarray:
    """Brute force: the ``n_neighbors`` most similar pool rows outside each query's group.

    Scans the pool in row chunks (l2-normalised per chunk), masks each query's own group and keeps a
    running top ``n_neighbors``; memory is (n_queries x chunk_size), never n x n. Ties: lower row first.
    """
    nq = query_rows.size
    q = l2_normalize(vectors[query_rows]) if nq else np.empty((0, np.shape(vectors)[1]), np.float32)
    gq = g[query_rows]
    best_sim = np.full((nq, n_neighbors), -np.inf, dtype=np.float32)
    best_row = np.full((nq, n_neighbors), -1, dtype=np.int64)
    if nq == 0:
        return best_row
    for start in tqdm(range(0, pool_rows.size, chunk_size), desc="exact search", unit="chunk", leave=False,
                      disable=True if pool_rows.size <= chunk_size else None):
        rows = pool_rows[start:start + chunk_size]
        sims = q @ l2_normalize(vectors[rows]).T
        sims[gq[:, None] == g[rows][None, :]] = -np.inf
        sims = np.concatenate([best_sim, sims], axis=1)
        cand = np.concatenate([best_row, np.broadcast_to(rows, (nq, rows.size))], axis=1)
        width = min(n_neighbors, sims.shape[1])
        top = np.argpartition(-sims, width - 1, axis=1)[:, :width] if width < sims.shape[1] else \
            np.broadcast_to(np.arange(sims.shape[1]), (nq, sims.shape[1]))
        best_sim = np.take_along_axis(sims, top, axis=1)
        best_row = np.take_along_axis(cand, top, axis=1)
    order = np.lexsort((best_row, -best_sim), axis=1)
    best_sim = np.take_along_axis(best_sim, order, axis=1)
    best_row = np.take_along_axis(best_row, order, axis=1)
    return np.where(np.isfinite(best_sim), best_row, -1)


def retrieval_recall(
    vectors: np.ndarray,
    query_rows: np.ndarray,
    neighbours: np.ndarray,
    pool_rows: np.ndarray | None = None,
    *,
    groups: np.ndarray | None = None,
    protocol: Protocol = "strict",
    n_sample: int = 1000,
    seed: int = 0,
    chunk_size: int = 65_536,
) -> float:
    """Recall@k of approximate excluded neighbours against an exact search on a sample of queries.

    ``neighbours`` are the rows :func:`neighbours_outside_group` returned for ``query_rows`` (any
    engine); for a seeded sample of at most ``n_sample`` of those queries the exact neighbours under
    the same exclusions are found by brute force over ``pool_rows`` in chunks of ``chunk_size``
    rows (memory ``n_sample x chunk_size``), and the mean share of them the approximate lists hold
    is returned (:func:`~skinmap.analysis.knn.knn_recall`, ``k = neighbours.shape[1]``).

    Parameters
    ----------
    vectors : ndarray or memmap of shape (n, d)
    query_rows : ndarray of shape (n_queries,)
    neighbours : ndarray of shape (n_queries, k)
        Rows of ``vectors`` (-1: missing).
    pool_rows : ndarray of shape (n_pool,), optional
        The searched pool (default: every row).
    groups, protocol
        As in :func:`neighbours_outside_group`.
    n_sample : int
        Queries checked.
    seed : int
        Seed of the query sample.

    Returns
    -------
    float
        Mean recall@k over the sampled queries (NaN when none has an exact neighbour).
    """
    check_choice("protocol", protocol, Protocol)
    n = int(np.shape(vectors)[0])
    query_rows = np.asarray(query_rows, dtype=np.int64)
    neighbours = np.asarray(neighbours, dtype=np.int64)
    if neighbours.shape[0] != query_rows.size:
        raise ValueError(f"{neighbours.shape[0]} neighbour lists for {query_rows.size} queries")
    pool_rows = np.arange(n, dtype=np.int64) if pool_rows is None else np.asarray(pool_rows, dtype=np.int64)
    g = _group_codes(groups, n) if protocol == "strict" else np.arange(n, dtype=np.int64)
    pick = np.arange(query_rows.size)
    if pick.size > n_sample:
        pick = np.sort(np.random.default_rng(seed).choice(pick.size, size=n_sample, replace=False))
    exact = _exact_neighbours_chunked(vectors, query_rows[pick], pool_rows, neighbours.shape[1], g,
                                      chunk_size=chunk_size)
    return knn_recall(neighbours[pick], exact)


def hit_sources(
    vectors: np.ndarray,
    labels: Sequence,
    datasets: Sequence[str],
    eval_dataset: str,
    n_neighbors: int,
    *,
    groups: np.ndarray | None = None,
    protocol: Protocol = "strict",
    search: SearchConfig | None = None,
    index: VectorIndex | None = None,
) -> pd.DataFrame:
    """Where a held-out dataset's whole-atlas hits come from, and how often each source is right.

    Every labelled row of ``eval_dataset`` queries the whole atlas (its allowed ``n_neighbors``
    nearest rows, :func:`neighbours_outside_group`); the hits are split into those from the query's
    own dataset and those from every other dataset, with the number of each that share the query's
    label. Their sum over both sources is the whole-atlas precision@k times ``k``.

    Parameters
    ----------
    vectors : ndarray of shape (n, d)
    labels : array-like of shape (n,)
        Compared as strings; NA never matches and never queries.
    datasets : array-like of shape (n,)
    eval_dataset : str
    n_neighbors : int
    groups, protocol
        As in :func:`excluded_from_candidates`.
    search, index
        Search engine, as in :func:`neighbours_outside_group`.

    Returns
    -------
    DataFrame
        One row per source (``"own dataset"``, ``"other datasets"``): ``hits`` (retrieved rows over
        all queries), ``relevant`` (of which share the query's label), ``precision`` (relevant /
        hits), ``share_of_hits`` (hits / all hits), and ``n_queries``.
    """
    if not _is_approximate(search, index):
        vectors = l2_normalize(vectors)
    codes = _label_codes(labels)
    ds = pd.Series(np.asarray(datasets, dtype=object)).astype("string")
    in_ds = (ds == eval_dataset).fillna(False).to_numpy()
    q_rows = np.flatnonzero(in_ds & (codes >= 0))
    found = neighbours_outside_group(vectors, q_rows, np.arange(len(codes)), n_neighbors,
                                     groups=groups, protocol=protocol, search=search, index=index)
    valid = found >= 0
    own = valid & in_ds[np.maximum(found, 0)]
    relevant = valid & (codes[np.maximum(found, 0)] == codes[q_rows][:, None])
    rows = []
    for source, mask in (("own dataset", own), ("other datasets", valid & ~own)):
        hits, rel = int(mask.sum()), int((mask & relevant).sum())
        rows.append(dict(source=source, hits=hits, relevant=rel, precision=rel / hits if hits else np.nan,
                         share_of_hits=hits / valid.sum() if valid.sum() else np.nan, n_queries=int(q_rows.size)))
    return pd.DataFrame(rows)


def relevant_counts(label_codes: np.ndarray, query_rows: np.ndarray, pool_rows: np.ndarray, *,
                    groups: np.ndarray | None = None, protocol: Protocol = "strict") -> np.ndarray:
    """``R`` of each query: pool rows with the query's label that the protocol lets it retrieve.

    ``label_codes`` (n_atlas,) are integer labels with -1 for unknown (never relevant).
    Returns (n_queries,) int64.
    """
    check_choice("protocol", protocol, Protocol)
    label_codes = np.asarray(label_codes, dtype=np.int64)
    query_rows, pool_rows = np.asarray(query_rows, dtype=np.int64), np.asarray(pool_rows, dtype=np.int64)
    g = _group_codes(groups, len(label_codes)) if protocol == "strict" else np.arange(len(label_codes))
    labelled = pool_rows[label_codes[pool_rows] >= 0]
    per_label = pd.Series(label_codes[labelled]).value_counts()
    per_label_group = pd.Series(1, index=pd.MultiIndex.from_arrays(
        [label_codes[labelled], g[labelled]])).groupby(level=[0, 1]).sum()
    q_lab, q_grp = label_codes[query_rows], g[query_rows]
    total = per_label.reindex(q_lab).fillna(0).to_numpy(dtype=np.int64)
    own = per_label_group.reindex(pd.MultiIndex.from_arrays([q_lab, q_grp])).fillna(0).to_numpy(dtype=np.int64)
    return np.where(q_lab >= 0, total - own, 0)


def ranking_curves(relevance: np.ndarray, n_relevant: np.ndarray) -> dict[str, np.ndarray]:
    """Per-query P@k, R@k and AP@k for every cutoff ``k = 1..K`` (module docstring).

    Parameters
    ----------
    relevance : ndarray of shape (n_queries, K), bool
        ``rel_i`` in rank order (a missing neighbour is False).
    n_relevant : ndarray of shape (n_queries,)
        ``R`` of each query.

    Returns
    -------
    dict
        ``"precision"``, ``"recall"``, ``"ap"``: float arrays of shape (n_queries, K), column
        ``k - 1`` holding the metric at cutoff ``k``; recall and AP are NaN where ``R = 0``.
    """
    rel = np.asarray(relevance, dtype=np.float64)
    n_relevant = np.asarray(n_relevant, dtype=np.float64)[:, None]
    ks = np.arange(1, rel.shape[1] + 1, dtype=np.float64)[None, :]
    hits = np.cumsum(rel, axis=1)
    precision = hits / ks
    ap_sum = np.cumsum(precision * rel, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(n_relevant > 0, hits / n_relevant, np.nan)
        ap = np.where(n_relevant > 0, ap_sum / np.minimum(ks, n_relevant), np.nan)
    return {"precision": precision, "recall": recall, "ap": ap}


def _per_query_curves(vectors, codes, groups, q_rows, pool, max_neighbors, protocol,
                      pool_index: tuple[VectorIndex, np.ndarray | None] | None = None) -> dict[str, np.ndarray]:
    if pool_index is None:
        nn = neighbours_outside_group(vectors, q_rows, pool, max_neighbors, groups=groups, protocol=protocol)
    else:
        g = groups if protocol == "strict" else np.arange(len(codes), dtype=np.int64)
        nn = _neighbours_indexed(vectors, np.asarray(q_rows, dtype=np.int64), np.asarray(pool, dtype=np.int64),
                                 max_neighbors, g, *pool_index)
    relevance = (nn >= 0) & (codes[np.maximum(nn, 0)] == codes[q_rows][:, None])
    n_rel = relevant_counts(codes, q_rows, pool, groups=groups, protocol=protocol)
    return {**ranking_curves(relevance, n_rel), "n_relevant": n_rel}


def group_bootstrap_means(values: np.ndarray, groups: np.ndarray | None, *, n_bootstrap: int,
                          rng: np.random.Generator, chunk: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Column means of ``values`` and their cluster-bootstrap replicates over ``groups``.

    Each replicate draws as many groups as there are, with replacement, and keeps every row of
    each drawn group (:func:`skinmap.analysis.resampling.bootstrap_weights`); a column's mean
    leaves out its non-finite rows (queries with ``R = 0``). All columns share the same draws, so
    a difference of two columns' replicates is a paired bootstrap of the difference.

    Parameters
    ----------
    values : ndarray of shape (n, m)
        One row per query, one column per statistic (e.g. P@1..P@K of two protocols).
    groups : ndarray of shape (n,) or None
        The query's group (None: one group per row, the ordinary bootstrap).
    n_bootstrap : int
        Replicates ``B``.
    rng : numpy.random.Generator
    chunk : int
        Replicates drawn per call (fixed: the draws depend on it).

    Returns
    -------
    means : ndarray of shape (m,)
    replicates : ndarray of shape (n_bootstrap, m)
        NaN where a replicate holds no finite row of that column.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    finite = np.isfinite(values)
    filled = np.where(finite, values, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = filled.sum(axis=0) / finite.sum(axis=0)
        reps = [w @ filled / (w @ finite) for w in
                bootstrap_weights(len(values), n_bootstrap, rng, groups=groups, chunk=chunk)]
    replicates = np.vstack(reps) if reps else np.empty((0, values.shape[1]))
    return means, replicates


@dataclass(frozen=True)
class RetrievalConfig:
    """The knobs of :func:`retrieval_curves`, their defaults and ranges."""

    n_neighbors: int = knob(10, ge=1, le=1000, description="cutoff k of the benchmark table (P@k, R@k, AP@k)")
    max_neighbors: int = knob(50, ge=1, le=1000, description="longest list K of the curves k = 1..K")
    n_bootstrap: int = knob(200, ge=1, le=100_000, description="bootstrap replicates over query groups")
    ci: float = knob(0.95, **CI_BOUNDS, description="central quantile range of the intervals")
    seed: int = knob(0, ge=0, description="seed of the bootstrap (one stream per eval set, shared by its settings)")

    def __post_init__(self) -> None:
        check_knobs(self)
        if self.n_neighbors > self.max_neighbors:
            raise ValueError(f"n_neighbors ({self.n_neighbors}) must be <= max_neighbors ({self.max_neighbors})")


#: Columns of :attr:`RetrievalCurves.setting_differences`.
SETTING_DIFF_COLUMNS = ["eval_set", "protocol", "n_neighbors", "metric", "difference", "ci_low", "ci_high"]
#: Columns of :attr:`RetrievalCurves.curves` (and of the table at one cutoff).
CURVE_COLUMNS = ["eval_set", "setting", "protocol", "n_neighbors",
                 *[f"{m}{s}" for m in METRICS for s in ("", "_ci_low", "_ci_high")],
                 "n_queries", "n_no_relevant", "n_query_groups"]


@dataclass(frozen=True)
class RetrievalCurves:
    """Result of :func:`retrieval_curves`.

    ``curves``: one row per (eval_set, setting, protocol, n_neighbors = 1..K) with
    :data:`CURVE_COLUMNS` (each metric's mean over the queries with ``R > 0`` and its interval).
    ``differences``: the paired strict − legacy difference of each metric per (eval_set, setting,
    n_neighbors): ``metric``, ``difference``, ``ci_low``, ``ci_high`` (same bootstrap draws).
    ``config``: the knobs used.
    ``setting_differences``: the paired whole atlas − own dataset difference of each metric per
    (eval_set, protocol, n_neighbors): ``metric``, ``difference``, ``ci_low``, ``ci_high`` (both
    settings resample the same query groups with the same draws); empty unless both settings ran.
    """

    curves: pd.DataFrame
    differences: pd.DataFrame
    config: RetrievalConfig
    setting_differences: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SETTING_DIFF_COLUMNS))

    def table(self, n_neighbors: int | None = None) -> pd.DataFrame:
        """The curves at one cutoff (default ``config.n_neighbors``)."""
        k = self.config.n_neighbors if n_neighbors is None else n_neighbors
        return self.curves[self.curves["n_neighbors"] == k].reset_index(drop=True)

    def difference_table(self, n_neighbors: int | None = None) -> pd.DataFrame:
        """The strict − legacy differences at one cutoff (default ``config.n_neighbors``)."""
        k = self.config.n_neighbors if n_neighbors is None else n_neighbors
        return self.differences[self.differences["n_neighbors"] == k].reset_index(drop=True)

    def setting_difference_table(self, n_neighbors: int | None = None) -> pd.DataFrame:
        """The whole atlas − own dataset differences at one cutoff (default ``config.n_neighbors``)."""
        k = self.config.n_neighbors if n_neighbors is None else n_neighbors
        frame = self.setting_differences
        return frame[frame["n_neighbors"] == k].reset_index(drop=True)


def retrieval_curves(
    vectors: np.ndarray,
    labels: Sequence,
    datasets: Sequence[str],
    eval_datasets: Sequence[str],
    *,
    groups: np.ndarray | None = None,
    config: RetrievalConfig | None = None,
    settings: Sequence[str] = ("same_dataset", "whole_atlas"),
    protocols: Sequence[str] = PROTOCOLS,
    search: SearchConfig | None = None,
    index: VectorIndex | None = None,
    **knobs,
) -> RetrievalCurves:
    """Diagnosis-match retrieval of held-out datasets: curves, intervals, strict versus legacy.

    Parameters
    ----------
    vectors : ndarray of shape (n, d)
        The atlas (l2-normalised here).
    labels : array-like of shape (n,)
        The label a match must share (compared as strings; NA never matches, never queries).
    datasets : array-like of shape (n,)
        Dataset of each row.
    eval_datasets : sequence of str
        Datasets whose labelled images query (absent names are skipped).
    groups : array-like of shape (n,), optional
        Group id of each row (:func:`skinmap.analysis.evaluation_split.group_ids` of lesion, patient and near-duplicate cluster,
        or the evaluation split's groups). None: every row its own group, so strict = legacy.
    config : RetrievalConfig, optional
        Knobs; any field may also be passed as a keyword (``max_neighbors=20``).
    settings : sequence of {"same_dataset", "whole_atlas"}
        The searched pool: the query's own dataset, or the whole atlas.
    protocols : sequence of {"strict", "legacy"}
        Exclusion rules (module docstring); the differences need both.
    search : SearchConfig, optional
        Search engine (:func:`neighbours_outside_group`); None or ``"exact"``: the exact search of
        each pool, as before. With IVF one index over all rows (``index``, or built here once) serves
        the whole-atlas setting of every eval set, and a pool that is a small share of the atlas
        (the same-dataset setting) gets one index of its own, shared by both protocols.
    index : VectorIndex, optional
        A prebuilt index over all rows in row order (:func:`shared_search_index`).

    Returns
    -------
    RetrievalCurves
        Per (eval_set, setting, protocol) and k = 1..K the mean P@k, R@k and AP@k over queries
        with ``R > 0``, with ``ci`` percentile intervals from ``n_bootstrap`` resamples of the
        query groups (the query's group under ``groups``; draws shared by both protocols).
    """
    cfg = with_knobs(RetrievalConfig, config, knobs)
    for protocol in protocols:
        check_choice("protocol", protocol, Protocol)
    approximate = _is_approximate(search, index)
    if not approximate:
        vectors = l2_normalize(vectors)
    codes = _label_codes(labels)
    group_ids = _group_codes(groups, len(codes))
    datasets = pd.Series(np.asarray(datasets, dtype=object)).astype("string")
    K = cfg.max_neighbors
    ks = np.arange(1, K + 1)
    curve_rows, diff_rows, setting_rows = [], [], []
    for e, name in enumerate(eval_datasets):
        in_ds = (datasets == name).fillna(False).to_numpy()
        q_rows = np.flatnonzero(in_ds & (codes >= 0))
        if q_rows.size == 0:
            continue
        setting_reps, setting_means = {}, {}
        for setting in settings:
            pool = _pool(setting, in_ds)
            pool_index = None
            if approximate:
                if index is None and pool.size >= SHARED_INDEX_MIN_SHARE * len(codes):
                    index = build_search_index(vectors, search)  # once, for every eval set
                pool_index = _pool_index(vectors, pool, search, index)
            per = {p: _per_query_curves(vectors, codes, group_ids, q_rows, pool, K, p, pool_index)
                   for p in protocols}
            del pool_index
            blocks = []
            for p in protocols:
                ok = per[p]["n_relevant"] > 0
                blocks += [np.where(ok[:, None], per[p][m], np.nan) for m in METRICS]
            rng = np.random.default_rng([cfg.seed, e])  # the same draws for every setting: paired differences
            means, reps = group_bootstrap_means(np.hstack(blocks), group_ids[q_rows],
                                                n_bootstrap=cfg.n_bootstrap, rng=rng)
            means, reps = means.reshape(len(protocols), len(METRICS), K), reps.reshape(-1, len(protocols),
                                                                                        len(METRICS), K)
            setting_reps[setting], setting_means[setting] = reps, means
            n_groups = int(np.unique(group_ids[q_rows]).size)
            for i, p in enumerate(protocols):
                ok = per[p]["n_relevant"] > 0
                frame = {"eval_set": name, "setting": setting, "protocol": p, "n_neighbors": ks}
                for j, m in enumerate(METRICS):
                    low, high = _intervals(reps[:, i, j, :], cfg.ci)
                    frame.update({m: means[i, j], f"{m}_ci_low": low, f"{m}_ci_high": high})
                frame.update(n_queries=int(ok.sum()), n_no_relevant=int((~ok).sum()), n_query_groups=n_groups)
                curve_rows.append(pd.DataFrame(frame))
            if {"strict", "legacy"} <= set(protocols):
                a, b = list(protocols).index("strict"), list(protocols).index("legacy")
                for j, m in enumerate(METRICS):
                    low, high = _intervals(reps[:, a, j, :] - reps[:, b, j, :], cfg.ci)
                    diff_rows.append(pd.DataFrame({
                        "eval_set": name, "setting": setting, "n_neighbors": ks, "metric": m,
                        "difference": means[a, j] - means[b, j], "ci_low": low, "ci_high": high}))
        if {"same_dataset", "whole_atlas"} <= set(settings):
            for i, p in enumerate(protocols):
                for j, m in enumerate(METRICS):
                    gain = setting_reps["whole_atlas"][:, i, j, :] - setting_reps["same_dataset"][:, i, j, :]
                    low, high = _intervals(gain, cfg.ci)
                    setting_rows.append(pd.DataFrame({
                        "eval_set": name, "protocol": p, "n_neighbors": ks, "metric": m,
                        "difference": setting_means["whole_atlas"][i, j] - setting_means["same_dataset"][i, j],
                        "ci_low": low, "ci_high": high}))
    curves = pd.concat(curve_rows, ignore_index=True) if curve_rows else pd.DataFrame(columns=CURVE_COLUMNS)
    diff_cols = ["eval_set", "setting", "n_neighbors", "metric", "difference", "ci_low", "ci_high"]
    differences = pd.concat(diff_rows, ignore_index=True) if diff_rows else pd.DataFrame(columns=diff_cols)
    setting_differences = (pd.concat(setting_rows, ignore_index=True) if setting_rows
                           else pd.DataFrame(columns=SETTING_DIFF_COLUMNS))
    return RetrievalCurves(curves=curves[CURVE_COLUMNS], differences=differences[diff_cols], config=cfg,
                           setting_differences=setting_differences[SETTING_DIFF_COLUMNS])


def _intervals(replicates: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-column percentile intervals of (B, K) replicates, non-finite replicates left out."""
    bounds = np.array([percentile_interval(replicates[:, c], ci) for c in range(replicates.shape[1])])
    if bounds.size == 0:
        return np.full(replicates.shape[1], np.nan), np.full(replicates.shape[1], np.nan)
    return bounds[:, 0], bounds[:, 1]
