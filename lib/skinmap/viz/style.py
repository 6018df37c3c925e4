"""One look for every static figure, its audit, and export of a chapter's key figures.

``set_style()`` sets matplotlib/seaborn defaults so that figures read well in the book without
per-figure tuning:

- text >= :data:`MIN_FONT_PT` (9 pt) once the figure is scaled to the book's content column
  (:data:`RENDERED_WIDTH_IN`; base sizes 11-12 pt keep that true for figures up to ~10 in wide);
- the colour-blind-safe categorical palette of :mod:`skinmap.viz.palette` as the colour cycle and
  seaborn palette (colour first, then marker shape or hatch beyond 8 categories: see that module);
- no automatic layout engine (a tight layout on every draw squashes small heatmaps with long labels);
  the inline display and ``save_figure`` crop to the tight bounding box, and the audit reports
  overlapping titles and squashed panels instead;
- in a notebook, an audit of every displayed figure (:func:`skinmap.viz.audit.audit_figure`):
  violations are collected in :func:`audit_records` and, when the environment variable
  ``SKINMAP_FIGURE_AUDIT`` names a file, appended to it as JSON lines (the runner points it at the
  run's log folder so the build log lists every figure that breaks the rules).

``save_figure`` writes ``<figures_dir>/<chapter>-<name>.png`` and ``.svg`` atomically (the build
points ``figures_dir`` at ``figures/<profile>/``) so figures can be reused in papers and slides.
The figure is left open so the notebook still displays it inline.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import matplotlib
import matplotlib.font_manager
import numpy as np

from skinmap.io import atomic_path
from skinmap.viz.audit import MIN_FONT_PT, RENDERED_WIDTH_IN, audit_figure
from skinmap.viz.palette import CATEGORICAL

__all__ = ["set_style", "save_figure", "status_figure", "legend_outside", "audit_figure", "audit_records", "PALETTE",
           "MIN_FONT_PT", "RENDERED_WIDTH_IN", "AUDIT_ENV"]

#: the categorical palette (a list of hex colours; seaborn and matplotlib accept it wherever a palette goes)
PALETTE = list(CATEGORICAL)
#: environment variable naming a JSON-lines file that receives the audit of every displayed figure
AUDIT_ENV = "SKINMAP_FIGURE_AUDIT"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_LABEL = re.compile(r"^#\|\s*label:\s*(\S+)", re.MULTILINE)
_RECORDS: list[dict] = []

_RC = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 12,
    "axes.titlesize": 12.5,
    "axes.titleweight": "bold",
    "axes.labelsize": 12,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "legend.fontsize": 11,
    "legend.title_fontsize": 11.5,
    "legend.frameon": False,
    "legend.loc": "best",
    "figure.titlesize": 13,
    "figure.titleweight": "bold",
    "svg.fonttype": "none",  # keep text as text in SVG exports
}


def set_style(*, audit: bool = True) -> None:
    """Apply the book's style (call once at the top of a chapter).

    Parameters
    ----------
    audit : bool
        In an IPython kernel, audit every displayed figure (see the module docstring).
    """
    import seaborn as sns
    from cycler import cycler

    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    matplotlib.rcParams.update(_RC)
    matplotlib.rcParams["axes.prop_cycle"] = cycler(color=PALETTE)
    # a layout that cannot fit is reported by the audit (overlaps, small text), not as a page warning
    warnings.filterwarnings("ignore", message="Tight layout not applied", category=UserWarning)
    warnings.filterwarnings("ignore", message="This figure includes Axes that are not compatible with tight_layout",
                            category=UserWarning)
    if audit:
        _install_display_audit()


def legend_outside(ax, *, where: str = "auto", **kwargs):
    """Put ``ax``'s legend outside its data area.

    ``where="right"``: beside the axes, top-aligned, in as many columns as its height needs;
    ``"below"``: under the axes, in as many columns as its width allows; ``"auto"``: right when one
    column fits the axes' height, else below. Extra keyword arguments go to ``ax.legend``.
    """
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    fig = ax.figure
    pos = ax.get_position()
    w_in, h_in = pos.width * fig.get_figwidth(), pos.height * fig.get_figheight()
    size = matplotlib.font_manager.FontProperties(size=kwargs.get("fontsize", matplotlib.rcParams["legend.fontsize"]))
    pt = size.get_size_in_points()
    rows_fit = max(1, int(h_in * 72 / (pt * 1.75)))
    entry_in = (max(len(str(lab)) for lab in labels) * 0.6 * pt + 2.5 * pt) / 72
    if where == "auto":
        where = "right" if len(handles) <= rows_fit else "below"
    if where == "right":
        kw = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0.0,
              "ncol": int(np.ceil(len(handles) / rows_fit))}
    elif where == "below":
        has_ticks = ax.axison and len(ax.get_xticks()) > 0
        drop_in = (0.4 if has_ticks else 0.05) + (0.3 if ax.axison and ax.get_xlabel() else 0.0)
        kw = {"loc": "upper center", "bbox_to_anchor": (0.5, -drop_in / max(h_in, 1e-6)),
              "borderaxespad": 0.0, "ncol": int(max(1, min(len(handles), w_in // entry_in)))}
    else:
        raise ValueError(f"where must be 'auto', 'right' or 'below', got {where!r}")
    kw.update(kwargs)
    return ax.legend(handles, labels, **kw)


def audit_records() -> list[dict]:
    """Audit results of the figures displayed so far in this kernel: one dict per violation with
    ``cell`` (the cell's ``#| label:`` or its execution count), ``figure`` (title) and ``message``."""
    return list(_RECORDS)


def _cell_name(ip) -> str:
    try:
        source = ip.history_manager.input_hist_raw[-1]
    except (AttributeError, IndexError):
        source = ""
    m = _LABEL.search(source or "")
    return m.group(1) if m else f"cell {getattr(ip, 'execution_count', '?')}"


def _figure_name(fig) -> str:
    if fig._suptitle is not None and fig._suptitle.get_text():
        return fig._suptitle.get_text()
    for ax in fig.axes:
        if ax.get_title():
            return ax.get_title()
    return f"figure {fig.number}" if getattr(fig, "number", None) else "figure"


def _record(fig) -> None:
    from IPython import get_ipython

    ip = get_ipython()
    cell = _cell_name(ip) if ip is not None else "?"
    try:
        problems = audit_figure(fig)
    except Exception as exc:  # the audit must never break a chapter
        problems = [f"audit failed: {type(exc).__name__}: {exc}"]
    rows = [{"cell": cell, "figure": _figure_name(fig), "message": p} for p in problems]
    _RECORDS.extend(rows)
    target = os.environ.get(AUDIT_ENV)
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"cell": cell, "figure": _figure_name(fig), "violations": problems}) + "\n")


