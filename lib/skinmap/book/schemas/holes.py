"""Parameters of chapter 08-holes (density, spectral persistent homology; methods.md sections 7-8)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from skinmap.book.schemas import ChapterParams

DEPENDS_ON: tuple[str, ...] = ("data", "embedding")


class Params(ChapterParams):
    # --- density (section 7)
    density_components: int = Field(8, ge=1, le=1000, description="Gaussian mixture components")
    density_covariance: Literal["full", "tied", "diag", "spherical"] = Field(
        "full", description="covariance type of the mixture components"
    )
    density_projection_dim: int = Field(
        16, ge=1, le=4096, description="PCA dimension the mixture is fitted in (>= embedding dim: no projection)"
    )
    density_low_pct: float = Field(2.5, ge=0.0, lt=50.0, description="percentile below which a sample is 'sparse'")
    density_high_pct: float = Field(
        97.5, gt=50.0, le=100.0, description="percentile above which a sample is 'hypersaturated'"
    )
    gallery_size: int = Field(12, ge=1, le=200, description="thumbnails per density / boundary gallery")
    # --- holes (section 8)
    n_landmarks: int = Field(
        2000, ge=10, le=200_000, description="graph nodes (landmarks); all samples when there are fewer"
    )
    landmark_method: Literal["farthest", "stratified", "random"] = Field(
        "farthest", description="farthest-point (cosine) or dataset-stratified or uniform random landmarks"
    )
    landmark_strata: str = Field("dataset", description="catalog column stratified landmarks keep the mix of")
    k_graph: int = Field(15, ge=2, le=500, description="neighbours of the symmetric k-NN graph (eq. 9)")
    resistance_method: Literal["dense", "spectral"] = Field(
        "dense", description="exact dense pseudoinverse or leading-eigenvector approximation (eq. 11)"
    )
    n_eigenvectors: int = Field(
        100, ge=2, le=10_000, description="eigenvectors of the normalised Laplacian for the spectral approximation"
    )
    between_factor: float = Field(
        2.0, gt=1.0, le=100.0, description="resistance between components = factor x largest within-component value"
    )
    max_rips_points: int = Field(
        500, ge=10, le=20_000, description="Ripser runs on a greedy-permutation subsample of at most this many landmarks"
    )
    n_holes: int = Field(3, ge=1, le=50, description="top holes (by persistence) described in the chapter")
    null_rounds: int = Field(4, ge=0, le=1000, description="null data sets for the significance of the top bars")
    null_method: Literal["shuffle", "resample"] = Field(
        "shuffle", description="null: coordinates shuffled independently, or rows resampled with replacement"
    )
    k_b: int = Field(10, ge=1, le=1000, description="neighbours per cycle point for boundary samples (eq. 18)")
    alpha: float = Field(1.5, gt=0.0, le=10.0, description="boundary radius = alpha x median k_b-th neighbour distance (eq. 18)")
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
    seed: int = Field(0, ge=0, description="seed of landmarks, mixture fit and nulls")
