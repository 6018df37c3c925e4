"""Interactive hole explorer for teaching: linked persistence diagram, barcode, map and gallery.

A self-contained HTML fragment (plotly.js inlined, no server, no network, no WebGL or WebGPU) that
the static book embeds and that is also saved as a standalone page. Linked views:

* the **persistence diagram** and the **barcode** (inline SVG, every bar focusable): clicking a point
  or a bar, or choosing it in the hole selector, selects that hole; the map zooms to it and draws its
  representative loop (eq. 14) and its boundary samples (eq. 18); the **gallery** lists exactly the
  loop's and the boundary's cases (thumbnails when embedded, metadata always) and the ranked terms
  that border the hole;
* a **filtration slider**: at radius r the map draws every edge between filtration points whose
  degree-corrected resistance (eq. 11) is at most r, so a learner sees a loop form at its birth and
  fill at its death (the filtration runs on the landmark subsample);
* **colour by** any catalog column, **filter** by one value of a column (an empty filter says
  "0 matching points"), **box or lasso selection** on the map downloads the selected ids as CSV;
* **sanity shapes** (circle, two circles, torus) with their known answer in the same viewer.

A loop found in the high-dimensional space is drawn through the 2-D positions of its points; the
page says why it may look like a zigzag there.

Thumbnails are base64 JPEG data-URIs embedded in the page. For the synthetic atlas this is fine;
for real datasets it is opt-in (a chapter parameter), because their images must never be committed
or published.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "ExplorerScene",
    "explorer_scene",
    "filtration_edges",
    "sanity_scenes",
    "thumbnail_data_uri",
    "hole_explorer_html",
    "build_hole_explorer",
    "standalone_page",
]

#: Okabe-Ito (colour-blind safe) then Tol's muted scheme: categories beyond these repeat colours.
_PALETTE = [
    "#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#f0e442", "#000000",
    "#332288", "#88ccee", "#44aa99", "#117733", "#999933", "#ddcc77", "#cc6677", "#882255", "#aa4499",
]
#: Columns never put on the page: coordinates, row numbers, file locations on the build machine, long text.
_HIDDEN_COLUMNS = frozenset({"x", "y", "row", "path", "source_file", "source_row", "caption"})
#: Metadata shown on a gallery card (when present), in this order.
_CARD_COLUMNS = ("dataset", "diagnosis", "icd10_code", "fst", "body_site", "modality", "release_year", "shape")
_NOTE = (
    "The map is a 2-D projection of a high-dimensional space. A hole is found in the full space, so its "
    "loop is drawn through the map positions of its points: it can look like a zigzag, or cross other "
    "data, where the projection folds the space. The filtration edges are drawn the same way."
)


@dataclass(frozen=True)
class ExplorerScene:
    """Everything one view of the explorer shows (all row numbers are positions into ``points``).

    Attributes
    ----------
    name : str
        Shown in the scene selector ("Atlas", "circle", ...).
    points : DataFrame
        One row per drawn point with ``x``, ``y`` and metadata columns (``uid`` for downloads).
    births, deaths : ndarray of shape (n_bars,)
        The H1 persistence diagram (eq. 13).
    holes : list of dict
        The described holes: ``rank``, ``birth``, ``death``, ``persistence``, optional ``p_value``,
        ``cycle`` and ``boundary`` (positions into ``points``) and ``terms`` (``[column, term,
        count]`` rows, most frequent first).
    landmarks : ndarray of shape (m,)
        Positions into ``points`` of the filtration's points.
    edges : ndarray of shape (n_edges, 3)
        ``(i, j, distance)`` with ``i < j`` positions into ``landmarks``, sorted by distance; every
        pair at distance at most ``max_radius`` is listed.
    max_radius : float
        The slider's upper end.
    note : str
        What the reader should see (the known answer of a sanity shape).
    """

    name: str
    points: pd.DataFrame
    births: np.ndarray
    deaths: np.ndarray
    holes: list[dict]
    landmarks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    edges: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    max_radius: float = 0.0
    note: str = ""


def filtration_edges(distance: np.ndarray, *, max_radius: float, max_edges: int) -> tuple[np.ndarray, float]:
    """Pairs of filtration points at distance at most ``max_radius``, capped at ``max_edges``.

    Parameters
    ----------
    distance : ndarray of shape (m, m)
        Symmetric distances between the filtration's points (the corrected resistance, eq. 11).
    max_radius : float
        Largest radius the slider offers.
    max_edges : int
        Most edges the page carries. When more pairs lie within ``max_radius`` the radius is lowered
        to the largest value at which every pair within it is still listed.

    Returns
    -------
    edges : ndarray of shape (n_edges, 3)
        ``(i, j, distance)``, ``i < j``, sorted by distance (ties by ``i``, ``j``).
    radius : float
        The slider's upper end: every pair at distance ``<= radius`` is in ``edges``.
    """
    d = np.asarray(distance, dtype=float)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"distance must be a square matrix, got shape {d.shape}")
    if max_edges < 1:
        raise ValueError(f"max_edges must be >= 1, got {max_edges}")
    i, j = np.triu_indices(d.shape[0], k=1)
    w = d[i, j]
    keep = np.isfinite(w) & (w <= max_radius)
    i, j, w = i[keep], j[keep], w[keep]
    order = np.lexsort((j, i, w))
    i, j, w = i[order], j[order], w[order]
    radius = float(max_radius)
    if w.size > max_edges:
        cut = w[max_edges]  # first distance that does not fit: keep everything strictly below it
        n = int(np.searchsorted(w, cut, side="left"))
        i, j, w = i[:n], j[:n], w[:n]
        radius = float(np.nextafter(cut, -np.inf))
    return np.c_[i, j, w], radius


def _drawn_rows(n: int, must: np.ndarray, max_points: int, seed: int) -> np.ndarray:
    """Sorted rows to draw: every row in ``must``, plus a seeded random subset of the rest."""
    must = np.unique(np.asarray(must, dtype=np.int64))
    rest = np.setdiff1d(np.arange(n), must)
    budget = max(0, max_points - must.size)
    if rest.size > budget:
        rest = np.random.default_rng(seed).choice(rest, size=budget, replace=False)
    return np.sort(np.r_[must, rest])


def explorer_scene(
    name: str,
    points: pd.DataFrame,
    holes: Sequence[Mapping],
    *,
    births: Sequence[float] = (),
    deaths: Sequence[float] = (),
    filtration_rows: Sequence[int] | None = None,
    filtration_distance: np.ndarray | None = None,
    terms: Mapping[int, pd.DataFrame] | None = None,
    max_points: int = 5000,
    max_edges: int = 20_000,
    seed: int = 0,
    note: str = "",
) -> ExplorerScene:
    """A scene from a whole map: subsample the points, remap every row to a drawn position.

    Parameters
    ----------
    name : str
    points : DataFrame of shape (n, ...)
        ``x``, ``y`` and metadata per row of the embedding.
    holes : sequence of mappings
        ``Hole.to_json()`` records (``cycle``/``boundary`` are rows of ``points``).
    births, deaths : sequences of float
        The whole H1 diagram.
    filtration_rows : sequence of int, optional
        Rows of ``points`` the Rips filtration ran on (``HoleSearch.rips_rows``).
    filtration_distance : ndarray of shape (m, m), optional
        Their corrected resistance distances (``HoleSearch.diagram.distance``).
    terms : mapping of hole rank -> DataFrame with ``column``, ``term``, ``count``, optional
    max_points : int
        Points drawn; loop, boundary and filtration rows always, others a seeded random subset.
    max_edges : int
        Filtration edges carried by the page (see :func:`filtration_edges`).
    seed : int
    note : str

    Returns
    -------
    ExplorerScene
    """
    for col in ("x", "y"):
        if col not in points.columns:
            raise KeyError(f"points need column {col!r}")
    births, deaths = np.asarray(births, dtype=float), np.asarray(deaths, dtype=float)
    if births.shape != deaths.shape:
        raise ValueError(f"{births.size} births but {deaths.size} deaths")
    frows = np.asarray(filtration_rows if filtration_rows is not None else [], dtype=np.int64)
    must = [frows] + [np.asarray(list(h["cycle"]) + list(h.get("boundary", [])), dtype=np.int64) for h in holes]
    rows = _drawn_rows(len(points), np.concatenate(must) if must else np.zeros(0, np.int64), max_points, seed)
    pos = pd.Series(np.arange(rows.size), index=rows)
    remapped = []
    for h in holes:
        t = terms.get(int(h["rank"])) if terms else None
        term_rows = [] if t is None else [
            [str(r.column), str(r.term), int(r.count)]
            for r in t[t["term"] != "(missing)"].sort_values("count", ascending=False, kind="stable").itertuples()
        ]
        remapped.append({
            "rank": int(h["rank"]), "birth": float(h["birth"]), "death": float(h["death"]),
            "persistence": float(h["persistence"]),
            "p_value": None if h.get("p_value") is None else float(h["p_value"]),
            "cycle": pos.loc[list(h["cycle"])].tolist(),
            "boundary": pos.loc[list(h.get("boundary", []))].tolist(),
            "terms": term_rows,
        })
    edges, radius = np.zeros((0, 3)), 0.0
    if filtration_distance is not None and frows.size:
        top = max([h["death"] for h in remapped], default=float(np.max(deaths)) if deaths.size else 0.0)
        edges, radius = filtration_edges(filtration_distance, max_radius=1.1 * top, max_edges=max_edges)
    return ExplorerScene(name, points.iloc[rows].reset_index(drop=True), births, deaths, remapped,
                         pos.loc[frows].to_numpy() if frows.size else np.zeros(0, np.int64), edges, radius, note)


def sanity_scenes(config=None, *, n_samples: int = 240, seed: int = 0, boundary_n_neighbors: int = 5) -> list[ExplorerScene]:
    """The circle, two circles and torus, searched with the atlas's hole-search knobs.

    ``config`` is a :class:`~skinmap.analysis.topology.search.HoleSearchConfig` (its landmark
    count is capped at ``n_samples``). Each scene's note states the known answer and what the
    search found.
    """
    import dataclasses

    from skinmap.analysis.topology import holes as th
    from skinmap.analysis.topology.search import HoleSearchConfig, search_holes
    from skinmap.analysis.topology.shapes import DETECTABLE, SHAPES, sanity_shape

    cfg = config or HoleSearchConfig()
    cfg = dataclasses.replace(cfg, n_landmarks=min(cfg.n_landmarks, n_samples), landmark_method="farthest",
                              resistance_method="dense", max_rips_points=min(cfg.max_rips_points or n_samples, n_samples))
    scenes = []
    for name, n_known in SHAPES.items():
        shape = sanity_shape(name, n_samples, seed=seed)
        search = search_holes(shape.points, cfg)
        holes = th.describe_holes(shape.points, search, th.BoundaryConfig(boundary_n_neighbors=boundary_n_neighbors),
                                  n_holes=max(n_known, 1) + 1)
        pts = pd.DataFrame({"x": shape.plane[:, 0], "y": shape.plane[:, 1], "uid": [f"{name}/{i}" for i in range(n_samples)],
                            "shape": name})
        n_seen = DETECTABLE[name]
        gap = holes[n_seen - 1].persistence / max(holes[n_seen].persistence, 1e-12) if len(holes) > n_seen else np.inf
        note = f"Known answer: {n_known} hole{'s' if n_known > 1 else ''}."
        if n_seen < n_known:
            note += (f" From {n_samples} samples only the {n_seen} largest loop stands out; the loop around the thin "
                     "tube is born late and dies early, close to the noise: a reminder that persistence measures size.")
        if np.isfinite(gap):
            note += (f" Here the {n_seen} most persistent bar{'s are' if n_seen > 1 else ' is'} {gap:.1f} times longer "
                     "than the next one.")
        scenes.append(explorer_scene(
            name.replace("_", " "), pts, [h.to_json() for h in holes], births=search.diagram.births,
            deaths=search.diagram.deaths, filtration_rows=search.rips_rows, filtration_distance=search.diagram.distance,
            max_points=n_samples, seed=seed, note=note))
    return scenes


def thumbnail_data_uri(path: str | os.PathLike | None, px: int = 48) -> str | None:
    """A ``data:image/jpeg;base64,...`` thumbnail (longest side ``px``), or ``None`` if unreadable."""
    from PIL import Image

    from skinmap.viz.gallery import load_thumbnail

    thumb = load_thumbnail(path, px)
    if thumb is None:
        return None
    buf = io.BytesIO()
    Image.fromarray(thumb).save(buf, format="JPEG", quality=80)  # ~3x smaller than PNG
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _labels(values: pd.Series) -> list[str]:
    return ["NA" if pd.isna(v) else str(v) for v in values]


def _scene_payload(scene: ExplorerScene, columns: Sequence[str], thumbnails: Sequence[str | None] | None) -> dict:
    pts = scene.points
    meta = {c: _labels(pts[c]) for c in columns if c in pts.columns}
    return {
        "name": scene.name,
        "note": scene.note,
        "x": [round(float(v), 5) for v in pts["x"]],
        "y": [round(float(v), 5) for v in pts["y"]],
        "uid": _labels(pts["uid"]) if "uid" in pts.columns else [str(i) for i in range(len(pts))],
        "meta": meta,
        "columns": list(meta),
        "card_columns": [c for c in _CARD_COLUMNS if c in meta] or list(meta)[:6],
        "thumbs": list(thumbnails) if thumbnails is not None else None,
        "births": [float(v) for v in scene.births],
        "deaths": [float(v) for v in scene.deaths],
        "holes": scene.holes,
        "landmarks": [int(v) for v in scene.landmarks],
        "edges": {"i": scene.edges[:, 0].astype(int).tolist(), "j": scene.edges[:, 1].astype(int).tolist(),
                  "d": [float(v) for v in scene.edges[:, 2]]},
        "max_radius": float(scene.max_radius),
    }


def hole_explorer_html(
    scenes: Sequence[ExplorerScene],
    *,
    thumbnails: Mapping[str, Sequence[str | None]] | None = None,
    color_column: str = "dataset",
    include_plotlyjs: bool | str = True,
    div_id: str = "skinmap-hole-explorer",
    height: int = 560,
) -> str:
    """The explorer as an HTML fragment (embed it with ``IPython.display.HTML``).

    Parameters
    ----------
    scenes : sequence of ExplorerScene
        The first is shown on load (the atlas); the others are offered in a selector.
    thumbnails : mapping scene name -> one data-URI (or None) per point, optional
    color_column : str
        Initial colour column (any metadata column can be chosen on the page).
    include_plotlyjs : bool or "cdn"
        ``True`` inlines plotly.js (works offline).
    div_id : str
        Prefix of every element id (two explorers on one page need different ids).
    height : int
        Map height in pixels.
    """
    if not scenes:
        raise ValueError("the explorer needs at least one scene")
    thumbnails = thumbnails or {}
    payload = []
    for scene in scenes:
        columns = [c for c in scene.points.columns if c not in _HIDDEN_COLUMNS]
        payload.append(_scene_payload(scene, columns, thumbnails.get(scene.name)))
    data = json.dumps({"scenes": payload, "palette": _PALETTE, "color": color_column, "height": int(height)},
                      separators=(",", ":"), allow_nan=False)
    script = _SCRIPT.replace("__ROOT__", div_id).replace("__DATA__", data.replace("</", "<\\/"))
    js = _inline_plotlyjs() if include_plotlyjs is True else (
        '<script src="https://cdn.plot.ly/plotly-2.35.2.min.js"></script>' if include_plotlyjs == "cdn" else "")
    return js + _layout(div_id, scenes) + f"<script>{script}</script>"


def _layout(root: str, scenes: Sequence[ExplorerScene]) -> str:
    e = html.escape
    scene_opts = "".join(f'<option value="{k}">{e(s.name)}</option>' for k, s in enumerate(scenes))
    return f"""
