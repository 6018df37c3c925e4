"""Every declared parameter range of every chapter schema is enforced, and is the right range.

The first test is generated from the declarations: for every numeric bound (``ge``/``gt``/``le``/
``lt`` in a field's pydantic metadata), every minimum length and every ``Literal`` choice set, a
value just outside is fed through ``load_params`` and must be refused with a message naming the
chapter and the key. The second checks the declarations against an independent table of what the
quantities mean (a confidence level lies inside (0, 1), a cosine similarity is at most 1, ...): a
schema widened to accept ``ci = 1.0`` or ``alpha = 0`` fails here even though it validates.
"""

from __future__ import annotations

import math
import pkgutil
import re
import types
import typing
from pathlib import Path

import annotated_types as at
import pytest

import skinmap.book.schemas as schemas
from skinmap.book.params import ParamsError, load_params
from skinmap.book.schemas import load_schema_module

ROOT = Path(__file__).resolve().parents[2]
KEYS = sorted(m.name for m in pkgutil.iter_modules(schemas.__path__))


def _fields():
    for key in KEYS:
        params = getattr(load_schema_module(key), "Params", None)
        for name, field in (params.model_fields.items() if params is not None else ()):
            yield key, name, field


def _is_int(annotation) -> bool:
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    return all(a is int for a in args)


def _outside(field) -> list[tuple[str, object]]:
    """(description, value) pairs just outside each declared limit of ``field``."""
    integer = _is_int(field.annotation)
    cases = []
    for m in field.metadata:
        if isinstance(m, at.Ge):
            cases.append((f"ge={m.ge}", m.ge - 1 if integer else math.nextafter(m.ge, -math.inf)))
        elif isinstance(m, at.Gt):
            cases.append((f"gt={m.gt}", m.gt))
        elif isinstance(m, at.Le):
            cases.append((f"le={m.le}", m.le + 1 if integer else math.nextafter(m.le, math.inf)))
        elif isinstance(m, at.Lt):
            cases.append((f"lt={m.lt}", m.lt))
        elif isinstance(m, at.MinLen):
            cases.append((f"min_length={m.min_length}", []))
    candidates = [field.annotation, *typing.get_args(field.annotation)]
    choices = [a for a in candidates if typing.get_origin(a) is typing.Literal]
    for literal in choices:
        cases.append((f"choices={typing.get_args(literal)}", "__not_one_of_the_choices__"))
    return cases


CASES = [(key, name, what, value) for key, name, field in _fields() for what, value in _outside(field)]


def test_cases_were_generated():
    assert len(CASES) > 100 and len({c[0] for c in CASES}) >= 8


@pytest.mark.parametrize(("key", "name", "what", "value"), CASES, ids=[f"{c[0]}.{c[1]}:{c[2]}" for c in CASES])
def test_every_declared_limit_is_enforced(key, name, what, value):
    with pytest.raises(ParamsError) as info:
        load_params(ROOT, "demo", key, overrides={name: value})
    assert f"chapter '{key}'" in str(info.value) and f"parameter '{name}'" in str(info.value)


def _limits(field) -> dict[str, float]:
    out = {}
    for m in field.metadata:
        for kind in ("ge", "gt", "le", "lt"):
            if hasattr(m, kind) and isinstance(getattr(m, kind), (int, float)):
                out[kind] = getattr(m, kind)
    return out


def _lower_above(lim, value: float) -> bool:  # every accepted x satisfies x > value
    return lim.get("gt", -math.inf) >= value or lim.get("ge", -math.inf) > value


def _lower_at_least(lim, value: float) -> bool:  # every accepted x satisfies x >= value
    return lim.get("gt", -math.inf) >= value or lim.get("ge", -math.inf) >= value


def _upper_below(lim, value: float) -> bool:  # x < value
    return lim.get("lt", math.inf) <= value or lim.get("le", math.inf) < value


def _upper_at_most(lim, value: float) -> bool:  # x <= value
    return lim.get("lt", math.inf) <= value or lim.get("le", math.inf) <= value


# What the quantities mean, written independently of the schemas: name pattern -> (rule, check).
SEMANTICS = [
    (r"^(ci|.*_ci|interval_level)$", "a confidence level lies inside (0, 1)",
     lambda lim: _lower_above(lim, 0) and _upper_below(lim, 1)),
    (r"similarity|threshold|candidate_floor", "a cosine similarity is at most 1",
     lambda lim: _upper_at_most(lim, 1)),
    (r"_gate$|ratio_floor", "a correlation lies in [-1, 1]",
     lambda lim: _lower_at_least(lim, -1) and _upper_at_most(lim, 1)),
    (r"^alpha$|_lr$|_tau$|_z$", "a rate, temperature or concentration is > 0",
     lambda lim: _lower_above(lim, 0)),
    (r"fraction|share|quantile|min_dist|whiten_power|verify_ratio$|min_crop", "a proportion lies in [0, 1]",
     lambda lim: _lower_at_least(lim, 0) and _upper_at_most(lim, 1)),
    (r"_pct$", "a percentile lies in [0, 100]",
     lambda lim: _lower_at_least(lim, 0) and _upper_at_most(lim, 100)),
    (r"n_neighbors$|^n_landmarks$|^n_holes$|threads$|^devices$|batch_size$|n_candidates$",
     "a count of neighbours, items or workers is >= 1", lambda lim: _lower_at_least(lim, 1)),
    (r"^n_bootstrap$|seed$|rounds$|_epochs$|num_workers$", "a count or seed is >= 0",
     lambda lim: _lower_at_least(lim, 0)),
    (r"^between_factor$", "a ratio of scales is > 1", lambda lim: _lower_above(lim, 1)),
]


def test_semantic_table_covers_the_schemas():
    names = {name for _, name, _ in _fields()}
    for pattern, rule, _check in SEMANTICS:
        assert any(re.search(pattern, n) for n in names), f"no parameter matches {pattern!r} ({rule})"


@pytest.mark.parametrize(("key", "name"), [(k, n) for k, n, _ in _fields()])
def test_declared_ranges_mean_what_the_quantity_means(key, name):
    field = load_schema_module(key).Params.model_fields[name]
    origin = typing.get_origin(field.annotation)
    if origin is None:
        scalar = [field.annotation]
    elif origin in (typing.Union, types.UnionType):
        scalar = [a for a in typing.get_args(field.annotation) if a is not type(None)]
    else:  # lists, tuples, dicts: no scalar bound
        return
    if not all(a in (int, float) for a in scalar):
        return
    lim = _limits(field)
    for pattern, rule, check in SEMANTICS:
        if re.search(pattern, name):
            assert check(lim), f"{key}.{name} {lim}: {rule}"
