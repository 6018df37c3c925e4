"""Quarto's notebook cell conventions, read the way Quarto reads them.

A code cell may start with ``#|`` option lines (YAML): ``label``, ``fig-cap``, ``fig-subcap``,
``tbl-cap``, ``echo``, ``output``, ``warning``, ``error``, ``include``. Document-wide defaults come from
``execute:`` in ``_quarto.yml``. Tags that Quarto honours (``remove-cell``, ``remove-input``,
``remove-output``) and papermill's ``parameters`` / ``injected-parameters`` cells (plumbing, never
shown) are handled here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["CellOptions", "split_options", "cell_options", "hidden_cell", "visible_outputs",
           "HIDDEN_TAGS", "WIDGET_MIME"]

HIDDEN_TAGS = frozenset({"parameters", "injected-parameters", "remove-cell"})
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_OPTION_LINE = re.compile(r"^#\|\s?(.*)$")


@dataclass(frozen=True)
class CellOptions:
    """The options of one code cell after document defaults are applied."""

    label: str | None = None
    fig_cap: str | None = None
    fig_subcap: tuple[str, ...] = ()
    tbl_cap: str | None = None
    echo: bool = True
    output: bool | str = True
    warning: bool = True
    error: bool = True
    include: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str | None:
        """``"fig"``, ``"tbl"`` or None, from the label's prefix (Quarto's rule)."""
        if self.label and "-" in self.label:
            prefix = self.label.split("-", 1)[0]
            return prefix if prefix in ("fig", "tbl") else None
        return None


def split_options(source: str) -> tuple[dict[str, Any], str]:
    """The ``#|`` options at the top of a code cell and the code without them.

    Parameters
    ----------
    source : str
        The cell's source.

    Returns
    -------
    options : dict
        The parsed YAML (empty when the cell has none).
    code : str
        The remaining source, leading blank lines removed.

    Raises
    ------
    ValueError
        When the option lines are not valid YAML mapping.
    """
    lines = source.splitlines()
    yaml_lines: list[str] = []
    i = 0
    while i < len(lines):
        match = _OPTION_LINE.match(lines[i])
        if not match:
            break
        yaml_lines.append(match.group(1))
        i += 1
    if not yaml_lines:
        return {}, source
    try:
        parsed = yaml.safe_load("\n".join(yaml_lines)) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"cell options are not valid YAML: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ValueError(f"cell options must be a YAML mapping, got {parsed!r}")
    return parsed, "\n".join(lines[i:]).lstrip("\n")


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "no", "0")
    return bool(value)


def cell_options(options: dict[str, Any], defaults: dict[str, Any] | None = None,
                 tags: list[str] | tuple[str, ...] = ()) -> CellOptions:
    """Cell options with ``defaults`` (``execute:`` of ``_quarto.yml``) and Quarto's tags applied."""
    merged = {**(defaults or {}), **options}
    subcap = merged.get("fig-subcap") or ()
    if isinstance(subcap, str):
        subcap = (subcap,)
    output = merged.get("output", True)
    if not (isinstance(output, str) and output == "asis"):
        output = _flag(output, True)
    known = {"label", "fig-cap", "fig-subcap", "tbl-cap", "echo", "output", "warning", "error", "include"}
    echo = _flag(merged.get("echo"), True) and "remove-input" not in tags
    if "remove-output" in tags:
        output = False
    return CellOptions(
        label=merged.get("label"), fig_cap=merged.get("fig-cap"), fig_subcap=tuple(str(s) for s in subcap),
        tbl_cap=merged.get("tbl-cap"), echo=echo, output=output,
        warning=_flag(merged.get("warning"), True), error=_flag(merged.get("error"), True),
        include=_flag(merged.get("include"), True),
        extra={k: v for k, v in options.items() if k not in known},
    )


def hidden_cell(tags: list[str] | tuple[str, ...]) -> bool:
    """Whether a cell is never shown (parameter cells, ``remove-cell``)."""
    return bool(HIDDEN_TAGS.intersection(tags))


def visible_outputs(outputs: list[dict], opts: CellOptions) -> list[dict]:
    """The outputs Quarto would show: none with ``output: false``; no stderr stream with
    ``warning: false``; no widget views (a progress widget needs a live kernel and a CDN).
    Error outputs are always kept: a failure is never hidden."""
    if opts.output is False:
        return []
    shown = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream" and out.get("name") == "stderr" and not opts.warning:
            continue
        if kind in ("display_data", "execute_result") and WIDGET_MIME in (out.get("data") or {}):
            continue
        shown.append(out)
    return shown
