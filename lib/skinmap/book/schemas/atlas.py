"""Parameters of chapter 09-atlas (retrieval benchmark, example queries, cohort assessment; methods.md section 9)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from skinmap.analysis.frechet import Covariance
from skinmap.analysis.knn import SearchConfig, SearchMethod
from skinmap.analysis.retrieval import RetrievalConfig
from skinmap.atlas.assess import AssessConfig
from skinmap.book.schemas import ChapterParams, knob_field

DEPENDS_ON: tuple[str, ...] = ("data", "embedding", "holes")
RENAMED_KEYS: dict[str, str] = {
    "k": "n_neighbors", "gallery_k": "gallery_n_neighbors", "assess_bootstrap_b": "n_bootstrap",
}


class Params(ChapterParams):
    n_neighbors: int = knob_field(
        AssessConfig, "n_neighbors",
        description="cutoff k of the retrieval table (precision/recall/AP at k); neighbours of the assessed cohort's novelty")
    max_neighbors: int = knob_field(RetrievalConfig, "max_neighbors")
    held_out_datasets: list[str] = Field(
        ["SynPhone-Brazil", "SynPeds-Africa"],
        description="datasets whose images query the atlas (paper: DDI, PAD-UFES-20)",
    )
    match_on: Literal["icd10_code", "icd10_block", "icd10_chapter", "diagnosis"] = Field(
        "icd10_code", description="label that makes a retrieved case a match (harmonised ICD-10 compares across datasets)"
    )
    example_queries: int = Field(3, ge=0, le=20, description="example queries shown with their galleries")
    gallery_n_neighbors: int = Field(5, ge=1, le=20, description="neighbours shown per example query")
    assess_dataset: str = Field(
        "SynPeds-Africa", description="dataset assessed as if it were a new cohort (left out of the atlas); '' to skip"
    )
    n_bootstrap: int = knob_field(AssessConfig, "n_bootstrap",
                                  description="bootstrap replicates: retrieval intervals (over query groups) and "
                                              "pseudo-cohorts of the assessed cohort's novelty null")
    ci: float = knob_field(RetrievalConfig, "ci")
    near_duplicate_similarity: float = knob_field(AssessConfig, "near_duplicate_similarity")
    duplicate_share: float = knob_field(AssessConfig, "duplicate_share")
    fd_covariance: Covariance = knob_field(AssessConfig, "fd_covariance")
    search_method: SearchMethod = knob_field(
        SearchConfig, "search_method",
        description="k-NN engine of the retrieval benchmark: 'exact' search of each pool, or 'ivf' (one approximate "
                    "index over all rows, hits filtered by group and pool; paper scale)")
    ivf_nlist: int = knob_field(SearchConfig, "ivf_nlist")
    ivf_nprobe: int = knob_field(SearchConfig, "ivf_nprobe")
    ivf_train_size: int = knob_field(SearchConfig, "ivf_train_size")
    ivf_recall_queries: int = Field(
        1000, ge=1, le=100_000,
        description="query rows whose approximate whole-atlas neighbours are checked against an exact search (ivf only)")
    seed: int = Field(0, ge=0, description="seed of example picks, the bootstraps and the IVF training sample")

    @model_validator(mode="after")
    def _cutoff_within_curves(self):
        if self.n_neighbors > self.max_neighbors:
            raise ValueError(f"n_neighbors ({self.n_neighbors}) must be <= max_neighbors ({self.max_neighbors})")
        return self
