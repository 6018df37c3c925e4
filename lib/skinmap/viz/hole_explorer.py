"""Interactive hole explorer: a self-contained plotly page that works in the static book.

No server: the page is one HTML fragment holding plotly.js (inlined by default), the map, every
hole's loop and boundary samples as traces, the per-point metadata as JSON, and a few lines of
JavaScript wiring three things:

* a *hole* selector shows that hole's loop (closed polyline over its cycle points) and its
  boundary samples on the 2-D map, and zooms there;
* *dataset*, *FST* and *modality* selectors fade every point that does not match;
* hovering a point shows its metadata and, when thumbnails were embedded, a small image.

Thumbnails are base64 JPEG data-URIs embedded in the page. For the synthetic atlas this is fine;
for real datasets it is opt-in (a chapter parameter), because their images must never be
committed or published — the rendered site is not committed either, so a local build can
switch them on.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["thumbnail_data_uri", "hole_explorer_html", "build_hole_explorer", "standalone_page"]

_FADED = "rgba(200,200,200,0.25)"
_PALETTE = [
    "#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc",
    "#ca9161", "#fbafe4", "#949494", "#ece133", "#56b4e9",
]
_HOLE_COLORS = ["#d62728", "#9467bd", "#2ca02c", "#ff7f0e", "#17becf", "#8c564b"]


def thumbnail_data_uri(path: str | os.PathLike | None, px: int = 48) -> str | None:
    """A ``data:image/jpeg;base64,...`` thumbnail (longest side ``px``), or ``None`` if unreadable."""
    from skinmap.viz.gallery import load_thumbnail
    from PIL import Image

    thumb = load_thumbnail(path, px)
    if thumb is None:
        return None
    buf = io.BytesIO()
    Image.fromarray(thumb).save(buf, format="JPEG", quality=80)  # ~3x smaller than PNG
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _labels(values: pd.Series) -> list[str]:
    return ["NA" if pd.isna(v) else str(v) for v in values]


def hole_explorer_html(
    points: pd.DataFrame,
    holes: Sequence[dict],
    *,
    thumbnails: Sequence[str | None] | None = None,
    filter_columns: Sequence[str] = ("dataset", "fst", "modality"),
    hover_columns: Sequence[str] = ("uid", "dataset", "diagnosis", "fst", "modality", "body_site"),
    color_column: str = "dataset",
    include_plotlyjs: bool | str = True,
    div_id: str = "skinmap-hole-explorer",
    height: int = 620,
    title: str = "Holes on the map",
) -> str:
    """The explorer as an HTML fragment (embed it with ``IPython.display.HTML``).

    ``points``: one row per map point with columns ``x``, ``y`` and the metadata columns named
    in ``filter_columns`` / ``hover_columns`` (missing ones are skipped). ``holes``: dicts with
    ``rank``, ``persistence``, ``cycle`` and ``boundary`` as *positions into points*.
    ``thumbnails``: one data-URI (or ``None``) per point, or ``None`` for no images.
    ``include_plotlyjs``: ``True`` inlines plotly.js (works offline), ``"cdn"`` links it.
    """
    for col in ("x", "y"):
        if col not in points.columns:
            raise KeyError(f"points need column {col!r}")
    n = len(points)
    if thumbnails is not None and len(thumbnails) != n:
        raise ValueError(f"{len(thumbnails)} thumbnails for {n} points")
    filter_columns = [c for c in filter_columns if c in points.columns]
    hover_columns = [c for c in hover_columns if c in points.columns]
    xy = points[["x", "y"]].to_numpy(dtype=float)

    # 1. colours per point, 2. the plotly map, 3. the data the page's script reads,
    # 4. the selectors, 5. the page fragment around the plot.
    colors, legend = _point_colors(points, color_column)
    fig = _map_figure(xy, colors, holes, height=height, title=title)
    # hover columns, then the other filter columns: a fixed order (a set's order would change the
    # page's bytes with the interpreter's string-hash seed)
    meta = {c: _labels(points[c]) for c in dict.fromkeys([*hover_columns, *filter_columns])}
    payload = {
        "n": n,
        "colors": colors,
        "faded": _FADED,
        "meta": meta,
        "hover": hover_columns,
        "filters": filter_columns,
        "thumbs": list(thumbnails) if thumbnails is not None else None,
        "holes": [_hole_summary(h, xy) for h in holes],
    }
    controls = _controls(div_id, holes, {c: sorted(set(meta[c]), key=_natural) for c in filter_columns})
    post = _SCRIPT.replace("__DIV__", div_id).replace("__DATA__", json.dumps(payload))
    plot = fig.to_html(
        full_html=False, include_plotlyjs=False if include_plotlyjs is True else include_plotlyjs,
        div_id=f"{div_id}-plot", config={"displaylogo": False, "responsive": True}, post_script=post,
    )
    if include_plotlyjs is True:
        plot = _inline_plotlyjs() + plot
    return _fragment(div_id, controls, color_column, legend, plot)


def _point_colors(points: pd.DataFrame, color_column: str) -> tuple[list[str], dict[str, str]]:
    """One palette colour per point by ``color_column`` (sorted categories), and the legend."""
    colors = [_PALETTE[0]] * len(points)
    legend: dict[str, str] = {}
    if color_column in points.columns:
        cats = _labels(points[color_column])
        uniq = sorted(set(cats))
        legend = {c: _PALETTE[i % len(_PALETTE)] for i, c in enumerate(uniq)}
        colors = [legend[c] for c in cats]
    return colors, legend


def _map_figure(xy: np.ndarray, colors: list[str], holes: Sequence[dict], *, height: int, title: str):
    """The samples, then per hole its boundary samples and its closed loop (first hole visible)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=xy[:, 0], y=xy[:, 1], mode="markers", name="samples",
            marker={"size": 5, "color": colors, "line": {"width": 0}},
            customdata=np.arange(len(xy)), hoverinfo="none", showlegend=False,
        )
    )
    for i, hole in enumerate(holes):
        cyc = [int(r) for r in hole["cycle"]]
        loop = cyc + cyc[:1]
        color = _HOLE_COLORS[i % len(_HOLE_COLORS)]
        bnd = [int(r) for r in hole.get("boundary", [])]
        fig.add_trace(
            go.Scatter(
                x=xy[bnd, 0], y=xy[bnd, 1], mode="markers", name=f"hole {hole['rank']} boundary",
                marker={"size": 9, "color": "rgba(0,0,0,0)", "line": {"width": 1.5, "color": color}},
                customdata=bnd, hoverinfo="none", visible=(i == 0),
            )
        )
        fig.add_trace(
            go.Scatter(
                x=xy[loop, 0], y=xy[loop, 1], mode="lines+markers", name=f"hole {hole['rank']} loop",
                line={"width": 3, "color": color}, marker={"size": 8, "color": color},
                customdata=loop, hoverinfo="none", visible=(i == 0),
            )
        )
    fig.update_layout(
        height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, title=title,
        xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"},
        plot_bgcolor="white", legend={"orientation": "h", "y": -0.02}, hovermode="closest",
    )
    return fig


