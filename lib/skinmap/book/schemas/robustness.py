"""Parameters of chapter 10-robustness (do the conclusions survive another encoder? issue 21, section 3).

The headline measurements are repeated in every member's space, in the fused space and in the fused
space retrained with other seeds. Their knobs are read from the same library configs the chapters use
(novelty, similarity, holes, imputation, atlas), usually at a lighter setting (fewer bootstrap draws,
no null rounds, no intervals of the size-fair FD) so that ten or more spaces stay affordable; the
fusion knobs are the embedding chapter's fields (only the seed changes).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from skinmap.analysis.novelty import NoveltyConfig
from skinmap.analysis.probes import ProbeConfig
from skinmap.analysis.retrieval import RetrievalConfig
from skinmap.analysis.robustness import RobustnessConfig
from skinmap.analysis.similarity import SizeFairConfig
from skinmap.analysis.topology.holes import BoundaryConfig
from skinmap.analysis.topology.search import HoleSearchConfig, LandmarkMethod, ResistanceMethod
from skinmap.book.schemas import ChapterParams, knob_field
from skinmap.book.schemas.embedding import Params as EmbeddingParams

DEPENDS_ON: tuple[str, ...] = ("data", "quality", "embedding")

_FUSION = EmbeddingParams.model_fields


class Params(ChapterParams):
    # --- the fused space retrained with other seeds (the embedding chapter's fusion knobs, same values)
    fusion_seeds: list[int] = Field(
        [1, 2, 3], max_length=20,
        description="seeds of the retrained fused spaces (the embedding chapter's own seed is the reference)")
    reference_seed: int = Field(
        0, ge=0, description="the embedding chapter's seed: a rerun with it must reproduce the exported fused space")
    fusion_out_dim: int = _FUSION["fusion_out_dim"]
    fusion_epochs: int = _FUSION["fusion_epochs"]
    fusion_lr: float = _FUSION["fusion_lr"]
    fusion_batch_size: int = _FUSION["fusion_batch_size"]
    structure_lambda: float = _FUSION["structure_lambda"]
    structure_warmup_steps: int = _FUSION["structure_warmup_steps"]
    structure_tau: float = _FUSION["structure_tau"]
    # --- yearly novelty (eqs. 2-6)
    novelty_n_neighbors: int = knob_field(NoveltyConfig, "n_neighbors")
    novelty_n_bootstrap: int = knob_field(NoveltyConfig, "n_bootstrap")
    # --- uniqueness and closest pair (size-fair FD, eq. 8; no intervals)
    min_images: int = Field(20, ge=2, description="datasets with fewer embedded images are left out")
    size_fair_components: int | None = knob_field(SizeFairConfig, "n_components")
    size_fair_n_sizes: int = knob_field(SizeFairConfig, "n_sizes")
    size_fair_min_size_fraction: float = knob_field(SizeFairConfig, "min_size_fraction")
    size_fair_n_draws: int = knob_field(SizeFairConfig, "n_draws", default=5)
    subsample_fraction: float = knob_field(SizeFairConfig, "subsample_fraction")
    # --- top hole (eqs. 9-18; no null rounds)
    n_landmarks: int = knob_field(HoleSearchConfig, "n_landmarks", default=2000)
    landmark_method: LandmarkMethod = knob_field(HoleSearchConfig, "landmark_method", default="trimmed_farthest")
    landmark_trim_fraction: float = knob_field(HoleSearchConfig, "landmark_trim_fraction")
    landmark_density_n_neighbors: int = knob_field(HoleSearchConfig, "landmark_density_n_neighbors")
    graph_n_neighbors: int = knob_field(HoleSearchConfig, "graph_n_neighbors")
    resistance_method: ResistanceMethod = knob_field(HoleSearchConfig, "resistance_method")
    n_eigenvectors: int = knob_field(HoleSearchConfig, "n_eigenvectors")
    between_factor: float = knob_field(HoleSearchConfig, "between_factor")
    max_rips_points: int = knob_field(HoleSearchConfig, "max_rips_points", default=500)
    n_holes: int = Field(3, ge=1, le=50, description="top holes of each space a reference hole may match")
    boundary_n_neighbors: int = knob_field(BoundaryConfig, "boundary_n_neighbors")
    alpha: float = knob_field(BoundaryConfig, "alpha")
    # --- probes on the test rows of the evaluation split
    attributes: list[str] = Field(["fst", "fst_group", "age", "sex", "body_site", "origin_continent"],
                                  description="attributes probed in every space")
    continuous: list[str] = Field(["age"], description="attributes with a ridge probe (R²); the others: macro F1")
    cv_folds: int = knob_field(ProbeConfig, "cv_folds")
    c_grid: list[float] = Field([0.01, 0.1, 1.0], min_length=1, description="LogisticRegression C values searched")
    alpha_grid: list[float] = Field([1.0, 10.0, 100.0, 1000.0], min_length=1, description="Ridge alpha values searched")
    max_iter: int = knob_field(ProbeConfig, "max_iter", default=300)
    max_probe_dims: int = knob_field(ProbeConfig, "max_dims", default=256)
    min_class_count: int = Field(5, ge=1, description="classes with fewer training rows are dropped")
    min_eval_rows: int = Field(10, ge=1, description="eval sets with fewer rows are skipped")
    # --- retrieval on the held-out datasets
    match_on: Literal["icd10_code", "icd10_block", "icd10_chapter", "diagnosis"] = Field(
        "icd10_code", description="label that makes a retrieved case a match")
    n_neighbors: int = knob_field(RetrievalConfig, "n_neighbors", description="cutoff k of the retrieval precision P@k")
    # --- intervals of the probe scores and P@k (bootstrap over groups)
    n_bootstrap: int = knob_field(RetrievalConfig, "n_bootstrap", default=200,
                                  description="bootstrap replicates of the probe and retrieval intervals")
    ci: float = knob_field(RetrievalConfig, "ci")
    # --- the rules (skinmap.analysis.robustness.RobustnessConfig)
    min_spearman: float = knob_field(RobustnessConfig, "min_spearman")
    min_sign_agreement: float = knob_field(RobustnessConfig, "min_sign_agreement")
    min_kendall_correlation: float = knob_field(RobustnessConfig, "min_kendall_correlation")
    min_hole_jaccard: float = knob_field(RobustnessConfig, "min_hole_jaccard")
    max_score_difference: float = knob_field(RobustnessConfig, "max_score_difference")
    min_share: float = knob_field(RobustnessConfig, "min_share")
    threads: int = Field(1, ge=1, le=256, description="torch and BLAS threads (oversubscribed cores make spinning threads crawl)")
    seed: int = Field(0, ge=0, description="seed of the novelty null, subsample draws, landmarks, probes and bootstraps")