<div id="{root}" class="skinmap-hole-explorer">
<style>
#{root} {{font-family: system-ui, sans-serif; font-size: 14px; max-width: 100%;}}
#{root} .hx-controls {{display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; margin-bottom: 6px;}}
#{root} .hx-row {{display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start;}}
#{root} .hx-map {{flex: 1 1 420px; min-width: 0; overflow: hidden;}}
#{root} .hx-side {{flex: 0 1 300px; min-width: 220px;}}
#{root} svg text {{font-size: 11px; fill: #333;}}
#{root} .hx-bar, #{root} .hx-dot {{cursor: pointer;}}
#{root} .hx-bar:focus, #{root} .hx-dot:focus {{outline: 2px solid #000;}}
#{root} .hx-selected {{stroke: #000; stroke-width: 2px;}}
#{root} .hx-gallery {{display: grid; grid-template-columns: repeat(auto-fill, minmax(120px, 1fr)); gap: 6px;
  max-height: 360px; overflow-y: auto; border: 1px solid #ddd; padding: 4px; margin-top: 6px;}}
#{root} .hx-card {{border: 1px solid #ccc; padding: 3px; font-size: 12px; overflow-wrap: anywhere;}}
#{root} .hx-card img {{width: 100%; image-rendering: pixelated;}}
#{root} .hx-card.hx-loop {{border-color: #d55e00;}}
#{root} .hx-status {{font-size: 13px; color: #333; min-height: 1.2em;}}
#{root} .hx-empty {{color: #b00; font-weight: bold;}}
#{root} .hx-terms td {{padding: 0 4px;}}
</style>
<div class="hx-controls">
  <label>View <select id="{root}-scene" aria-label="view">{scene_opts}</select></label>
  <label>Hole <select id="{root}-hole" aria-label="hole"></select></label>
  <label>Colour by <select id="{root}-color" aria-label="colour by"></select></label>
  <label>Filter <select id="{root}-fcol" aria-label="filter column"></select>
    <select id="{root}-fval" aria-label="filter value"></select></label>
  <button type="button" id="{root}-download" disabled>Download selected ids (CSV)</button>