def _hole_summary(hole: dict, xy: np.ndarray) -> dict:
    """What the page's script knows of one hole: rank, persistence, sizes, loop coordinates."""
    return {
        "rank": int(hole["rank"]),
        "persistence": float(hole["persistence"]),
        "n_cycle": len(hole["cycle"]),
        "n_boundary": len(hole.get("boundary", [])),
        "x": [float(xy[r, 0]) for r in hole["cycle"]],
        "y": [float(xy[r, 1]) for r in hole["cycle"]],
    }


def _controls(div_id: str, holes: Sequence[dict], options: dict[str, list[str]]) -> list[str]:
    """The hole selector, then one selector per filter column (``options``: its values)."""
    controls = [_select(f"{div_id}-hole", "hole", [
        (str(i), f"#{h['rank']} (persistence {float(h['persistence']):.3g}, {len(h['cycle'])} loop points)")
        for i, h in enumerate(holes)
    ] + [("none", "none")])]
    for col, values in options.items():
        controls.append(_select(f"{div_id}-f-{col}", col, [("__all__", "all")] + [(v, v) for v in values]))
    return controls


def _fragment(div_id: str, controls: list[str], color_column: str, legend: dict[str, str], plot: str) -> str:
    """Selectors above, the legend, the hover panel left of the plot."""
    legend_html = " ".join(
        f'<span style="color:{c}">&#9679;</span>&nbsp;{html.escape(k)}' for k, c in legend.items()
    )
    return (
        f'<div id="{div_id}" class="skinmap-hole-explorer" style="font-family:sans-serif;font-size:13px">'
        f'<div style="display:flex;flex-wrap:wrap;gap:12px;align-items:center">{"".join(controls)}</div>'
        f'<div style="font-size:12px;margin:4px 0">{color_column}: {legend_html}</div>'
        f'<div style="display:flex;gap:10px;align-items:flex-start">'
        f'<div id="{div_id}-panel" style="flex:0 0 170px;border:1px solid #ddd;padding:6px;min-height:120px;'
        f'overflow-wrap:anywhere"><em>Hover a point to see it here.</em></div>'
        # overflow hidden: plotly may draw its SVG wider than the box before its first resize
        f'<div style="flex:1 1 auto;min-width:0;overflow:hidden">{plot}</div></div></div>'
    )


def _inline_plotlyjs() -> str:
    """plotly.js inlined once per page, loaded as a global even where RequireJS is present.

    Jupyter and Quarto pages may define an AMD ``define``; the UMD bundle would then register as
    a module and never set ``window.Plotly``, which the explorer's script needs. ``define`` is
    hidden while the bundle runs and restored afterwards; a second explorer reuses the first.
    """
    from plotly.offline import get_plotlyjs

    return (
        "<script>window.__skinmapDefine = window.define; window.define = undefined;</script>"
        "<script>if (!window.Plotly) {" + get_plotlyjs() + "}</script>"
        "<script>window.define = window.__skinmapDefine;</script>"
    )


