"""The hole search: landmarks -> k-NN graph -> corrected resistance -> H1 persistence (eqs. 9-13).

Its knobs travel as one :class:`HoleSearchConfig`, built once (a chapter builds it from its
parameters) and given whole to :func:`search_holes` and to :func:`top_persistence` (one round of
the significance null, which must run the same pipeline as the observed search).

Scale (issue 19). Landmark selection never runs over all rows when ``landmark_pool_size`` is set:
farthest-point sampling runs on a seeded (stratified) pool of that many rows, exactly and in
blocks of matrix products (:func:`~skinmap.analysis.topology.graph.farthest_point_landmarks`),
after the trimmed tail is decided by each pool row's k-NN distance among all rows or among the
pool (``landmark_density_rows``; one :class:`~skinmap.analysis.knn.VectorIndex`, exact or IVF by
``search_method``). The graph,
resistance and Ripser then work on the landmarks only. :func:`~.holes.find_holes` runs the whole
step (and is what chapter 08 and the paper-scale benchmark call).

Cost of the null. A null round reruns the graph, the resistance and Ripser on shuffled copies of
the observed search's *landmark rows* (not of all rows: no landmark selection per round, and the
graph has the observed size, so resistances are on the same scale) without cocycles. Its cost is
one observed search minus the landmark selection; measured on this project's shared 2-core
machine: ~0.5 s at 1,619 landmarks / 500 Ripser points (demo), 10-18 s at 4,000 / 800 (mini),
half of it the dense resistance (``n^3``), half Ripser (erratic, data dependent).
At the full profile's 10,000 landmarks / 2,000 Ripser points (shuffled 1,024-d rows): 46.5 s of CPU
and 1.8 GiB peak RSS per round (issue 19).

BLAS threads. Every search runs with ``blas_threads`` BLAS threads (default 1). On a shared
machine multi-threaded OpenBLAS spins against other jobs: a null round on the demo's 1,619
landmarks took 3.7 s with two threads and 0.41 s with one (median of 8, same load; 200x at
n = 100, 3x at n = 4,000). Sums in another order differ in the last bits, which can reorder
tied Ripser edges, so the observed search, its null rounds and its stability draws must use one
setting (they all take this default).
"""

from __future__ import annotations

from collections.abc import Sequence
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp

from skinmap.analysis.knn import SearchConfig, SearchMethod, VectorIndex
from skinmap.analysis.topology.graph import select_landmarks, symmetric_knn_graph
from skinmap.analysis.topology.persistence import H1Diagram, h1_persistence
from skinmap.analysis.topology.resistance import corrected_resistance, spectral_corrected_resistance
from skinmap.config import check_knobs, knob, knob_bounds, knob_default, knob_description, with_knobs

__all__ = ["HoleSearchConfig", "HoleSearch", "landmark_resistance", "search_holes", "top_persistence",
           "max_persistence"]

LandmarkMethod = Literal["farthest", "trimmed_farthest", "stratified", "random"]
DensityRows = Literal["all", "pool"]
ResistanceMethod = Literal["dense", "spectral"]


def _search_knob(name: str):
    """A knob of :class:`~skinmap.analysis.knn.SearchConfig` (bounds declared there, once)."""
    return knob(knob_default(SearchConfig, name), **knob_bounds(SearchConfig, name),
                description=knob_description(SearchConfig, name) + " (landmark density k-NN)")


