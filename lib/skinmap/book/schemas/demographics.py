"""Parameters of the demographics chapter (``chapters/05-demographics.ipynb``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from skinmap.analysis.resampling import CI_BOUNDS
from skinmap.book.schemas import ChapterParams

# The imputation chapter's imputed.parquet is read when present; the chapter runs unchanged without it.
DEPENDS_ON: tuple[str, ...] = ("data", "imputation")


class Params(ChapterParams):
    normalize: Literal["none", "row", "all"] = Field(
        "row", description="heatmap cells as counts ('none'), row percentages ('row') or % of all observed ('all')"
    )
    use_imputed: bool = Field(
        True, description="show observed vs observed-or-imputed side by side when imputation/imputed.parquet exists"
    )
    min_rows: int = Field(
        1, ge=0, description="skip a figure whose fields are jointly observed in fewer rows than this"
    )
    n_draws: int = Field(
        200, ge=10, le=100_000,
        description="multiple-imputation replicates of the shares (rows resampled, imputed labels drawn)",
    )
    icd_n_draws: int = Field(
        20, ge=1, le=10_000, description="imputation replicates of the ICD-10 coverage by skin type"
    )
    ci: float = Field(0.95, **CI_BOUNDS, description="central level of every interval")
    seed: int = Field(0, ge=0, description="seed of the replicates")
