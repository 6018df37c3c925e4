"""Typed parameter schemas, one module per chapter.

A chapter ``NN-name.ipynb`` is validated by the module ``skinmap.book.schemas.<name>`` which
defines:

``Params``
    a :class:`ChapterParams` subclass: every knob of the chapter with its type and range.
    Unknown keys are rejected (``extra="forbid"``).
``DEPENDS_ON``
    the chapters whose exported files this chapter reads (their outputs are fingerprinted into
    this chapter's cache key, and the runner executes them first).
``external_inputs(params, project_root)`` (optional)
    paths outside the run directory that the chapter reads (a data root, a user's table); they
    are fingerprinted by content into the cache key.
``RENAMED_KEYS`` (optional)
    ``{old key: new key}`` of renamed parameters; old keys keep working with a deprecation message.

A knob that a library function also takes is declared once, in the library's config dataclass
(:mod:`skinmap.config`); the schema field reads its bounds (and default, description) from there
with :func:`knob_field`, so a chapter and a direct call of the function accept the same values.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from skinmap.config import knob_bounds, knob_default, knob_description

__all__ = ["ChapterParams", "load_schema_module", "knob_field", "RUNNER_INJECTED"]

_UNSET: Any = object()

# Parameters the runner injects into every chapter besides the validated ones.
RUNNER_INJECTED = ("profile", "run_dir", "figures_dir", "project_root")


class ChapterParams(BaseModel):
    """Base class of every chapter's parameter schema: strict, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


def knob_field(config_cls: type, name: str, *, default: Any = _UNSET, description: str | None = None,
               **constraints: Any) -> Any:
    """A pydantic ``Field`` for the knob ``name`` of a library config (:mod:`skinmap.config`).

    Bounds come from the config's declaration; ``default`` (the demo value of the chapter) and
    ``description`` fall back to the config's. ``constraints`` adds non-range rules
    (e.g. ``min_length`` of a list).
    """
    return Field(
        knob_default(config_cls, name) if default is _UNSET else default,
        description=knob_description(config_cls, name) if description is None else description,
        **knob_bounds(config_cls, name),
        **constraints,
    )


def load_schema_module(key: str) -> ModuleType:
    """Import ``skinmap.book.schemas.<key>``; a missing schema is a clear error."""
    try:
        return importlib.import_module(f"{__name__}.{key}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{key}":
            raise LookupError(
                f"chapter '{key}' has no parameter schema: add lib/skinmap/book/schemas/{key}.py"
            ) from exc
        raise


def resolve_path(value: str | Path, project_root: Path) -> Path:
    """Resolve a path given in a params file relative to the project root."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else (project_root / path).resolve()
