"""Parameters of chapter 06-novelty (yearly novelty, ICD coverage, orphans; methods.md section 5)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from skinmap.analysis.icd_coverage import WINDOW_YEARS_BOUNDS
from skinmap.analysis.knn import SearchMethod
from skinmap.analysis.novelty import NoveltyConfig, OnSmallHistory
from skinmap.book.schemas import ChapterParams, knob_field

DEPENDS_ON: tuple[str, ...] = ("data", "embedding")
RENAMED_KEYS: dict[str, str] = {"k": "n_neighbors", "bootstrap_b": "n_bootstrap"}


class Params(ChapterParams):
    # yearly novelty (eqs. 2-6): the knobs of skinmap.analysis.novelty.NoveltyConfig
    n_neighbors: int = knob_field(NoveltyConfig, "n_neighbors")
    n_bootstrap: int = knob_field(NoveltyConfig, "n_bootstrap")
    ci: float = knob_field(NoveltyConfig, "ci")
    seed: int = knob_field(NoveltyConfig, "seed")
    on_small_history: OnSmallHistory = knob_field(NoveltyConfig, "on_small_history")
    duplicate_similarity: float = knob_field(NoveltyConfig, "duplicate_similarity")
    # the k-NN engine (skinmap.analysis.knn.SearchConfig) and the null's point sample; demo/mini
    # keep the exact defaults, the full profile uses IVF and a sampled null (issue 19)
    search_method: SearchMethod = knob_field(NoveltyConfig, "search_method")
    ivf_nlist: int = knob_field(NoveltyConfig, "ivf_nlist")
    ivf_nprobe: int = knob_field(NoveltyConfig, "ivf_nprobe")
    ivf_train_size: int = knob_field(NoveltyConfig, "ivf_train_size")
    ivf_min_rows: int = knob_field(NoveltyConfig, "ivf_min_rows")
    ivf_pca_components: int = knob_field(NoveltyConfig, "ivf_pca_components")
    ivf_refine_factor: int = knob_field(NoveltyConfig, "ivf_refine_factor")
    null_sample_size: int = knob_field(NoveltyConfig, "null_sample_size")
    error_n_queries: int = Field(
        2000, ge=1, le=1_000_000,
        description="sampled rows per year checked against exact k-NN when the search or null is approximate")
    coverage_level: Literal["icd10_code", "icd10_block"] = Field(
        "icd10_code", description="ICD-10 granularity of the cumulative coverage curves"
    )
    stratum_level: Literal["icd10_chapter", "icd10_block"] = Field(
        "icd10_chapter", description="ICD-10 level of the per-year stratified novelty figure"
    )
    orphan_level: Literal["icd10_code", "icd10_block"] = Field(
        "icd10_code", description="ICD-10 granularity of orphan detection"
    )
    orphan_window_years: int = Field(1, **WINDOW_YEARS_BOUNDS, description="width in years of one collection window")
    min_block_images: int = Field(
        5, ge=1, description="blocks with fewer scored images are left out of novelty vs prevalence"
    )
    max_table_rows: int = Field(40, ge=1, le=10_000, description="rows of the orphan table shown in the book")
