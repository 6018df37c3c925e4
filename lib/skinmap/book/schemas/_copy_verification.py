"""The ``verify_*`` parameters of copy verification on registered pixels, shared by two chapters.

The quality chapter (02) decides copies with them, and the embedding chapter (03) runs the same rule
in its evaluation split before any training. Default, range and description of each field come from
:class:`skinmap.analysis.quality.verification.CopyVerificationConfig`; both chapters' schemas inherit
this one declaration (a contract test keeps the two chapters' values equal in every profile).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from skinmap.analysis.quality.verification import CopyVerificationConfig, knob_bounds
from skinmap.book.schemas import ChapterParams


def _verify_field(name: str) -> Any:
    """The pydantic field of the parameter ``verify_<name>``: default, bounds and description of
    the config's field ``name``."""
    return Field(**knob_bounds(CopyVerificationConfig, name))


class CopyVerificationParams(ChapterParams):
    """A chapter schema's ``verify_*`` knobs (:class:`CopyVerificationConfig`), checked jointly."""

    verify_n_candidates: int = _verify_field("n_candidates")
    verify_candidate_floor: float = _verify_field("candidate_floor")
    verify_size: int = _verify_field("size")
    verify_min_crop: float = _verify_field("min_crop")
    verify_crop_step: float = _verify_field("crop_step")
    verify_sigma: float = _verify_field("sigma")
    verify_subtract_mean: bool = _verify_field("subtract_mean")
    verify_refine: bool = _verify_field("refine")
    verify_refine_gate: float = _verify_field("refine_gate")
    verify_coarse_factor: int = _verify_field("coarse_factor")
    verify_blocks: int = _verify_field("blocks")
    verify_ratio_floor: float = _verify_field("ratio_floor")
    verify_ratio: float = _verify_field("ratio")
    verify_all_right_angles: bool = _verify_field("all_right_angles")
    verify_max_tilt: float = _verify_field("max_tilt")
    verify_tilt_step: float = _verify_field("tilt_step")
    verify_keep_aspect: bool = _verify_field("keep_aspect")
    verify_rotation_rank: int = _verify_field("rotation_rank")
    verify_threads: int = _verify_field("threads")

    @model_validator(mode="after")
    def _check_verification(self) -> "CopyVerificationParams":
        CopyVerificationConfig.from_params(self.model_dump())  # the verify_* knobs' joint constraints, named
        return self
