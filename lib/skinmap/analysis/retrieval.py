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
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from skinmap.analysis.knn import build_index, knn_search, l2_normalize

__all__ = [
    "FILTERABLE",
    "filter_mask",
    "CaseIndex",
    "ranking_metrics",
    "neighbours_excluding",
    "retrieval_benchmark",
]

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
    order and must contain ``uid``. Searches are read-only and safe to run from several threads.
    """

    def __init__(self, vectors: np.ndarray, metadata: pd.DataFrame, *, use_gpu: bool | None = False):
        if len(metadata) != len(vectors):
            raise ValueError(f"{len(vectors)} vectors but {len(metadata)} metadata rows")
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

    def search_uid(self, uid: str, k: int = 10, *, filters: Mapping[str, object] | None = None) -> pd.DataFrame:
        """Neighbours of a catalog case (the case itself excluded by identity)."""
        row = self.row_of(uid)
        return self.search(self.vectors[row], k, filters=filters, exclude_rows=[row])

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
    rel = np.zeros((relevance.shape[0], k), dtype=np.float64)
    width = min(k, relevance.shape[1])
    rel[:, :width] = relevance[:, :width]
    n_relevant = np.asarray(n_relevant, dtype=np.float64)
    hits = rel.sum(axis=1)
    precision_at_i = np.cumsum(rel, axis=1) / np.arange(1, k + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(n_relevant > 0, hits / n_relevant, np.nan)
        ap = np.where(
            n_relevant > 0, (precision_at_i * rel).sum(axis=1) / np.minimum(k, n_relevant), np.nan
        )
    return pd.DataFrame({"precision": hits / k, "recall": recall, "ap": ap, "n_relevant": n_relevant})


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
) -> pd.DataFrame:
    """Diagnosis-match retrieval quality of held-out datasets (paper §9).

    Each labelled image of an evaluation dataset queries (``same_dataset``) only the other images
    of its dataset, or (``whole_atlas``) every other image of the atlas. An item is relevant when
    its label equals the query's (NA labels are never relevant; unlabelled queries are skipped).
    Returns one row per (eval_set, setting) with ``n_neighbors`` (the cutoff ``k`` of the metrics),
    mean ``precision``, ``recall``, ``ap``, ``n_queries`` and ``n_no_relevant`` (queries left out for
    having nothing relevant).
    """
    k = n_neighbors
    vectors = l2_normalize(vectors)
    labels = pd.Series(np.asarray(labels, dtype=object)).astype("string")
    datasets = pd.Series(np.asarray(datasets, dtype=object)).astype("string")
    lab = labels.fillna("\x00<NA>").to_numpy(dtype=object)
    known = labels.notna().to_numpy()
    rows = []
    for name in eval_datasets:
        in_ds = (datasets == name).fillna(False).to_numpy()
        q_rows = np.flatnonzero(in_ds & known)
        if q_rows.size == 0:
            continue
        for setting in settings:
            if setting == "same_dataset":
                pool = np.flatnonzero(in_ds)
            elif setting == "whole_atlas":
                pool = np.arange(len(labels))
            else:
                raise ValueError(f"unknown setting {setting!r} (same_dataset or whole_atlas)")
            pos_in_pool = np.searchsorted(pool, q_rows)
            nn = neighbours_excluding(vectors[q_rows], vectors[pool], pos_in_pool, k)
            nn_labels = np.where(nn >= 0, lab[pool][np.maximum(nn, 0)], None)
            relevance = (nn >= 0) & (nn_labels == lab[q_rows][:, None])
            pool_counts = pd.Series(lab[pool][known[pool]]).value_counts()
            n_rel = pool_counts.reindex(lab[q_rows]).fillna(0).to_numpy() - 1  # minus the query
            per_query = ranking_metrics(relevance, n_rel, k)
            ok = per_query["n_relevant"] > 0
            rows.append(
                {
                    "eval_set": name,
                    "setting": setting,
                    "n_neighbors": k,
                    "precision": per_query["precision"][ok].mean(),
                    "recall": per_query["recall"][ok].mean(),
                    "ap": per_query["ap"][ok].mean(),
                    "n_queries": int(ok.sum()),
                    "n_no_relevant": int((~ok).sum()),
                }
            )
    return pd.DataFrame(
        rows,
        columns=["eval_set", "setting", "n_neighbors", "precision", "recall", "ap", "n_queries", "n_no_relevant"],
    )
