"""Parameters of chapter 07-similarity (Fréchet distances between datasets; methods.md section 6)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from skinmap.analysis.frechet import Covariance
from skinmap.analysis.similarity import OVERLAP_QUANTILE_BOUNDS, SimilarityConfig, SizeFairConfig
from skinmap.book.schemas import ChapterParams, knob_field

DEPENDS_ON: tuple[str, ...] = ("data", "embedding")
RENAMED_KEYS: dict[str, str] = {"bootstrap_b": "n_bootstrap"}


class Params(ChapterParams):
    # the knobs of skinmap.analysis.similarity.SimilarityConfig
    covariance: Covariance = knob_field(SimilarityConfig, "covariance")
    pca_components: int | None = knob_field(SimilarityConfig, "pca_components")
    bootstrap_components: int | None = knob_field(SimilarityConfig, "bootstrap_components")
    min_images: int = knob_field(
        SimilarityConfig, "min_images", default=20,
        description="datasets with fewer embedded images are left out (and listed)")
    n_bootstrap: int = knob_field(SimilarityConfig, "n_bootstrap", default=50)
    ci: float = knob_field(SimilarityConfig, "ci")
    seed: int = knob_field(SimilarityConfig, "seed", description="seed of the bootstrap and of the subsample draws")
    # the knobs of skinmap.analysis.similarity.SizeFairConfig (the size-fair FD; ci and seed shared)
    size_fair_components: int | None = knob_field(SizeFairConfig, "n_components")
    size_fair_n_sizes: int = knob_field(SizeFairConfig, "n_sizes")
    size_fair_min_size_fraction: float = knob_field(SizeFairConfig, "min_size_fraction")
    size_fair_n_draws: int = knob_field(SizeFairConfig, "n_draws", default=10)
    subsample_fraction: float = knob_field(SizeFairConfig, "subsample_fraction")
    n_subsamples: int = knob_field(SizeFairConfig, "n_subsamples")
    high_overlap_quantile: float = Field(
        0.1, **OVERLAP_QUANTILE_BOUNDS,
        description="pairs with FD at or below this quantile of all pairs are high-overlap"
    )
    high_overlap_fd: float | None = Field(
        None, ge=0.0, description="absolute FD threshold for high-overlap pairs; overrides the quantile when set"
    )
    linkage: Literal["average", "complete", "single", "weighted"] = Field(
        "average", description="hierarchical clustering that orders the heatmap"
    )
    known_pairs: list[tuple[str, str]] = Field(
        [], description="(subset, parent) dataset pairs expected to overlap, besides the synthetic ground truth"
    )