@dataclass(frozen=True)
class HoleSearchConfig:
    """The knobs of the spectral persistent-homology search (eqs. 9-13), defaults and ranges."""

    n_landmarks: int = knob(1000, ge=10, le=200_000,
                            description="graph nodes (landmarks); all samples when there are fewer")
    landmark_method: LandmarkMethod = knob(
        "farthest", description="farthest-point (cosine), farthest-point after trimming the lowest-density tail, "
                                "dataset-stratified or uniform random landmarks")
    landmark_trim_fraction: float = knob(
        0.025, ge=0.0, lt=1.0,
        description="share of rows with the sparsest k-NN neighbourhood dropped before trimmed farthest-point")
    landmark_density_n_neighbors: int = knob(
        10, ge=1, le=500, description="neighbours of the k-NN density that decides the trimmed tail")
    landmark_pool_size: int = knob(
        0, ge=0, description="farthest-point landmarks are chosen among a seeded random pool of this many rows "
                             "(stratified by the landmark strata when given; 0: all rows)")
    landmark_density_rows: DensityRows = knob(
        "all", description="the trimming k-NN density of a pool row counts neighbours among all rows, or among "
                           "the pool only (cheaper; a monotone proxy of the same density)")
    search_method: SearchMethod = _search_knob("search_method")
    ivf_nlist: int = _search_knob("ivf_nlist")
    ivf_nprobe: int = _search_knob("ivf_nprobe")
    ivf_train_size: int = _search_knob("ivf_train_size")
    graph_n_neighbors: int = knob(15, ge=2, le=500, description="neighbours of the symmetric k-NN graph (eq. 9)")
    resistance_method: ResistanceMethod = knob(
        "dense", description="exact dense pseudoinverse or leading-eigenvector approximation (eq. 11)")
    n_eigenvectors: int = knob(100, ge=2, le=10_000,
                               description="eigenvectors of the normalised Laplacian for the spectral approximation")
    between_factor: float = knob(
        2.0, gt=1.0, le=100.0, description="resistance between components = factor x largest within-component value")
    max_rips_points: int | None = knob(
        1000, ge=10, le=20_000,
        description="Ripser runs on a greedy-permutation subsample of at most this many landmarks (None: all)")
    seed: int = knob(0, ge=0, description="seed of the landmarks")

    def __post_init__(self) -> None:
        check_knobs(self)
        if 0 < self.landmark_pool_size < self.n_landmarks:
            raise ValueError(f"landmark_pool_size ({self.landmark_pool_size}) must be 0 (all rows) or at least "
                             f"n_landmarks ({self.n_landmarks})")

    @property
    def search(self) -> SearchConfig:
        """The k-NN engine of the landmark density (the graph on the landmarks is always exact)."""
        return SearchConfig(search_method=self.search_method, ivf_nlist=self.ivf_nlist, ivf_nprobe=self.ivf_nprobe,
                            ivf_train_size=self.ivf_train_size, seed=self.seed)

    @property
    def needs_row_index(self) -> bool:
        """Whether landmark selection searches neighbours among all rows (the trimmed density)."""
        return (self.landmark_method == "trimmed_farthest" and self.landmark_trim_fraction > 0
                and self.landmark_density_rows == "all")


