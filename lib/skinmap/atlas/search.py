"""The atlas app's search index: built once at start-up, with the benchmark's exclusions.

:class:`AtlasIndex` holds the atlas vectors (l2-normalised, so inner product = cosine
similarity) in one :class:`~skinmap.analysis.knn.VectorIndex` (the project's one k-NN engine,
built by :func:`skinmap.analysis.retrieval.build_search_index`) chosen by size: exact below
``ivf_min_rows`` rows, an inverted-file index (IVF-flat, ``ivf_nlist`` cells trained on a sample of
``ivf_train_size`` rows, ``ivf_nprobe`` searched) from there on. Metadata filters and exclusions are
applied by search-and-filter with a growing ``k`` (:func:`skinmap.analysis.retrieval.search_allowed`),
so a filtered query still gets its k nearest allowed cases (with IVF: among the probed cells, as
a faiss ID selector inside the search would).

Which rows a query may retrieve follows the atlas chapter's benchmark
(:mod:`skinmap.analysis.retrieval`, strict protocol): a catalog case never retrieves its own
group (rows sharing a lesion id, a patient id or a near-duplicate cluster,
:func:`skinmap.runs.load_groups`). In addition, images the quality chapter
flags (off-topic, or members of a near-duplicate cluster whose labels conflict,
:func:`quality_flags`) are left out unless the caller asks for them.

Out-of-distribution threshold. At build time every eligible atlas row (at most ``ood_max_queries``
of them, drawn with ``seed``) is searched against the other eligible rows outside its group, and
the ``ood_percentile``-th percentile of those nearest-neighbour similarities is the threshold
``s_min`` (searched in the same index, so approximate with IVF). A query whose nearest similarity falls below ``s_min`` is less like its nearest case
than (100 - ``ood_percentile``) % of atlas images are like theirs: "unlike anything in the atlas".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from skinmap.analysis.knn import SearchConfig, l2_normalize
from skinmap.analysis.retrieval import build_search_index, filter_mask, neighbours_outside_group, search_allowed
from skinmap.config import check_knobs, knob, knob_default

__all__ = ["AtlasIndexConfig", "AtlasIndex", "nn_similarity_threshold", "quality_flags", "FLAG_REASONS"]

#: Why an image is flagged, as the app shows it.
FLAG_REASONS = {"offtopic": "off-topic (quality chapter)",
                "conflict": "near-duplicate with conflicting labels (quality chapter)"}


@dataclass(frozen=True)
class AtlasIndexConfig:
    """The knobs of :class:`AtlasIndex`, their defaults and ranges."""

    ivf_min_rows: int = knob(50_000, ge=1, description="atlases with at least this many rows get an IVF index; "
                             "smaller ones are searched exactly")
    ivf_nlist: int = knob(0, ge=0, description="IVF cells (0: about 4 sqrt(n), at most n / 39)")
    ivf_nprobe: int = knob(32, ge=1, description="IVF cells searched per query")
    ivf_train_size: int = knob(knob_default(SearchConfig, "ivf_train_size"), ge=1,
                               description="rows sampled (seeded) to train the IVF cells")
    ood_percentile: float = knob(1.0, ge=0.0, le=100.0, description="percentile of the atlas's own "
                                 "nearest-neighbour similarities below which a query is out of distribution")
    ood_max_queries: int = knob(20_000, ge=1, description="atlas rows searched to estimate that distribution")
    exclude_flagged: bool = knob(True, description="leave out images the quality chapter flags unless asked")
    seed: int = knob(0, ge=0, description="seed of the subsample of the threshold's queries and of the IVF "
                     "training sample")

    def __post_init__(self) -> None:
        check_knobs(self)


def nn_similarity_threshold(similarities: np.ndarray, percentile: float) -> float:
    """The ``percentile``-th percentile (numpy's linear interpolation) of finite similarities."""
    sims = np.asarray(similarities, dtype=np.float64)
    sims = sims[np.isfinite(sims)]
    return float(np.percentile(sims, percentile)) if sims.size else float("nan")


def quality_flags(uids: Sequence[str], offtopic: pd.DataFrame | None, clusters: pd.DataFrame | None,
                  cluster_of: pd.Series | None) -> pd.DataFrame:
    """Which atlas images the quality chapter flags, and why.

    Parameters
    ----------
    uids : sequence of str, length n
    offtopic : the quality chapter's off-topic ranking (``uid``, ``flagged``), or None.
    clusters : the quality chapter's cluster table (``cluster``, ``conflict``), or None.
    cluster_of : nullable cluster id of each uid (:func:`skinmap.runs.load_duplicate_clusters`).

    Returns
    -------
    DataFrame of n rows: ``offtopic``, ``conflict``, ``flagged`` (bool) and ``cluster`` (Int64).
    """
    uids = pd.Series(uids, dtype=object).astype(str).reset_index(drop=True)
    out = pd.DataFrame({"offtopic": np.zeros(len(uids), bool), "conflict": np.zeros(len(uids), bool)})
    if offtopic is not None and len(offtopic):
        bad = set(offtopic.loc[offtopic["flagged"].astype(str).str.lower().isin(["true", "1"]), "uid"].astype(str))
        out["offtopic"] = uids.isin(bad).to_numpy()
    cluster = (pd.Series(cluster_of).reset_index(drop=True).astype("Int64") if cluster_of is not None
               else pd.Series(pd.NA, index=uids.index, dtype="Int64"))
    if clusters is not None and len(clusters) and "conflict" in clusters:
        conflicting = set(clusters.loc[clusters["conflict"].astype(str) != "homogeneous", "cluster"].astype(int))
        out["conflict"] = cluster.isin(conflicting).fillna(False).to_numpy(dtype=bool)
    out["flagged"] = out["offtopic"] | out["conflict"]
    out["cluster"] = cluster.to_numpy()
    return out


class AtlasIndex:
    """The atlas' vectors in a faiss index with metadata, groups and quality flags.

    Parameters
    ----------
    vectors : ndarray of shape (n, d)
    metadata : DataFrame of n rows with ``uid``.
    groups : ndarray of shape (n,), optional
        Group of each row (lesion, patient, near-duplicate cluster); None: every row alone.
    flagged : ndarray of shape (n,), bool, optional
        Rows the quality chapter flags.
    clusters : array-like of shape (n,), optional
        Near-duplicate cluster of each row (NA: none); results collapse a cluster to one card.
    config : AtlasIndexConfig
    """

    def __init__(self, vectors: np.ndarray, metadata: pd.DataFrame, *, groups: np.ndarray | None = None,
                 flagged: np.ndarray | None = None, clusters=None, config: AtlasIndexConfig | None = None):
        if len(metadata) != len(vectors):
            raise ValueError(f"{len(vectors)} vectors but {len(metadata)} metadata rows")
        if "uid" not in metadata:
            raise ValueError("metadata needs a 'uid' column")
        self.config = config or AtlasIndexConfig()
        self.vectors = l2_normalize(vectors)
        self.metadata = metadata.reset_index(drop=True)
        n = len(self.vectors)
        self.groups = (np.arange(n, dtype=np.int64) if groups is None
                       else pd.factorize(pd.Series(np.asarray(groups)))[0].astype(np.int64))
        self.flagged = np.zeros(n, bool) if flagged is None else np.asarray(flagged, dtype=bool)
        clusters = pd.Series(clusters if clusters is not None else [pd.NA] * n).astype("Int64").reset_index(drop=True)
        # one collapse key per row: its cluster, or itself
        self.collapse_key = np.where(clusters.isna(), -1 - np.arange(n), clusters.fillna(0).to_numpy(np.int64))
        self.copies = pd.Series(self.collapse_key).map(pd.Series(self.collapse_key).value_counts()).to_numpy()
        self._row_of_uid = pd.Series(np.arange(n), index=self.metadata["uid"].astype(str))
        if not self._row_of_uid.index.is_unique:
            raise ValueError("metadata 'uid' values must be unique")
        cfg = self.config
        self.search_config = SearchConfig(
            search_method="ivf" if n >= cfg.ivf_min_rows else "exact", ivf_nlist=cfg.ivf_nlist,
            ivf_nprobe=cfg.ivf_nprobe, ivf_train_size=cfg.ivf_train_size, seed=cfg.seed)
        self._index = build_search_index(self.vectors, self.search_config, normalize=False, use_gpu=False)
        if self.search_config.search_method == "ivf":
            nlist = int(self._index.nlist)
            self.kind, self.nlist, self.nprobe = "ivf", nlist, min(cfg.ivf_nprobe, nlist)
        else:
            self.kind, self.nlist, self.nprobe = "exact", 0, 0
        self.nn_similarities = self._atlas_nn_similarities()
        self.ood_threshold = nn_similarity_threshold(self.nn_similarities, self.config.ood_percentile)

    def __len__(self) -> int:
        return len(self.metadata)

    def eligible(self, include_flagged: bool | None = None) -> np.ndarray:
        """Rows a query may retrieve before filters: all, or all but the flagged ones."""
        include = (not self.config.exclude_flagged) if include_flagged is None else include_flagged
        return np.ones(len(self), bool) if include else ~self.flagged

    def _atlas_nn_similarities(self) -> np.ndarray:
        """Nearest-neighbour similarity of each (sampled) eligible row to an eligible row outside its group."""
        pool = np.flatnonzero(self.eligible())
        if pool.size < 2:
            return np.empty(0)
        queries = pool
        if pool.size > self.config.ood_max_queries:
            rng = np.random.default_rng(self.config.seed)
            queries = np.sort(rng.choice(pool, size=self.config.ood_max_queries, replace=False))
        nn = neighbours_outside_group(self.vectors, queries, pool, 1, groups=self.groups, protocol="strict",
                                      index=self._index)[:, 0]
        ok = nn >= 0
        return np.einsum("ij,ij->i", self.vectors[queries[ok]], self.vectors[nn[ok]]).astype(np.float64)

    def row_of(self, uid: str) -> int:
        """Row of a catalog id; ``KeyError`` naming it when unknown."""
        try:
            return int(self._row_of_uid[str(uid)])
        except KeyError:
            raise KeyError(f"unknown catalog id {uid!r}") from None

    def group_rows(self, row: int) -> np.ndarray:
        """Every row of ``row``'s group (itself included)."""
        return np.flatnonzero(self.groups == self.groups[row])

    def search(self, query: np.ndarray, k: int = 10, *, filters: Mapping[str, object] | None = None,
               exclude_rows: Sequence[int] = (), include_flagged: bool | None = None,
               collapse: bool = False) -> pd.DataFrame:
        """The k nearest allowed cases to one vector, nearest first.

        Allowed: passes ``filters``, not in ``exclude_rows``, and not flagged unless
        ``include_flagged``. With ``collapse``, rows of one near-duplicate cluster give one result
        (its nearest member) and ``k`` counts results, not rows. Returns ``rank``, ``row``,
        ``similarity``, ``copies`` (rows of the cluster), ``flagged`` and the metadata columns.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = l2_normalize(np.asarray(query, dtype=np.float32).reshape(1, -1))
        if q.shape[1] != self.vectors.shape[1]:
            raise ValueError(f"query has dimension {q.shape[1]}, the atlas {self.vectors.shape[1]}")
        allowed = filter_mask(self.metadata, filters) & self.eligible(include_flagged)
        allowed[np.asarray(exclude_rows, dtype=np.int64)] = False
        n_allowed = int(allowed.sum())
        k_rows = k * int(self.copies[allowed].max(initial=1)) if collapse else k
        kk = min(k_rows, n_allowed)
        if kk == 0:
            return self._frame(np.empty(0, np.int64), np.empty(0, np.float32))
        if n_allowed == len(allowed):
            res = self._index.search(q, kk, normalize=False)
        else:  # search-and-filter, first asking for as many as the allowed share suggests
            res = search_allowed(self._index, q, kk, lambda _, ids: allowed[ids], normalize=False,
                                 k_start=int(np.ceil(kk * len(allowed) / n_allowed)))
        keep = res.indices[0] >= 0
        rows, sims = res.indices[0][keep], res.similarities[0][keep]
        if collapse:
            first = ~pd.Series(self.collapse_key[rows]).duplicated().to_numpy()
            rows, sims = rows[first][:k], sims[first][:k]
        return self._frame(rows, sims)

    def _frame(self, rows: np.ndarray, sims: np.ndarray) -> pd.DataFrame:
        head = pd.DataFrame({"rank": np.arange(1, rows.size + 1), "row": rows.astype(np.int64),
                             "similarity": sims.astype(np.float64), "copies": self.copies[rows].astype(np.int64),
                             "flagged": self.flagged[rows]})
        return pd.concat([head, self.metadata.iloc[rows].reset_index(drop=True)], axis=1)