</div>
<div class="hx-controls">
  <label for="{root}-radius">Filtration radius r</label>
  <input type="range" id="{root}-radius" min="0" max="1000" step="1" value="0" style="flex:1 1 240px"
    aria-describedby="{root}-edges">
  <span id="{root}-edges" class="hx-status" role="status"></span>
</div>
<div id="{root}-status" class="hx-status" role="status"></div>
<div class="hx-row">
  <div class="hx-map"><div id="{root}-plot"></div></div>
  <div class="hx-side">
    <div><strong>Persistence diagram</strong> (click a point)</div>
    <svg id="{root}-diagram" width="260" height="230" role="group" aria-label="persistence diagram"></svg>
    <div><strong>Barcode</strong> (click a bar)</div>
    <svg id="{root}-barcode" width="260" height="140" role="group" aria-label="barcode"></svg>
  </div>
</div>
<p id="{root}-note" class="hx-status"></p>
<p class="hx-status"><em>{e(_NOTE)}</em></p>
<div id="{root}-terms"></div>
<div id="{root}-gallery" class="hx-gallery" aria-live="polite"></div>
</div>"""


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
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body>{fragment}</body></html>"
    )


# The page's script. State: the current scene, hole, colour column, filter, radius and selection.
_SCRIPT = r"""
(function () {
  var DATA = __DATA__, ROOT = '__ROOT__';
  var $ = function (id) { return document.getElementById(ROOT + '-' + id); };
  var gd = $('plot'), S = null, hole = -1, selected = [];
  var NS = 'http://www.w3.org/2000/svg', FADED = 'rgba(190,190,190,0.35)';
  function esc(s) { var d = document.createElement('div'); d.textContent = String(s); return d.innerHTML; }
  function opt(sel, pairs, value) {
    sel.innerHTML = pairs.map(function (p) { return '<option value="' + esc(p[0]) + '">' + esc(p[1]) + '</option>'; }).join('');
    if (value !== undefined) sel.value = value;
  }
  function colors() {
    var col = $('color').value, vals = S.meta[col] || [], cats = {}, k = 0;
    Array.from(new Set(vals)).sort().forEach(function (v) { cats[v] = DATA.palette[k++ % DATA.palette.length]; });
    var fcol = $('fcol').value, fval = $('fval').value, out = [], n = 0;
    for (var i = 0; i < S.x.length; i++) {
      var match = !fcol || fval === '__all__' || S.meta[fcol][i] === fval;
      if (match) n++;
      out.push(match ? (cats[vals[i]] || DATA.palette[0]) : FADED);
    }
    var st = $('status');
    if (n === 0) { st.innerHTML = '<span class="hx-empty">0 matching points</span> for this filter: choose another value or "all".'; }
    else { st.textContent = n + ' matching point' + (n === 1 ? '' : 's') + ' of ' + S.x.length + ' drawn.'; }
    st.setAttribute('data-matching', n);
    return out;
  }
  function edgeTrace(r) {
    var xs = [], ys = [], n = 0, L = S.landmarks;
    for (var e = 0; e < S.edges.d.length && S.edges.d[e] <= r; e++) {
      var a = L[S.edges.i[e]], b = L[S.edges.j[e]];
      xs.push(S.x[a], S.x[b], null); ys.push(S.y[a], S.y[b], null); n++;
    }
    return {x: xs, y: ys, n: n};
  }
  function radius() { return S.max_radius * Number($('radius').value) / 1000; }
  function drawEdges() {
    var r = radius(), t = edgeTrace(r);
    Plotly.restyle(gd, {x: [t.x], y: [t.y]}, [1]);
    var el = $('edges');
    el.textContent = S.edges.d.length ? ('r = ' + r.toPrecision(3) + ': ' + t.n + ' edge' + (t.n === 1 ? '' : 's')) : 'no filtration for this view';
    el.setAttribute('data-edges', t.n); el.setAttribute('data-radius', r);
  }
  function holeRows(h) { return {loop: h.cycle, boundary: h.boundary.filter(function (r) { return h.cycle.indexOf(r) < 0; })}; }
  function drawHole() {
    var h = S.holes[hole], bx = [], by = [], lx = [], ly = [];
    if (h) {
      h.boundary.forEach(function (r) { bx.push(S.x[r]); by.push(S.y[r]); });
      h.cycle.concat(h.cycle.slice(0, 1)).forEach(function (r) { lx.push(S.x[r]); ly.push(S.y[r]); });
    }
    Plotly.restyle(gd, {x: [bx, lx], y: [by, ly], visible: [!!h, !!h]}, [2, 3]);
    gd.setAttribute('data-hole', h ? h.rank : '');
    if (h && lx.length) {
      var xs = bx.concat(lx), ys = by.concat(ly);
      var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs), y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
      var px = (x1 - x0) * 0.25 + 1e-6, py = (y1 - y0) * 0.25 + 1e-6;
      Plotly.relayout(gd, {'xaxis.range': [x0 - px, x1 + px], 'yaxis.range': [y0 - py, y1 + py]});
    } else {
      Plotly.relayout(gd, {'xaxis.autorange': true, 'yaxis.autorange': true});
    }
    $('hole').value = h ? String(hole) : 'none';
    document.querySelectorAll('#' + ROOT + ' .hx-bar, #' + ROOT + ' .hx-dot').forEach(function (el) {
      el.classList.toggle('hx-selected', el.getAttribute('data-hole') === String(hole));
    });
    gallery(h);
  }
  function gallery(h) {
    var g = $('gallery'), t = $('terms');
    if (!h) { g.innerHTML = '<em>Select a hole to list its loop and boundary cases.</em>'; t.innerHTML = ''; return; }
    var parts = holeRows(h), cards = [];
    [['loop', parts.loop], ['boundary', parts.boundary]].forEach(function (kind) {
      kind[1].forEach(function (r) {
        var c = '<div class="hx-card hx-' + kind[0] + '" data-uid="' + esc(S.uid[r]) + '" data-kind="' + kind[0] + '">';
        if (S.thumbs && S.thumbs[r]) c += '<img alt="case ' + esc(S.uid[r]) + '" src="' + S.thumbs[r] + '">';
        c += '<div><strong>' + kind[0] + '</strong> ' + esc(S.uid[r]) + '</div>';
        S.card_columns.forEach(function (col) { c += '<div>' + esc(col) + ': ' + esc(S.meta[col][r]) + '</div>'; });
        cards.push(c + '</div>');
      });
    });
    g.innerHTML = cards.join('');
    var top = h.terms.slice(0, 10), max = top.length ? top[0][2] : 1;
    t.innerHTML = top.length ? ('<strong>What borders hole #' + h.rank + '</strong> (terms of its boundary samples, by count)' +
      '<table class="hx-terms">' + top.map(function (x) {
        return '<tr><td>' + esc(x[0]) + '</td><td>' + esc(x[1]) + '</td><td><span style="display:inline-block;height:10px;background:#0072b2;width:' +
          Math.round(120 * x[2] / max) + 'px"></span> ' + x[2] + '</td></tr>'; }).join('') + '</table>') : '';
  }
  function svg(tag, attrs, parent) {
    var el = document.createElementNS(NS, tag);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    parent.appendChild(el); return el;
  }
  function holeOfBar(b) {
    for (var k = 0; k < S.holes.length; k++) {
      if (Math.abs(S.holes[k].birth - S.births[b]) < 1e-9 && Math.abs(S.holes[k].death - S.deaths[b]) < 1e-9) return k;
    }
    return -1;
  }
  function pick(k) { hole = k; drawHole(); }
  function focusable(el, k, label) {
    el.setAttribute('tabindex', '0'); el.setAttribute('role', 'button'); el.setAttribute('aria-label', label);
    el.setAttribute('data-hole', String(k));
    el.addEventListener('click', function () { pick(k); });
    el.addEventListener('keydown', function (ev) { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); pick(k); } });
  }
  function drawDiagram() {
    var d = $('diagram'), bc = $('barcode'); d.innerHTML = ''; bc.innerHTML = '';
    var W = 260, H = 230, m = 30, hi = Math.max.apply(null, S.deaths.concat([1e-9])) * 1.05;
    var sx = function (v) { return m + (W - m - 8) * v / hi; }, sy = function (v) { return H - m - (H - m - 8) * v / hi; };
    svg('line', {x1: sx(0), y1: sy(0), x2: sx(hi), y2: sy(hi), stroke: '#888'}, d);
    svg('line', {x1: sx(0), y1: sy(0), x2: sx(hi), y2: sy(0), stroke: '#333'}, d);
    svg('line', {x1: sx(0), y1: sy(0), x2: sx(0), y2: sy(hi), stroke: '#333'}, d);
    svg('text', {x: W / 2, y: H - 6, 'text-anchor': 'middle'}, d).textContent = 'birth';
    svg('text', {x: 10, y: H / 2, transform: 'rotate(-90 10 ' + H / 2 + ')', 'text-anchor': 'middle'}, d).textContent = 'death';
    var order = S.births.map(function (_, b) { return b; }).sort(function (a, b) { return (S.deaths[b] - S.births[b]) - (S.deaths[a] - S.births[a]); });
    order.forEach(function (b) {
      var k = holeOfBar(b);
      var c = svg('circle', {cx: sx(S.births[b]), cy: sy(S.deaths[b]), r: k >= 0 ? 6 : 3,
        fill: k >= 0 ? '#d55e00' : '#999', 'class': 'hx-dot', 'data-bar': b}, d);
      if (k >= 0) focusable(c, k, 'hole ' + S.holes[k].rank + ', persistence ' + S.holes[k].persistence.toPrecision(3));
    });
    S.holes.forEach(function (h, k) {
      svg('text', {x: sx(h.birth) + 8, y: sy(h.death) - 4 - 10 * k}, d).textContent = '#' + h.rank;
    });
    var shown = order.slice(0, 12), bh = Math.max(6, Math.min(12, 130 / Math.max(shown.length, 1)));
    bc.setAttribute('height', shown.length * (bh + 2) + 16);
    shown.forEach(function (b, row) {
      var k = holeOfBar(b), x0 = sx(S.births[b]), x1 = sx(S.deaths[b]);
      var r = svg('rect', {x: x0, y: 4 + row * (bh + 2), width: Math.max(2, x1 - x0), height: bh,
        fill: k >= 0 ? '#d55e00' : '#bbb', 'class': 'hx-bar', 'data-bar': b}, bc);
      if (k >= 0) focusable(r, k, 'bar of hole ' + S.holes[k].rank);
    });
  }
  function loadScene(idx) {
    S = DATA.scenes[idx]; hole = S.holes.length ? 0 : -1; selected = []; $('download').disabled = true;
    opt($('hole'), S.holes.map(function (h, k) { return [String(k), '#' + h.rank + ' (persistence ' + h.persistence.toPrecision(3) +
      (h.p_value === null ? '' : ', p = ' + h.p_value.toPrecision(2)) + ')']; }).concat([['none', 'none']]));
    var firstColour = [DATA.color, 'shape', 'dataset'].filter(function (c) { return S.columns.indexOf(c) >= 0; })[0] || S.columns[0];
    opt($('color'), S.columns.map(function (c) { return [c, c]; }), firstColour);
    opt($('fcol'), [['', '(none)']].concat(S.columns.map(function (c) { return [c, c]; })));
    opt($('fval'), [['__all__', 'all']]);
    $('note').textContent = S.note || '';
    $('radius').value = 0;
    var traces = [
      {x: S.x, y: S.y, mode: 'markers', type: 'scatter', marker: {size: 5, color: colors()}, hoverinfo: 'text',
       text: S.uid.map(function (u, i) { return S.columns.slice(0, 5).map(function (c) { return c + ': ' + S.meta[c][i]; }).join('<br>'); }),
       name: 'cases', showlegend: false},
      {x: [], y: [], mode: 'lines', type: 'scatter', line: {width: 0.6, color: 'rgba(60,60,60,0.45)'}, hoverinfo: 'skip', name: 'filtration edges'},
      {x: [], y: [], mode: 'markers', type: 'scatter', marker: {size: 10, color: 'rgba(0,0,0,0)', line: {width: 1.5, color: '#e69f00'}}, hoverinfo: 'skip', name: 'boundary samples'},
      {x: [], y: [], mode: 'lines+markers', type: 'scatter', line: {width: 3, color: '#d55e00'}, marker: {size: 7, color: '#d55e00'}, hoverinfo: 'skip', name: 'loop'}
    ];
    Plotly.react(gd, traces, {height: DATA.height, margin: {l: 10, r: 10, t: 10, b: 10}, dragmode: 'lasso',
      xaxis: {visible: false}, yaxis: {visible: false, scaleanchor: 'x'}, legend: {orientation: 'h', y: -0.02},
      plot_bgcolor: 'white'}, {displaylogo: false, responsive: true, modeBarButtonsToAdd: ['select2d', 'lasso2d']});
    drawDiagram(); drawEdges(); drawHole();
    gd.setAttribute('data-ready', String(idx));
  }
  $('scene').addEventListener('change', function () { loadScene(Number(this.value)); });
  $('hole').addEventListener('change', function () { pick(this.value === 'none' ? -1 : Number(this.value)); });
  $('color').addEventListener('change', function () { Plotly.restyle(gd, {'marker.color': [colors()]}, [0]); });
  $('fcol').addEventListener('change', function () {
    var col = this.value, vals = col ? Array.from(new Set(S.meta[col])).sort() : [];
    opt($('fval'), [['__all__', 'all']].concat(vals.map(function (v) { return [v, v]; })));
    Plotly.restyle(gd, {'marker.color': [colors()]}, [0]);
  });
  $('fval').addEventListener('change', function () { Plotly.restyle(gd, {'marker.color': [colors()]}, [0]); });
  $('radius').addEventListener('input', drawEdges);
  $('download').addEventListener('click', function () {
    var lines = ['uid'].concat(selected.map(function (r) { return '"' + S.uid[r].replace(/"/g, '""') + '"'; }));
    var a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([lines.join('\n') + '\n'], {type: 'text/csv'}));
    a.download = 'skinmap-selection.csv'; document.body.appendChild(a); a.click(); a.remove();
  });
  function onSelected(ev) {
    selected = ev && ev.points ? ev.points.filter(function (p) { return p.curveNumber === 0; }).map(function (p) { return p.pointIndex; }) : [];
    var b = $('download'); b.disabled = !selected.length;
    b.textContent = selected.length ? 'Download ' + selected.length + ' selected ids (CSV)' : 'Download selected ids (CSV)';
  }
  function start() {
    if (!window.Plotly) { $('status').textContent = 'plotly.js did not load: the explorer needs it.'; return; }
    loadScene(0);
    gd.on('plotly_selected', onSelected);
    gd.on('plotly_deselect', function () { onSelected(null); });
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
})();
"""


def build_hole_explorer(
    points: pd.DataFrame,
    holes: Sequence[dict],
    *,
    search=None,
    terms: Mapping[int, pd.DataFrame] | None = None,
    sanity_config=None,
    max_points: int = 5000,
    max_edges: int = 20_000,
    thumbnails: bool = False,
    path_column: str = "path",
    thumbnail_px: int = 48,
    seed: int = 0,
    progress: bool = False,
    **kwargs,
) -> str:
    """The explorer for a whole map: the atlas scene (from a hole search) plus the sanity shapes.

    Parameters
    ----------
    points : DataFrame of shape (n, ...)
        ``x``, ``y`` and metadata per embedding row.
    holes : sequence of dict
        ``Hole.to_json()`` records (rows of ``points``).
    search : HoleSearch, optional
        The observed search: its diagram and its filtration (``rips_rows``, ``diagram.distance``)
        feed the diagram, barcode and slider. Without it the diagram shows the holes only.
    terms : mapping hole rank -> term table, optional
    sanity_config : HoleSearchConfig, optional
        When given, the circle, two circles and torus are added as scenes searched with it.
    max_points, max_edges, seed : see :func:`explorer_scene`
    thumbnails : bool
        Embed a JPEG thumbnail per drawn point read from ``path_column`` (opt-in for real data).
    thumbnail_px : int
    progress : bool
        tqdm progress of the thumbnails in the build log.
    **kwargs
        Passed to :func:`hole_explorer_html`.
    """
    from tqdm.auto import tqdm

    births = search.diagram.births if search is not None else [h["birth"] for h in holes]
    deaths = search.diagram.deaths if search is not None else [h["death"] for h in holes]
    atlas = explorer_scene(
        "Atlas", points, holes, births=births, deaths=deaths,
        filtration_rows=None if search is None else search.rips_rows,
        filtration_distance=None if search is None else search.diagram.distance,
        terms=terms, max_points=max_points, max_edges=max_edges, seed=seed,
        note="The atlas: holes found on the landmark subsample of the fused embedding.")
    thumbs = None
    if thumbnails:
        if path_column not in atlas.points.columns:
            raise KeyError(f"thumbnails need a {path_column!r} column")
        thumbs = {"Atlas": [thumbnail_data_uri(None if pd.isna(p) else p, thumbnail_px)
                            for p in tqdm(atlas.points[path_column], desc="thumbnails", leave=False, disable=not progress)]}
    scenes = [atlas] + (sanity_scenes(sanity_config, seed=seed) if sanity_config is not None else [])
    return hole_explorer_html(scenes, thumbnails=thumbs, **kwargs)
