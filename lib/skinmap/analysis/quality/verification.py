"""The copy-verification knobs as one typed, frozen object, and the acceptance rule they set.

Candidate duplicate pairs are the nearest neighbours of each image in an embedding; they are
decided on pixels (:func:`skinmap.analysis.quality.registration.registered_candidates`) and
accepted at a threshold or by the ratio test (:func:`accepted_pairs`). Every knob of those steps
lives in :class:`CopyVerificationConfig`, with its range declared once, here: the chapter's
parameter schema derives its ``verify_<name>`` fields (default, bounds, description) from this
declaration (:func:`knob_bounds`), and the constructor checks the same bounds and the knobs'
joint constraints.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from skinmap.analysis.quality.duplicates import distinct_pairs
from skinmap.config import knob, knob_default, knob_description
from skinmap.config import knob_bounds as declared_bounds

__all__ = ["CopyVerificationConfig", "accepted_pairs", "knob_bounds"]

_BOUNDS = {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}
_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,)}


def _knob(default: Any, description: str, **bounds: float):
    """A config field declared through :func:`skinmap.config.knob` (the one declaration of its range)."""
    return knob(default, description=description, **bounds)


def knob_bounds(config: type, name: str) -> dict[str, Any]:
    """``{"default": ..., "description": ..., "ge": ..., ...}`` of the field ``name`` of a config
    dataclass declared with :func:`skinmap.config.knob`: the keyword arguments of a ``pydantic.Field``
    with the same default, bounds and description."""
    declared = {f.name for f in dataclasses.fields(config)}
    if name not in declared:
        raise KeyError(f"{config.__name__} has no field {name!r}; fields: {sorted(declared)}")
    return {"default": knob_default(config, name), "description": knob_description(config, name),
            **declared_bounds(config, name)}


@dataclass(frozen=True)
class CopyVerificationConfig:
    """How candidate duplicate pairs are found, verified on registered pixels and accepted.

    Parameters
    ----------
    n_candidates
        Candidate pairs per image: its nearest neighbours in the mirror-averaged, unwhitened embedding.
    candidate_floor
        Embedding similarity below which a neighbour is not even a candidate.
    size
        Side (px) ``S`` of the luminance thumbnails registered (crops are refined from ``2 S`` ones).
    min_crop, crop_step
        The crop fractions searched: 1, 1 - step, ... down to ``min_crop``.
    sigma
        Gaussian high-pass scale in thumbnail pixels (0: no filter).
    subtract_mean
        Project the collection's mean thumbnail (a device's vignette) out of every compared frame.
    refine
        Score the best crop hypothesis in the copy's frame (sub-pixel resampling of the source).
    refine_gate
        Coarse crop score a pair needs before it is searched at full size and refined.
    coarse_factor
        Crop hypotheses are first searched on thumbnails reduced by this factor (must divide ``size``).
    blocks
        Score registered frames tile by tile over ``blocks x blocks`` tiles (``size / blocks >= 2``).
    all_right_angles
        Search all 8 right-angle rotations and flips (else the identity and the horizontal mirror).
    max_tilt, tilt_step
        Small tilts searched (degrees, each with and without a mirror); a tilted copy is cropped.
    keep_aspect
        Search crops and tilts in each image's true aspect ratio (a square crop of a 4:3 photograph,
        a tilt of the unsqueezed picture); pairs of two aspect ratios are searched in the squeezed
        square thumbnails too (a copy resized to another aspect ratio). False: the squeezed square
        thumbnails only.
    rotation_rank
        Gate of the costly rotated and tilted crop searches: when >= 1, only a pair in which one
        image is among the other's ``rotation_rank`` nearest images by the rotation-invariant
        thumbnail descriptor (:func:`~skinmap.analysis.quality.registration.rotation_gate`), or (in
        :func:`~skinmap.analysis.quality.registration.registered_candidates`) is one image's nearest
        embedding neighbour, is searched for rotated or tilted *crops*; full frames are compared in
        every right-angle orientation for every pair. The default is the rank at which the descriptor
        proposes candidates (``n_candidates``'s default), not a tuned value. 0: every pair.
    threads
        Torch intra-op threads for the registration (small FFTs: 1 is fastest).
    """

    n_candidates: int = _knob(5, "candidate pairs per image: its nearest neighbours in the mirror-averaged, "
                              "unwhitened embedding, verified on pixels", ge=1, le=100)
    candidate_floor: float = _knob(0.5, "embedding similarity below which a neighbour is not even a candidate",
                                   gt=0, le=1)
    size: int = _knob(64, "side (px) of the luminance thumbnails registered", ge=16, le=256)
    min_crop: float = _knob(0.85, "smallest crop fraction searched (a copy showing 85% of its source's width)",
                            gt=0, le=1)
    crop_step: float = _knob(0.025, "step between the crop fractions searched", gt=0, le=0.5)
    sigma: float = _knob(1.0, "Gaussian high-pass scale (thumbnail px) of the correlation; 0 = no filter", ge=0, le=16)
    subtract_mean: bool = _knob(True, "project the collection's mean thumbnail (e.g. a dermoscope's vignette) out "
                                "of every compared frame")
    refine: bool = _knob(True, "score the best crop hypothesis in the copy's frame (sub-pixel resampling of the source)")
    refine_gate: float = _knob(0.45, "coarse grid-search crop score a pair needs before it is refined (saves time)",
                               ge=-1, le=1)
    coarse_factor: int = _knob(2, "crop hypotheses are first searched on thumbnails reduced by this factor "
                               "(must divide verify_size; 1 = search at full size)", ge=1, le=8)
    blocks: int = _knob(4, "a registered pair is scored tile by tile: the whole-frame correlation capped by the median "
                        "over blocks x blocks tiles (1 = whole frame only); verify_size / verify_blocks must be >= 2",
                        ge=1, le=16)
    ratio_floor: float = _knob(0.65, "registered score from which a pair below the threshold is still accepted when it "
                               "passes the ratio test (verify_ratio); >= the threshold: off", ge=-1, le=1)
    ratio: float = _knob(0.7, "ratio test: a pair below the threshold is accepted when 1 - s <= ratio * (1 - c), c the "
                         "best score of either image with any third image outside its duplicate cluster; 0 = off",
                         ge=0, le=1)
    all_right_angles: bool = _knob(True, "search copies rotated by 90, 180 or 270 degrees and flipped on either axis "
                                   "(8 orientations), not only horizontal mirrors")
    max_tilt: float = _knob(10.0, "largest small tilt (degrees) of a cropped copy searched; 0 = no tilts", ge=0, le=45)
    tilt_step: float = _knob(5.0, "step between the tilts searched (degrees)", gt=0, le=45)
    keep_aspect: bool = _knob(True, "search crops and tilts in each image's true aspect ratio (a square crop of a 4:3 "
                              "photograph); pairs of two aspect ratios are also searched as squeezed square "
                              "thumbnails (a copy resized to another aspect ratio); false = squeezed thumbnails only")
    rotation_rank: int = _knob(5, "rotated and tilted crops are searched only for pairs in which one image is among the "
                               "other's rotation_rank nearest images by the rotation-invariant thumbnail descriptor (the "
                               "rank at which it proposes candidates) or its nearest embedding neighbour; 0 = every pair",
                               ge=0, le=100)
    threads: int = _knob(1, "torch threads for the pair registration (small FFTs: 1 is fastest)", ge=1, le=64)

    def __post_init__(self) -> None:
        problems = self.problems(dataclasses.asdict(self))
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def problems(cls, values: Mapping[str, Any], *, prefix: str = "") -> list[str]:
        """Every declared bound and joint constraint that ``values`` (field name -> value) violate,
        each message naming the fields as ``prefix + name`` (e.g. the parameter ``verify_size``)."""
        out = []
        for f in dataclasses.fields(cls):
            value = values.get(f.name, f.default)
            kinds = _TYPES[f.type if isinstance(f.type, str) else f.type.__name__]
            if isinstance(value, bool) != (kinds == (bool,)) or not isinstance(value, kinds):
                out.append(f"{prefix}{f.name} must be a {f.type}, got {value!r}")
                continue
            for bound, limit in f.metadata["bounds"].items():
                if not _BOUNDS[bound](value, limit):
                    out.append(f"{prefix}{f.name} = {value!r} violates {bound} {limit}")
        if out:
            return out
        size, factor, blocks = (values.get(k, cls.__dataclass_fields__[k].default)
                                for k in ("size", "coarse_factor", "blocks"))
        if size % factor:
            out.append(f"{prefix}coarse_factor {factor} must divide {prefix}size {size}")
        if size // blocks < 2:
            out.append(f"{prefix}blocks {blocks} leaves tiles under 2 px of {prefix}size {size}")
        return out

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, prefix: str = "verify_") -> "CopyVerificationConfig":
        """The config from a chapter's parameters: field ``name`` is the parameter ``prefix + name``
        (missing ones keep their defaults, other keys are ignored). Violations name the parameters."""
        values = {f.name: params[prefix + f.name] for f in dataclasses.fields(cls) if prefix + f.name in params}
        problems = cls.problems(values, prefix=prefix)
        if problems:
            raise ValueError("; ".join(problems))
        return cls(**values)


def accepted_pairs(scored: pd.DataFrame, threshold: float, config: CopyVerificationConfig) -> pd.DataFrame:
    """The verified pairs accepted at ``threshold``: at or above it, or from ``config.ratio_floor``
    up when they stand out from their images' other candidates (the ratio test of
    :func:`skinmap.analysis.quality.duplicates.distinct_pairs`); ``attrs["saturated"]`` counts the
    images with at least ``config.n_candidates`` accepted pairs (their candidate list may be short).
    ``functools.partial(accepted_pairs, scored, config=config)`` is the rule as a function of the
    threshold."""
    return distinct_pairs(scored, threshold, floor=config.ratio_floor, ratio=config.ratio, n_candidates=config.n_candidates)