def _install_display_audit() -> None:
    """Wrap the notebook's figure formatter so each displayed figure is audited once."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is None or not hasattr(ip, "display_formatter"):
        return
    try:
        backend = str(matplotlib.rcParams._get("backend")).lower()  # without triggering backend resolution
    except AttributeError:
        backend = str(matplotlib.get_backend()).lower()
    if "inline" in backend:
        try:
            import matplotlib_inline.backend_inline  # noqa: F401  (registers the inline formatters now)
        except ImportError:
            return
    from matplotlib.figure import Figure

    for mime in ("image/png", "image/svg+xml", "image/jpeg"):
        fmt = ip.display_formatter.formatters.get(mime)
        if fmt is None:
            continue
        try:
            inner = fmt.lookup_by_type(Figure)
        except KeyError:
            continue
        if getattr(inner, "_skinmap_audited", False):
            return

        def audited(fig, *args, _inner=inner, **kwargs):
            _record(fig)
            return _inner(fig, *args, **kwargs)

        audited._skinmap_audited = True
        fmt.for_type(Figure, audited)
        return


def status_figure(why: str, *, status: str = "Not computed in this run"):
    """A text-only figure shown in place of a labelled figure a run cannot draw, saying why.

    The figure counterpart of :func:`skinmap.viz.tables.status_table`: a cell keeps its
    ``#| label: fig-...`` and caption in every run, so it always shows a figure and the book's
    figure numbers do not depend on the data a run holds. Not exported (nothing to keep).

    Parameters
    ----------
    why : str
        The reason, for the reader, in plain text.
    status : str
        The first line, in bold.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if not str(why).strip() or not str(status).strip():
        raise ValueError("a status figure needs a status and a reason")
    fig, ax = plt.subplots(figsize=(6.0, 1.4))
    ax.text(0.5, 0.62, str(status), ha="center", va="center", fontweight="bold", transform=ax.transAxes)
    ax.text(0.5, 0.3, str(why), ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.axis("off")
    return fig


def save_figure(fig, figures_dir: str | os.PathLike | None, chapter: str, name: str) -> list[Path]:
    """Export ``fig`` as PNG and SVG named ``<chapter>-<name>`` under ``figures_dir``.

    ``figures_dir=None`` exports nothing (interactive use). Names are lower-case slugs so that
    exported files are stable across runs.
    """
    if figures_dir is None:
        return []
    for part, value in (("chapter", chapter), ("name", name)):
        if not _NAME.match(value):
            raise ValueError(f"figure {part} {value!r} must be a lower-case slug ([a-z0-9_-])")
    out = []
    for ext in ("png", "svg"):
        path = Path(figures_dir) / f"{chapter}-{name}.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext)
        out.append(path)
    return out
