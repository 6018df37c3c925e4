"""Parameters of chapter 09-atlas (retrieval benchmark, example queries, cohort assessment; methods.md section 9)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from skinmap.book.schemas import ChapterParams

DEPENDS_ON: tuple[str, ...] = ("data", "embedding", "holes")


class Params(ChapterParams):
    k: int = Field(10, ge=1, le=1000, description="cases retrieved per query (precision/recall/AP at k)")
    held_out_datasets: list[str] = Field(
        ["SynPhone-Brazil", "SynPeds-Africa"],
        description="datasets whose images query the atlas (paper: DDI, PAD-UFES-20)",
    )
    match_on: Literal["icd10_code", "icd10_block", "icd10_chapter", "diagnosis"] = Field(
        "icd10_code", description="label that makes a retrieved case a match (harmonised ICD-10 compares across datasets)"
    )
    example_queries: int = Field(3, ge=0, le=20, description="example queries shown with their galleries")
    gallery_k: int = Field(5, ge=1, le=20, description="neighbours shown per example query")
    assess_dataset: str = Field(
        "SynPeds-Africa", description="dataset assessed as if it were a new cohort (left out of the atlas); '' to skip"
    )
    assess_bootstrap_b: int = Field(200, ge=10, le=100_000, description="bootstrap pseudo-cohorts of the novelty null")
    near_duplicate_similarity: float = Field(0.95, gt=0.0, le=1.0, description="cosine similarity of a near duplicate")
    duplicate_share: float = Field(0.5, gt=0.0, le=1.0, description="share of the cohort that makes a dataset 'nearly duplicated'")
    fd_covariance: Literal["empirical", "ledoit_wolf", "auto"] = Field(
        "auto", description="covariance estimator of the Fréchet distances (auto: Ledoit-Wolf when n <= d)"
    )
    seed: int = Field(0, ge=0, description="seed of example picks and the bootstrap")
