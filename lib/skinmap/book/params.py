"""Loading and validating a chapter's parameters.

Parameters come from ``params/<profile>/<key>.yml``, then an optional override file, then
``key=value`` overrides from the command line (values parsed as YAML, so ``k=20`` is an int and
``datasets=[a, b]`` a list). The merged mapping is validated against the chapter's schema before
anything runs; any problem raises :class:`ParamsError` naming the chapter and the key.

Types are strict: ``true`` is not the integer 1, ``"20"`` is not a number, ``1`` is not a boolean;
an integer is a valid float (YAML writes ``1`` for ``1.0``). A schema module may declare
``RENAMED_KEYS = {"old": "new"}``: an old key still works, with a deprecation warning naming the
chapter and both keys; giving both in one source is an error.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from skinmap.book.schemas import RUNNER_INJECTED, ChapterParams, load_schema_module

__all__ = ["ParamsError", "load_params", "parse_overrides", "params_file", "validate_profile"]


class ParamsError(ValueError):
    """Invalid chapter parameters; the message names the chapter and the offending key."""


_PROFILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def validate_profile(profile: str) -> str:
    """``profile`` when it is a plain name (a folder of ``params/``), else :class:`ParamsError`.

    A path such as ``../params/demo`` would make the run directory ``runs/../params/demo``.
    """
    if not isinstance(profile, str) or not _PROFILE.match(profile):
        raise ParamsError(
            f"profile {profile!r} is not a profile name: use letters, digits, '-' and '_' "
            "(the name of a folder of params/, e.g. demo, mini or full)"
        )
    return profile


def params_file(project_root: Path, profile: str, key: str) -> Path:
    return Path(project_root) / "params" / validate_profile(profile) / f"{key}.yml"


def _read_yaml(path: Path, chapter: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ParamsError(f"chapter '{chapter}': cannot read parameter file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ParamsError(
            f"chapter '{chapter}': parameter file {path} is not UTF-8 text "
            f"(byte {exc.object[exc.start]:#04x} at offset {exc.start}); save it as UTF-8"
        ) from None
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


def _apply_renames(values: dict[str, Any], renamed: Mapping[str, str], chapter: str, source: str) -> dict[str, Any]:
    """Map deprecated keys of one source (a file, the overrides) to their new names."""
    out = dict(values)
    for old, new in renamed.items():
        if old not in out:
            continue
        if new in out:
            raise ParamsError(
                f"chapter '{chapter}': parameters '{old}' (deprecated) and '{new}' are both given in "
                f"{source}; keep only '{new}'"
            )
        warnings.warn(f"chapter '{chapter}': parameter '{old}' is deprecated; use '{new}'", FutureWarning, stacklevel=3)
        out[new] = out.pop(old)
    return out


def _validate(schema, merged: dict[str, Any], chapter: str) -> ChapterParams:
    """Validate strictly (through JSON: no bool-as-int, no numeric strings, ints valid as floats)."""
    try:
        text = json.dumps(merged, default=str, allow_nan=True)
        return schema.Params.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise ParamsError(_explain(exc, chapter, merged)) from None


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
    renamed = getattr(schema, "RENAMED_KEYS", {})
    path = params_file(root, profile, key)
    if not path.is_file():
        raise ParamsError(f"chapter '{key}': no parameter file {path} for profile '{profile}'")
    merged = _apply_renames(_read_yaml(path, key), renamed, key, os.fspath(path))
    if override_file is not None:
        merged.update(_apply_renames(_read_yaml(Path(override_file), key), renamed, key, os.fspath(override_file)))
    merged.update(_apply_renames(dict(overrides or {}), renamed, key, "the overrides"))
    for name in RUNNER_INJECTED:
        if name in merged:
            raise ParamsError(
                f"chapter '{key}': parameter '{name}' is set by the runner and cannot be given"
            )
    return _validate(schema, merged, key)