def landmark_resistance(
    z: np.ndarray,
    landmarks: np.ndarray,
    config: HoleSearchConfig | None = None,
    **knobs,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Symmetric k-NN graph on ``z[landmarks]`` and its corrected resistance (eqs. 9-11).

    ``config.resistance_method``: "dense" (exact) or "spectral" (leading-eigenvector approximation).
    """
    cfg = with_knobs(HoleSearchConfig, config, knobs)
    adjacency = symmetric_knn_graph(z[np.asarray(landmarks)], cfg.graph_n_neighbors)
    if cfg.resistance_method == "dense":
        dist = corrected_resistance(adjacency, between_factor=cfg.between_factor)
    else:
        dist = spectral_corrected_resistance(adjacency, cfg.n_eigenvectors, between_factor=cfg.between_factor)
    return adjacency, dist


@dataclass(frozen=True)
class HoleSearch:
    """Everything one spectral-persistence run produced (rows refer to ``z``)."""

    landmarks: np.ndarray
    adjacency: sp.csr_matrix
    diagram: H1Diagram
    seconds: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def rips_rows(self) -> np.ndarray:
        """Rows of ``z`` the Rips filtration ran on (diagram positions -> data rows)."""
        return self.landmarks[self.diagram.points]


def _blas_limit(blas_threads: int | None):
    if not blas_threads:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=blas_threads, user_api="blas")


def search_holes(
    z: np.ndarray,
    config: HoleSearchConfig | None = None,
    *,
    strata: Sequence | None = None,
    blas_threads: int | None = 1,
    index: VectorIndex | None = None,
    progress: bool = False,
    **knobs,
) -> HoleSearch:
    """Landmarks -> k-NN graph -> corrected resistance -> H1 persistence (eqs. 9-13).

    Parameters
    ----------
    z : array of shape (n, d)
        The embedding (a memmap is read in chunks; only the pool and the landmarks are copied).
    config : HoleSearchConfig, optional
        The knobs; single knobs may also be given as keyword arguments.
    strata : sequence of length n, optional
        Labels for ``landmark_method="stratified"`` and for the stratified landmark pool.
    blas_threads : int or None
        See the module docstring (``None`` leaves the BLAS threads as they are).
    index : VectorIndex, optional
        A ready index over all rows of ``z`` for the landmark density (built when needed;
        not used when ``landmark_density_rows="pool"``).
    progress : bool
        tqdm bars on stderr.

    Returns
    -------
    HoleSearch
        Landmarks (rows of ``z``), graph, diagram and the seconds of each stage
        (``landmarks``, ``resistance``, ``ripser``).
    """
    cfg = with_knobs(HoleSearchConfig, config, knobs)
    seconds = {}
    with _blas_limit(blas_threads):
        t0 = time.perf_counter()
        landmarks = select_landmarks(z, cfg.n_landmarks, cfg.landmark_method, strata=strata, seed=cfg.seed,
                                     trim_fraction=cfg.landmark_trim_fraction,
                                     density_n_neighbors=cfg.landmark_density_n_neighbors,
                                     pool_size=cfg.landmark_pool_size, density_rows=cfg.landmark_density_rows,
                                     search=cfg.search, index=index if cfg.needs_row_index else None,
                                     progress=progress)
        t1 = time.perf_counter()
        adjacency, dist = landmark_resistance(z, landmarks, cfg)
        t2 = time.perf_counter()
        diagram = h1_persistence(dist, max_points=cfg.max_rips_points)
        t3 = time.perf_counter()
    seconds.update(landmarks=t1 - t0, resistance=t2 - t1, ripser=t3 - t2)
    return HoleSearch(landmarks, adjacency, diagram, seconds)


def top_persistence(
    x: np.ndarray, config: HoleSearchConfig | None = None, *, n_top: int = 1, blas_threads: int | None = 1,
    **knobs
) -> np.ndarray:
    """The ``n_top`` largest H1 persistences of ``x`` with every row a landmark, shape ``(n_top,)``.

    One null round's statistics (zero-padded when the diagram has fewer bars). Resistance scales
    with graph size, so give it as many rows as the observed run's landmarks (the shuffled
    ``z[search.landmarks]``) and the observed search's config (graph, resistance and Rips knobs
    are used; the landmark knobs are not). No cocycles are computed. ``blas_threads`` as in
    :func:`search_holes` (the same setting as the observed search).
    """
    cfg = with_knobs(HoleSearchConfig, config, knobs)
    with _blas_limit(blas_threads):
        _, dist = landmark_resistance(x, np.arange(len(x)), cfg)
        diagram = h1_persistence(dist, max_points=cfg.max_rips_points, cocycles=False)
    out = np.zeros(n_top)
    pers = diagram.persistence[:n_top]
    out[: pers.size] = pers
    return out


def max_persistence(x: np.ndarray, config: HoleSearchConfig | None = None, **knobs) -> float:
    """Largest H1 persistence of ``x`` with every row a landmark (see :func:`top_persistence`)."""
    return float(top_persistence(x, config, n_top=1, **knobs)[0])
