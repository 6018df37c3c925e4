"""Loading and validating a chapter's parameters.

Parameters come from ``params/<profile>/<key>.yml``, then an optional override file, then
``key=value`` overrides from the command line (values parsed as YAML, so ``k=20`` is an int and
``datasets=[a, b]`` a list). The merged mapping is validated against the chapter's schema before
anything runs; any problem raises :class:`ParamsError` naming the chapter and the key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from skinmap.book.schemas import RUNNER_INJECTED, ChapterParams, load_schema_module

__all__ = ["ParamsError", "load_params", "parse_overrides", "params_file"]


class ParamsError(ValueError):
    """Invalid chapter parameters; the message names the chapter and the offending key."""


def params_file(project_root: Path, profile: str, key: str) -> Path:
    return Path(project_root) / "params" / profile / f"{key}.yml"


def _read_yaml(path: Path, chapter: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ParamsError(f"chapter '{chapter}': {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"chapter '{chapter}': {path} must hold a mapping of key: value")
    return data


def parse_overrides(pairs: Iterable[str], chapter: str = "?") -> dict[str, Any]:
    """``["k=20", "datasets=[a, b]"]`` -> ``{"k": 20, "datasets": ["a", "b"]}``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParamsError(f"chapter '{chapter}': override {pair!r} is not of the form key=value")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key] = raw
    return out


def _explain(exc: ValidationError, chapter: str, given: Mapping[str, Any]) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "?"
        if err["type"] == "extra_forbidden":
            lines.append(f"chapter '{chapter}': unknown parameter '{key}'")
        else:
            value = given.get(str(err["loc"][0]), err.get("input")) if err["loc"] else err.get("input")
            lines.append(f"chapter '{chapter}': parameter '{key}' = {value!r}: {err['msg']}")
    return "\n".join(lines)


def load_params(
    project_root: str | Path,
    profile: str,
    key: str,
    *,
    override_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ChapterParams:
    """Merge and validate the parameters of chapter ``key`` for ``profile``."""
    root = Path(project_root)
    schema = load_schema_module(key)
    path = params_file(root, profile, key)
    if not path.is_file():
        raise ParamsError(f"chapter '{key}': no parameter file {path} for profile '{profile}'")
    merged = _read_yaml(path, key)
    if override_file is not None:
        merged.update(_read_yaml(Path(override_file), key))
    merged.update(overrides or {})
    for name in RUNNER_INJECTED:
        if name in merged:
            raise ParamsError(
                f"chapter '{key}': parameter '{name}' is set by the runner and cannot be given"
            )
    try:
        return schema.Params(**merged)
    except ValidationError as exc:
        raise ParamsError(_explain(exc, key, merged)) from None
