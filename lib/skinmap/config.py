"""Knob bundles: small frozen dataclasses whose ranges are declared once, beside the code using them.

A library function that takes many knobs takes them as one config object (e.g.
:class:`skinmap.analysis.topology.search.HoleSearchConfig`). Each field is declared with
:func:`knob`: its default, its bounds and a one-line description. The config checks itself on
construction (:func:`check_knobs` in ``__post_init__``), so a function and a chapter see the same
error for the same bad value; a chapter's parameter schema (``skinmap.book.schemas``) reads the
bounds back with :func:`knob_bounds` instead of writing them a second time. Allowed values of a
choice are the field's ``Literal`` type, also declared once.

This module imports nothing from the rest of the package, so every layer may use it.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

__all__ = ["knob", "check_knobs", "check_range", "check_choice", "knob_bounds", "knob_default", "knob_description",
           "with_knobs"]

_BOUND_NAMES = ("ge", "gt", "le", "lt")


def knob(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
         lt: float | None = None, description: str = "") -> Any:
    """A dataclass field with a default, inclusive (``ge``/``le``) or strict (``gt``/``lt``) bounds
    and a description. ``None`` values always pass the bounds (an optional knob)."""
    bounds = {k: v for k, v in zip(_BOUND_NAMES, (ge, gt, le, lt)) if v is not None}
    kwargs: dict[str, Any] = {"metadata": {"bounds": bounds, "description": description}}
    if isinstance(default, (list, dict, set)):
        kwargs["default_factory"] = lambda: type(default)(default)
    else:
        kwargs["default"] = default
    return dataclasses.field(**kwargs)


def _field(config_cls: type, name: str) -> dataclasses.Field:
    for f in dataclasses.fields(config_cls):
        if f.name == name:
            return f
    raise KeyError(f"{config_cls.__name__} has no knob {name!r}")


def knob_bounds(config_cls: type, name: str) -> dict[str, float]:
    """The declared bounds of one knob as keyword arguments (``ge``, ``gt``, ``le``, ``lt``)."""
    return dict(_field(config_cls, name).metadata.get("bounds", {}))


def knob_default(config_cls: type, name: str) -> Any:
    """The declared default of one knob."""
    f = _field(config_cls, name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def knob_description(config_cls: type, name: str) -> str:
    """The declared one-line description of one knob."""
    return str(_field(config_cls, name).metadata.get("description", ""))


_OPS = {"ge": (lambda v, b: v >= b, ">="), "gt": (lambda v, b: v > b, ">"),
        "le": (lambda v, b: v <= b, "<="), "lt": (lambda v, b: v < b, "<")}


def check_range(name: str, value: Any, **bounds: float) -> None:
    """Raise ``ValueError`` naming ``name`` if ``value`` breaks a bound (``ge``, ``gt``, ``le``, ``lt``).

    For a single knob of a plain function: declare its bounds once as a module constant, check
    them here and spread the same constant into the schema's ``Field``. ``None`` always passes.
    """
    if value is None:
        return
    for op, bound in bounds.items():
        ok, sign = _OPS[op]
        if not ok(value, bound):
            raise ValueError(f"{name} must be {sign} {bound}, got {value!r}")


def check_choice(name: str, value: Any, choices: Any) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is one of ``choices`` (a ``Literal`` type
    or a sequence)."""
    allowed = typing.get_args(choices) if typing.get_origin(choices) is typing.Literal else tuple(choices)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def check_knobs(config: Any) -> None:
    """Raise ``ValueError`` naming the first knob of ``config`` outside its bounds or choices."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if typing.get_origin(hints.get(f.name)) is typing.Literal:
            check_choice(f.name, value, hints[f.name])
        check_range(f.name, value, **f.metadata.get("bounds", {}))


def with_knobs(config_cls: type, config: Any = None, knobs: dict[str, Any] | None = None) -> Any:
    """``config`` (default: ``config_cls()``) with some knobs replaced, checked again.

    Lets a function take a whole bundle, single knobs as keyword arguments, or both.
    """
    config = config_cls() if config is None else config
    if not isinstance(config, config_cls):
        raise TypeError(f"expected a {config_cls.__name__}, got {type(config).__name__}")
    return dataclasses.replace(config, **knobs) if knobs else config
