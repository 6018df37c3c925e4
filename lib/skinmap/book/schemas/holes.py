"""Parameters of chapter 08-holes (density, spectral persistent homology; methods.md sections 7-8)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from skinmap.analysis.knn import SearchMethod
from skinmap.analysis.topology.holes import BoundaryConfig, StabilityConfig
from skinmap.analysis.topology.persistence import LEVEL_BOUNDS, NullMethod
from skinmap.analysis.topology.search import DensityRows, HoleSearchConfig, LandmarkMethod, ResistanceMethod
from skinmap.book.schemas import ChapterParams, knob_field

DEPENDS_ON: tuple[str, ...] = ("data", "embedding")
RENAMED_KEYS: dict[str, str] = {"k_graph": "graph_n_neighbors", "k_b": "boundary_n_neighbors"}


class Params(ChapterParams):
    # --- density (section 7)
    density_components: int = Field(8, ge=1, le=1000, description="Gaussian mixture components")
    density_covariance: Literal["full", "tied", "diag", "spherical"] = Field(
        "full", description="covariance type of the mixture components"
    )
    density_projection_dim: int = Field(
        16, ge=1, le=4096, description="PCA dimension the mixture is fitted in (>= embedding dim: no projection)"
    )
    density_fit_size: int = Field(
        0, ge=0, description="rows (a seeded subsample) the PCA and the mixture are fitted on; every row is then "
                             "scored in chunks; 0 = fit on every row"
    )
    density_low_pct: float = Field(2.5, ge=0.0, lt=50.0, description="percentile below which a sample is 'sparse'")
    density_high_pct: float = Field(
        97.5, gt=50.0, le=100.0, description="percentile above which a sample is 'hypersaturated'"
    )
    gallery_size: int = Field(12, ge=1, le=200, description="thumbnails per density / boundary gallery")
    # --- holes (section 8)
    # the knobs of skinmap.analysis.topology.search.HoleSearchConfig (seed: below)
    n_landmarks: int = knob_field(HoleSearchConfig, "n_landmarks", default=2000)
    landmark_method: LandmarkMethod = knob_field(HoleSearchConfig, "landmark_method", default="trimmed_farthest")
    landmark_trim_fraction: float = knob_field(HoleSearchConfig, "landmark_trim_fraction")
    landmark_density_n_neighbors: int = knob_field(HoleSearchConfig, "landmark_density_n_neighbors")
    landmark_pool_size: int = knob_field(HoleSearchConfig, "landmark_pool_size")
    landmark_density_rows: DensityRows = knob_field(HoleSearchConfig, "landmark_density_rows")
    search_method: SearchMethod = knob_field(HoleSearchConfig, "search_method")
    ivf_nlist: int = knob_field(HoleSearchConfig, "ivf_nlist")
    ivf_nprobe: int = knob_field(HoleSearchConfig, "ivf_nprobe")
    ivf_train_size: int = knob_field(HoleSearchConfig, "ivf_train_size")
    landmark_strata: str = Field(
        "dataset", description="catalog column stratified landmarks and the landmark pool keep the mix of")
    graph_n_neighbors: int = knob_field(HoleSearchConfig, "graph_n_neighbors")
    resistance_method: ResistanceMethod = knob_field(HoleSearchConfig, "resistance_method")
    n_eigenvectors: int = knob_field(HoleSearchConfig, "n_eigenvectors")
    between_factor: float = knob_field(HoleSearchConfig, "between_factor")
    max_rips_points: int = knob_field(
        HoleSearchConfig, "max_rips_points", default=500,
        description="Ripser runs on a greedy-permutation subsample of at most this many landmarks")
    n_holes: int = Field(3, ge=1, le=50, description="top holes (by persistence) described in the chapter")
    null_rounds: int = Field(
        99, ge=0, le=10_000,
        description="null data sets for the significance of the top bars (p >= 1/(1+null_rounds): 99 reach 0.01)")
    null_method: NullMethod = Field(
        "shuffle", description="null: coordinates shuffled independently, or rows resampled with replacement"
    )
    significance_level: float = Field(
        0.05, **LEVEL_BOUNDS, description="family-wise level at which the chapter calls a hole significant")
    # the knobs of skinmap.analysis.topology.holes.StabilityConfig
    stability_draws: int = knob_field(StabilityConfig, "n_draws")
    stability_fraction: float = knob_field(StabilityConfig, "fraction")
    # the knobs of skinmap.analysis.topology.holes.BoundaryConfig (eq. 18)
    boundary_n_neighbors: int = knob_field(BoundaryConfig, "boundary_n_neighbors")
    alpha: float = knob_field(BoundaryConfig, "alpha")
    term_columns: list[str] = Field(
        ["diagnosis", "body_site", "modality", "fst", "dataset"],
        description="catalog columns summarised around each hole (term frequencies, word clouds)",
    )
    # --- interactive explorer
    explorer_thumbnails: bool = Field(
        True, description="embed small base64 thumbnails in the explorer (opt-in for real data: never commit the site)"
    )
    thumbnail_px: int = Field(48, ge=16, le=256, description="longest side of explorer thumbnails in pixels")
    explorer_max_points: int = Field(
        5000, ge=100, le=200_000, description="map points drawn in the explorer (a random subset beyond that; holes always kept)"
    )
    seed: int = knob_field(HoleSearchConfig, "seed", description="seed of landmarks, mixture fit and nulls")
