"""Parameters of chapter 06-novelty (yearly novelty, ICD coverage, orphans; methods.md section 5)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from skinmap.book.schemas import ChapterParams

DEPENDS_ON: tuple[str, ...] = ("data", "embedding")


class Params(ChapterParams):
    k: int = Field(10, ge=1, le=1000, description="nearest historical neighbours per image (eq. 2)")
    bootstrap_b: int = Field(200, ge=10, le=100_000, description="bootstrap pseudo-cohorts B of the null (eq. 5)")
    ci: float = Field(0.95, gt=0.5, lt=1.0, description="central quantile range of the null interval")
    seed: int = Field(0, ge=0, description="seed of the bootstrap draws (one stream per year)")
    on_small_history: Literal["nan", "error"] = Field(
        "nan", description="a year with fewer than k + 1 historical images: NaN row ('nan') or stop ('error')"
    )
    duplicate_similarity: float = Field(
        0.99999, gt=0.0, le=1.0, description="cosine similarity at or above which a new image duplicates a historical one"
    )
    coverage_level: Literal["icd10_code", "icd10_block"] = Field(
        "icd10_code", description="ICD-10 granularity of the cumulative coverage curves"
    )
    stratum_level: Literal["icd10_chapter", "icd10_block"] = Field(
        "icd10_chapter", description="ICD-10 level of the per-year stratified novelty figure"
    )
    orphan_level: Literal["icd10_code", "icd10_block"] = Field(
        "icd10_code", description="ICD-10 granularity of orphan detection"
    )
    orphan_window_years: int = Field(1, ge=1, le=50, description="width in years of one collection window")
    min_block_images: int = Field(
        5, ge=1, description="blocks with fewer scored images are left out of novelty vs prevalence"
    )
    max_table_rows: int = Field(40, ge=1, le=10_000, description="rows of the orphan table shown in the book")
