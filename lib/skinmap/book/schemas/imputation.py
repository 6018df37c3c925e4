"""Parameters of chapter 04-imputation (linear probes on frozen embeddings; methods.md section 3)."""

from __future__ import annotations

from pydantic import Field

from skinmap.analysis.probes import ProbeConfig
from skinmap.analysis.resampling import CI_BOUNDS
from skinmap.book.schemas import ChapterParams, knob_field

DEPENDS_ON: tuple[str, ...] = ("data", "embedding")
RENAMED_KEYS: dict[str, str] = {"bootstrap_b": "n_bootstrap"}


class Params(ChapterParams):
    attributes: list[str] = Field(
        ["fst", "fst_group", "age", "sex", "body_site", "origin_continent"],
        min_length=1,
        description="catalog columns probed and scored (fst_group = FST in I-II / III-IV / V-VI)",
    )
    continuous: list[str] = Field(["age"], description="attributes fitted with Ridge / scored by R² (others: logistic, macro-F1)")
    impute_fields: list[str] = Field(
        ["fst", "age", "sex", "body_site", "origin_continent"],
        description="fields written to imputed.parquet as <field>_imputed / _prob or _lo,_hi / _is_imputed",
    )
    # the knobs of skinmap.analysis.probes.ProbeConfig
    cv_folds: int = knob_field(ProbeConfig, "cv_folds")
    c_grid: list[float] = knob_field(ProbeConfig, "c_grid", default=[0.01, 0.1, 1.0], min_length=1)
    alpha_grid: list[float] = knob_field(ProbeConfig, "alpha_grid", default=[1.0, 10.0, 100.0, 1000.0], min_length=1)
    max_iter: int = knob_field(ProbeConfig, "max_iter", default=300)
    max_probe_dims: int = knob_field(ProbeConfig, "max_dims", default=256)
    n_bootstrap: int = Field(1000, ge=10, le=100_000, description="bootstrap resamples of the score intervals")
    ci: float = Field(0.95, **CI_BOUNDS, description="central level of the bootstrap intervals")
    min_class_count: int = Field(5, ge=2, description="classes with fewer training rows are not learnt")
    min_eval_rows: int = Field(10, ge=2, description="eval sets with fewer labelled rows are skipped (noted)")
    evaluate_members: bool = Field(True, description="also score a probe on each ensemble member alone")
    interval_level: float = Field(0.9, gt=0.5, lt=1.0, description="coverage of the split-conformal age interval")
    seed: int = Field(0, ge=0, description="seed of splits, bootstrap and baselines")
