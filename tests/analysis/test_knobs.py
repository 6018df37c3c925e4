"""Knob bundles: every declared bound of a library config rejects the value just outside it, and the
chapter schemas carry exactly the config's bounds (ranges are declared once, ``skinmap.config``)."""

from __future__ import annotations

import dataclasses
import importlib
import math
import typing

import pytest

from skinmap.analysis.novelty import NoveltyConfig
from skinmap.analysis.probes import ProbeConfig
from skinmap.analysis.similarity import SimilarityConfig, SizeFairConfig
from skinmap.analysis.topology.holes import BoundaryConfig
from skinmap.analysis.topology.search import HoleSearchConfig
from skinmap.config import check_choice, check_range, knob_bounds, with_knobs

CONFIGS = [NoveltyConfig, SimilarityConfig, SizeFairConfig, HoleSearchConfig, BoundaryConfig, ProbeConfig]

# chapter schema -> {schema field: (config, config knob)} for every field derived from a config
DERIVED = {
    "novelty": {n: (NoveltyConfig, n) for n in ("n_neighbors", "n_bootstrap", "ci", "seed", "duplicate_similarity")},
    "similarity": {
        **{n: (SimilarityConfig, n) for n in ("pca_components", "min_images", "n_bootstrap", "ci", "seed")},
        "size_fair_components": (SizeFairConfig, "n_components"), "size_fair_n_sizes": (SizeFairConfig, "n_sizes"),
        "size_fair_min_size_fraction": (SizeFairConfig, "min_size_fraction"),
        "size_fair_n_draws": (SizeFairConfig, "n_draws"), "subsample_fraction": (SizeFairConfig, "subsample_fraction"),
        "n_subsamples": (SizeFairConfig, "n_subsamples"),
    },
    "holes": {
        **{n: (HoleSearchConfig, n) for n in ("n_landmarks", "graph_n_neighbors", "n_eigenvectors", "between_factor",
                                              "max_rips_points", "seed")},
        "boundary_n_neighbors": (BoundaryConfig, "boundary_n_neighbors"),
        "alpha": (BoundaryConfig, "alpha"),
    },
    "imputation": {"cv_folds": (ProbeConfig, "cv_folds"), "max_iter": (ProbeConfig, "max_iter"),
                   "max_probe_dims": (ProbeConfig, "max_dims")},
}


def _outside(op: str, bound: float, is_int: bool) -> float:
    """The nearest value that breaks the bound."""
    if op == "gt":
        return bound
    if op == "lt":
        return bound
    step = 1 if is_int else None
    if op == "ge":
        return bound - step if is_int else math.nextafter(bound, -math.inf)
    return bound + step if is_int else math.nextafter(bound, math.inf)


def _inside(op: str, bound: float, is_int: bool) -> float:
    """The nearest value that keeps the bound (the bound itself when inclusive)."""
    if op in ("ge", "le"):
        return bound
    if is_int:
        return bound + 1 if op == "gt" else bound - 1
    return math.nextafter(bound, math.inf if op == "gt" else -math.inf)


def _bounds():
    for cls in CONFIGS:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            is_int = int in (typing.get_args(hints[f.name]) or (hints[f.name],))
            for op, bound in knob_bounds(cls, f.name).items():
                yield pytest.param(cls, f.name, op, bound, is_int, id=f"{cls.__name__}.{f.name}.{op}")


@pytest.mark.parametrize("cls, name, op, bound, is_int", list(_bounds()))
def test_config_rejects_just_outside_every_bound(cls, name, op, bound, is_int):
    with pytest.raises(ValueError, match=name):
        cls(**{name: _outside(op, bound, is_int)})
    assert getattr(cls(**{name: _inside(op, bound, is_int)}), name) == _inside(op, bound, is_int)


@pytest.mark.parametrize("chapter", sorted(DERIVED))
def test_schema_bounds_are_the_config_bounds(chapter):
    # The schema's rejection of each bound is tested in tests/book/test_schema_ranges.py; here: the
    # schema's bounds are exactly the library config's, so a function and a chapter agree.
    params = importlib.import_module(f"skinmap.book.schemas.{chapter}").Params
    for field_name, (cls, knob_name) in DERIVED[chapter].items():
        declared = {op: getattr(m, op) for m in params.model_fields[field_name].metadata
                    for op in ("ge", "gt", "le", "lt") if hasattr(m, op)}
        assert declared == knob_bounds(cls, knob_name), (chapter, field_name)


def test_choices_come_from_the_literal_type():
    with pytest.raises(ValueError, match="on_small_history must be one of 'nan', 'error'"):
        NoveltyConfig(on_small_history="skip")
    with pytest.raises(ValueError, match="resistance_method"):
        HoleSearchConfig(resistance_method="sparse")
    with pytest.raises(ValueError, match="colour must be one of 'a', 'b'"):
        check_choice("colour", "c", typing.Literal["a", "b"])


def test_check_range_and_with_knobs():
    check_range("x", None, ge=1)  # an optional knob left unset
    with pytest.raises(ValueError, match="x must be <= 2, got 3"):
        check_range("x", 3, ge=1, le=2)
    base = NoveltyConfig(n_neighbors=4)
    assert with_knobs(NoveltyConfig, base, {"seed": 7}) == NoveltyConfig(n_neighbors=4, seed=7)
    assert with_knobs(NoveltyConfig, None, None) == NoveltyConfig()
    with pytest.raises(TypeError):
        with_knobs(NoveltyConfig, base, {"k": 3})  # an unknown (old) name is not silently ignored
    with pytest.raises(TypeError):
        with_knobs(NoveltyConfig, SimilarityConfig(), None)
