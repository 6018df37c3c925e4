"""Parameters of chapter 07-similarity (Fréchet distances between datasets; methods.md section 6)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from skinmap.book.schemas import ChapterParams

DEPENDS_ON: tuple[str, ...] = ("data", "embedding")


class Params(ChapterParams):
    covariance: Literal["empirical", "ledoit_wolf", "auto"] = Field(
        "auto",
        description="covariance estimator (eq. 7): 'auto' = Ledoit-Wolf shrinkage only for datasets with n <= d",
    )
    pca_components: int | None = Field(
        None, ge=1, description="project onto this many pooled principal axes first; None = full dimension"
    )
    min_images: int = Field(20, ge=2, description="datasets with fewer embedded images are left out (and listed)")
    bootstrap_b: int = Field(50, ge=0, le=100_000, description="bootstrap replicates per FD (images resampled within datasets)")
    ci: float = Field(0.95, gt=0.5, lt=1.0, description="central quantile range of the FD intervals")
    seed: int = Field(0, ge=0, description="seed of the bootstrap")
    high_overlap_quantile: float = Field(
        0.1, gt=0.0, le=1.0, description="pairs with FD at or below this quantile of all pairs are high-overlap"
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