def standalone_page(fragment: str, title: str = "SkinMap hole explorer") -> str:
    """Wrap a fragment as a full HTML document (to save next to the chapter's exports)."""
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body>{fragment}</body></html>"
    )


def _natural(value: str):
    return (0, float(value), value) if value.replace(".", "", 1).isdigit() else (1, 0.0, value)


def _select(element_id: str, label: str, options: list[tuple[str, str]]) -> str:
    opts = "".join(f'<option value="{html.escape(v)}">{html.escape(t)}</option>' for v, t in options)
    return (
        f'<label>{html.escape(label)}: <select id="{element_id}" data-role="{html.escape(label)}">'
        f"{opts}</select></label>"
    )


# Runs after plotly has drawn the figure ({plot_id} is plotly's placeholder for the div id).
_SCRIPT = """
(function () {
  var D = __DATA__;
  var gd = document.getElementById('{plot_id}');
  var root = '__DIV__';
  function sel(id) { return document.getElementById(root + '-' + id); }
  function esc(s) { var d = document.createElement('div'); d.textContent = s; return d.innerHTML; }
  function applyFilters() {
    var colors = D.colors.slice();
    D.filters.forEach(function (col) {
      var v = sel('f-' + col).value;
      if (v === '__all__') return;
      var vals = D.meta[col];
      for (var i = 0; i < D.n; i++) { if (vals[i] !== v) colors[i] = D.faded; }
    });
    Plotly.restyle(gd, {'marker.color': [colors]}, [0]);
  }
  function showHole() {
    var v = sel('hole').value, vis = [];
    for (var t = 1; t < gd.data.length; t++) {
      vis.push(v !== 'none' && Math.floor((t - 1) / 2) === parseInt(v, 10));
    }
    var idx = []; for (var t2 = 1; t2 < gd.data.length; t2++) idx.push(t2);
    if (idx.length) Plotly.restyle(gd, {visible: vis}, idx);
  }
  function onHover(ev) {
    var p = ev.points[0], i = p.customdata;
    if (i === undefined || i === null) return;
    var html = '';
    if (D.thumbs && D.thumbs[i]) html += '<img src="' + D.thumbs[i] + '" style="max-width:100%;image-rendering:pixelated"><br>';
    D.hover.forEach(function (c) { html += '<b>' + esc(c) + '</b>: ' + esc(D.meta[c][i]) + '<br>'; });
    if (!D.thumbs) html += '<em>thumbnails not embedded</em>';
    document.getElementById(root + '-panel').innerHTML = html;
  }
  sel('hole').addEventListener('change', showHole);
  D.filters.forEach(function (col) { sel('f-' + col).addEventListener('change', applyFilters); });
  gd.on('plotly_hover', onHover);
})();
"""


def build_hole_explorer(
    points: pd.DataFrame,
    holes: Sequence[dict],
    *,
    max_points: int = 5000,
    thumbnails: bool = False,
    path_column: str = "path",
    thumbnail_px: int = 48,
    seed: int = 0,
    progress: bool = False,
    **kwargs,
) -> str:
    """:func:`hole_explorer_html` for a whole map: subsample, remap holes, encode thumbnails.

    ``holes`` carry ``cycle``/``boundary`` as *rows of points*; every such row is always drawn,
    other rows are a seeded random subset up to ``max_points``. ``thumbnails=True`` reads each
    drawn row's ``path_column`` image (keep it off for real data unless the page stays local).
    """
    from tqdm.auto import tqdm

    rows = _drawn_rows(len(points), holes, max_points, seed)
    pos = {int(r): i for i, r in enumerate(rows)}
    sub = points.iloc[rows].reset_index(drop=True)
    remapped = [
        {**h, "cycle": [pos[int(r)] for r in h["cycle"]],
         "boundary": [pos[int(r)] for r in h.get("boundary", [])]}
        for h in holes
    ]
    thumbs = None
    if thumbnails:
        if path_column not in sub.columns:
            raise KeyError(f"thumbnails need a {path_column!r} column")
        thumbs = [
            thumbnail_data_uri(None if pd.isna(p) else p, thumbnail_px)
            for p in tqdm(sub[path_column], desc="thumbnails", leave=False, disable=not progress)
        ]
    return hole_explorer_html(sub, remapped, thumbnails=thumbs, **kwargs)


def _drawn_rows(n: int, holes: Sequence[dict], max_points: int, seed: int) -> np.ndarray:
    """Sorted rows to draw: every cycle and boundary row, plus a seeded random subset of the rest."""
    keep = set()
    for h in holes:
        keep |= {int(r) for r in h["cycle"]} | {int(r) for r in h.get("boundary", [])}
    rest = np.setdiff1d(np.arange(n), np.fromiter(keep, dtype=np.int64, count=len(keep)))
    budget = max(0, max_points - len(keep))
    if rest.size > budget:
        rest = np.random.default_rng(seed).choice(rest, size=budget, replace=False)
    return np.sort(np.r_[np.fromiter(keep, dtype=np.int64, count=len(keep)), rest])
