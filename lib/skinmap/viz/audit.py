"""Programmatic checks of a finished figure against the book's figure rules.

:func:`audit_figure` draws the figure once and returns one message per broken rule:

1. **text size** - every visible text is >= :data:`MIN_FONT_PT` once the figure is shown in the book:
   the notebook embeds the PNG of the tight bounding box at ``fig.dpi`` pixels per inch, the browser
   shows it at 96 px per CSS inch, shrunk to the content column (:data:`RENDERED_WIDTH_IN`) when
   wider. A 15 in wide figure with 6 pt legend text is shown at about 3 pt.
2. **legends** - each legend lies inside the saved image, covers no data point, bar or image of any
   panel, overlaps no other text (titles, axis and tick labels) and does not run into another panel.
3. **titles and labels** - titles, the figure title and free texts/annotations do not overlap each
   other, and no title runs into another panel.
4. **categorical colours** - legend entries drawn with the same marker / line style / hatch differ
   by at least :data:`skinmap.viz.palette.MIN_DELTA_E` CIEDE2000 units (and
   :data:`~skinmap.viz.palette.MIN_DELTA_E_CVD` under simulated dichromacy).
6. **squashed panels** - no data panel is smaller than :data:`MIN_PANEL_IN` either way once rendered
   (a tight layout makes room for a long legend by shrinking the axes).
5. **clipped bars** - a bar that extends beyond the axis limits carries a clip marker
   (:func:`skinmap.viz.bars.clipped_bars` draws one, with the true value).
"""

from __future__ import annotations

import numpy as np
from matplotlib.collections import Collection, PathCollection, PolyCollection, QuadMesh
from matplotlib.colors import to_hex, to_rgba
from matplotlib.image import AxesImage
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.text import Text

from skinmap.viz.palette import MIN_DELTA_E, MIN_DELTA_E_CVD, min_pairwise_delta_e

__all__ = ["audit_figure", "rendered_scale", "MIN_FONT_PT", "RENDERED_WIDTH_IN", "CSS_PX_PER_IN", "CLIP_MARKER_GID"]

#: the smallest text size allowed at the rendered width (points)
MIN_FONT_PT = 9.0
#: CSS pixels per inch (browsers)
CSS_PX_PER_IN = 96.0
#: width of the book's content column: Quarto's default body width, 800 CSS px (the fallback
#: renderer's column is wider, so this is the binding one)
RENDERED_WIDTH_IN = 800 / CSS_PX_PER_IN
#: ``gid`` of the artists that mark a clipped bar
CLIP_MARKER_GID = "skinmap-clip-marker"
#: smallest width and height of a data panel at the rendered width (inches)
MIN_PANEL_IN = 1.0
_MIN_OVERLAP_PX = 1.0


def rendered_scale(fig, rendered_width_in: float = RENDERED_WIDTH_IN, renderer=None) -> tuple[float, float]:
    """``(scale, width_in)``: rendered points per figure point, and the saved (tight) width in inches."""
    renderer = renderer or fig.canvas.get_renderer()
    bbox = fig.get_tightbbox(renderer)
    width_in = float(bbox.width) + 2 * 0.1  # savefig.pad_inches
    natural_css_in = width_in * fig.dpi / CSS_PX_PER_IN
    return min(natural_css_in, rendered_width_in) / width_in, width_in


def _axis_texts(axis) -> list[Text]:
    """The texts an axis actually draws: visible tick labels of the ticks in view, label, offset."""
    if not axis.get_visible():
        return []
    out = []
    for tick in axis._update_ticks():
        out += [t for t in (tick.label1, tick.label2) if t.get_visible()]
    return out + [axis.label, axis.offsetText]


def _visible_texts(fig) -> list[Text]:
    excluded, drawn = set(), []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            excluded |= {id(t) for t in axis.findobj(Text)}
            if ax.get_visible() and ax.axison:
                drawn += _axis_texts(axis)
        if not ax.get_visible():
            excluded |= {id(t) for t in ax.findobj(Text)}
    for leg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)]:
        if leg is not None and not leg.get_visible():
            excluded |= {id(t) for t in leg.findobj(Text)}
    texts = [t for t in fig.findobj(Text) if id(t) not in excluded] + drawn
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def _check_text_sizes(fig, renderer, rendered_width_in) -> list[str]:
    scale, width_in = rendered_scale(fig, rendered_width_in, renderer)
    fig_box = fig.bbox
    small: dict[float, list[str]] = {}
    for t in _visible_texts(fig):
        ext = t.get_window_extent(renderer)
        if ext.width <= 0 or not ext.overlaps(fig_box.expanded(3, 3)):
            continue  # not drawn (e.g. a tick label outside the view)
        size = float(t.get_fontsize())
        if size * scale < MIN_FONT_PT - 1e-6:
            small.setdefault(size, []).append(t.get_text().strip().replace("\n", " ")[:30])
    out = []
    for size, texts in sorted(small.items()):
        example = ", ".join(repr(s) for s in list(dict.fromkeys(texts))[:3])
        out.append(f"text too small: {len(texts)} text(s) at {size:g} pt are {size * scale:.1f} pt at the rendered "
                   f"width (figure {width_in:.1f} in wide shown at {width_in * scale:.1f} in; need >= "
                   f"{MIN_FONT_PT:g} pt), e.g. {example}")
    return out


def _data_boxes(ax, renderer):
    """Display-coordinate points (n, 2) and boxes (m, 4) of the data drawn in ``ax``."""
    points, boxes = [], []
    for line in ax.get_lines():
        if not line.get_visible() or line.get_gid() == CLIP_MARKER_GID:
            continue
        xy = line.get_xydata()
        if len(xy) <= 2 and line.get_marker() in ("None", "", None, " "):
            continue  # a two-point reference line (axhline, diagonal) without markers
        points.append(line.get_transform().transform(np.asarray(xy, float)))
    for coll in ax.collections:
        if not coll.get_visible():
            continue
        if isinstance(coll, PathCollection) and len(coll.get_offsets()):
            points.append(coll.get_offset_transform().transform(np.asarray(coll.get_offsets(), float)))
        elif isinstance(coll, (QuadMesh,)):
            e = coll.get_window_extent(renderer)
            boxes.append([e.x0, e.y0, e.x1, e.y1])
        elif isinstance(coll, (PolyCollection, Collection)):
            tr = coll.get_transform()
            for path in coll.get_paths()[:5000]:
                v = path.vertices
                if len(v):
                    points.append(tr.transform(np.asarray(v, float)))
    for patch in ax.patches:
        if not patch.get_visible() or patch is ax.patch or patch.get_alpha() == 0:
            continue
        e = patch.get_window_extent(renderer)
        if e.width > 0 or e.height > 0:
            boxes.append([e.x0, e.y0, e.x1, e.y1])
    for im in ax.images:
        if isinstance(im, AxesImage) and im.get_visible():
            e = im.get_window_extent(renderer)
            boxes.append([e.x0, e.y0, e.x1, e.y1])
    pts = np.concatenate(points) if points else np.empty((0, 2))
    axb = ax.bbox
    inside = (pts[:, 0] >= axb.x0) & (pts[:, 0] <= axb.x1) & (pts[:, 1] >= axb.y0) & (pts[:, 1] <= axb.y1)
    pts = pts[inside & np.isfinite(pts).all(axis=1)]
    bx = np.array(boxes, float).reshape(-1, 4)
    if len(bx):  # clip boxes to the axes area
        bx[:, 0] = np.maximum(bx[:, 0], axb.x0)
        bx[:, 1] = np.maximum(bx[:, 1], axb.y0)
        bx[:, 2] = np.minimum(bx[:, 2], axb.x1)
        bx[:, 3] = np.minimum(bx[:, 3], axb.y1)
        bx = bx[(bx[:, 2] > bx[:, 0]) & (bx[:, 3] > bx[:, 1])]
    return pts, bx


def _legends(fig) -> list[Legend]:
    out = [leg for leg in fig.legends if leg.get_visible()]
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is not None and leg.get_visible():
            out.append(leg)
    return out


def _legend_name(leg) -> str:
    title = leg.get_title().get_text()
    return f"legend '{title}'" if title else "legend"


def _check_legends(fig, renderer) -> list[str]:
    out = []
    saved = fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans) if _savefig_tight() else fig.bbox
    texts = _visible_texts(fig)
    for leg in _legends(fig):
        lb = leg.get_window_extent(renderer)
        name = _legend_name(leg)
        own_texts = {id(t) for t in leg.findobj(Text)}
        hits = [t for t in texts if id(t) not in own_texts and _overlap(lb, Text.get_window_extent(t, renderer), 2.0)]
        if hits:
            out.append(f"{name} overlaps text {', '.join(repr(t.get_text()[:25]) for t in hits[:3])}"
                       + (f" and {len(hits) - 3} more" if len(hits) > 3 else ""))
        if lb.x0 < saved.x0 - 1 or lb.y0 < saved.y0 - 1 or lb.x1 > saved.x1 + 1 or lb.y1 > saved.y1 + 1:
            out.append(f"{name} lies partly outside the saved figure (cut off)")
        own = leg.axes if leg.parent is not fig else None
        for ax in fig.axes:
            if not ax.get_visible():
                continue
            pts, boxes = _data_boxes(ax, renderer)
            n_pts = int(((pts[:, 0] > lb.x0) & (pts[:, 0] < lb.x1) & (pts[:, 1] > lb.y0) & (pts[:, 1] < lb.y1)).sum())
            n_box = int(((boxes[:, 0] < lb.x1 - _MIN_OVERLAP_PX) & (boxes[:, 2] > lb.x0 + _MIN_OVERLAP_PX)
                         & (boxes[:, 1] < lb.y1 - _MIN_OVERLAP_PX) & (boxes[:, 3] > lb.y0 + _MIN_OVERLAP_PX)).sum())
            where = f"panel '{ax.get_title()}'" if ax.get_title() else "a panel"
            if n_pts or n_box:
                out.append(f"{name} covers data of {where} ({n_pts} point(s), {n_box} bar(s)/image(s)): "
                           "place it outside the data (skinmap.viz.style.legend_outside)")
            elif own is not None and ax is not own and ax.axison and _overlap(lb, ax.bbox):
                out.append(f"{name} runs into {where}")
    return out


def _savefig_tight() -> bool:
    import matplotlib

    return matplotlib.rcParams["savefig.bbox"] == "tight"


def _overlap(a, b, margin: float = _MIN_OVERLAP_PX) -> bool:
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > margin) and (min(a.y1, b.y1) - max(a.y0, b.y0) > margin)


def _title_texts(fig) -> list[tuple[str, Text, object]]:
    out = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for t in (ax.title, ax._left_title, ax._right_title):
            if t.get_visible() and t.get_text().strip():
                out.append(("title", t, ax))
        for t in ax.texts:
            if t.get_visible() and t.get_text().strip():
                out.append(("text", t, ax))
    for t in dict.fromkeys([fig._suptitle, *fig.texts]):
        if t is not None and t.get_visible() and t.get_text().strip():
            out.append(("figure title" if t is fig._suptitle else "text", t, None))
    return out


def _check_overlapping_texts(fig, renderer) -> list[str]:
    items = _title_texts(fig)
    if not items:
        return []
    # Text.get_window_extent: the text alone (an Annotation's own method adds its leader line)
    boxes = np.array([[e.x0, e.y0, e.x1, e.y1] for e in (Text.get_window_extent(t, renderer) for _, t, _ in items)])
    w = np.minimum(boxes[:, None, 2], boxes[None, :, 2]) - np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    h = np.minimum(boxes[:, None, 3], boxes[None, :, 3]) - np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    hit = (w > _MIN_OVERLAP_PX) & (h > _MIN_OVERLAP_PX)
    hit[np.tril_indices(len(items))] = False
    out = []
    pairs = np.argwhere(hit)
    for i, j in pairs[:5]:
        (ki, ti, _), (kj, tj, _) = items[i], items[j]
        out.append(f"overlapping text: {ki} {ti.get_text()[:30]!r} and {kj} {tj.get_text()[:30]!r}")
    if len(pairs) > 5:
        out.append(f"overlapping text: {len(pairs) - 5} more pair(s)")
    for kind, t, ax in items:
        if kind != "title":
            continue
        e = t.get_window_extent(renderer)
        for other in fig.axes:
            if other is ax or not other.get_visible():
                continue
            if _overlap(e, other.get_window_extent(renderer)):
                out.append(f"title {t.get_text()[:30]!r} runs into another panel"
                           + (f" ('{other.get_title()[:30]}')" if other.get_title() else ""))
                break
    return out


def _handle_style(h) -> tuple[str | None, tuple]:
    """(colour hex, shape key) of a legend handle; colour None when it carries no colour."""
    if isinstance(h, Line2D):
        marker = h.get_marker()
        has_marker = marker not in ("None", "", None, " ")
        color = h.get_markerfacecolor() if has_marker else h.get_color()
        return _hex(color), ("line", str(marker) if has_marker else "", h.get_linestyle() if h.get_linewidth() else "")
    if isinstance(h, Patch):
        return _hex(h.get_facecolor()), ("patch", h.get_hatch() or "")
    if isinstance(h, PathCollection):
        fc = h.get_facecolor()
        paths = h.get_paths()
        key = tuple(np.round(paths[0].vertices, 2).ravel()[:16]) if len(paths) else ()
        return (_hex(fc[0]) if len(fc) else None), ("scatter", key)
    if isinstance(h, Collection):
        fc = h.get_facecolor()
        if not len(fc):
            fc = h.get_edgecolor()
        return (_hex(fc[0]) if len(fc) else None), ("collection", type(h).__name__)
    return None, ("other",)


def _hex(color) -> str | None:
    try:
        rgba = to_rgba(color)
    except (ValueError, TypeError):
        return None
    return None if rgba[3] == 0 else to_hex(rgba)


def _check_colours(fig) -> list[str]:
    out = []
    for leg in _legends(fig):
        labels = [t.get_text() for t in leg.get_texts()]
        groups: dict[tuple, list[tuple[str, str]]] = {}
        for h, label in zip(leg.legend_handles, labels):
            colour, shape = _handle_style(h)
            if colour is not None:
                groups.setdefault(shape, []).append((label, colour))
        for entries in groups.values():
            uniq = {}
            for label, colour in entries:
                uniq.setdefault(colour, label)
            if len(uniq) < len(entries):
                dup = [lab for lab, c in entries if uniq[c] != lab]
                out.append(f"{_legend_name(leg)}: entries {dup[:3]} repeat a colour of another entry with the same "
                           "marker (combine colour with marker shape or hatch, skinmap.viz.palette.category_styles)")
            colours = list(uniq)
            names = list(uniq.values())
            d, (i, j) = min_pairwise_delta_e(colours)
            if d < MIN_DELTA_E:
                out.append(f"{_legend_name(leg)}: colours of {names[i]!r} and {names[j]!r} differ by CIEDE2000 "
                           f"{d:.1f} < {MIN_DELTA_E:g} (use the book palette, skinmap.viz.palette)")
                continue
            for kind in ("protanopia", "deuteranopia", "tritanopia"):
                d, (i, j) = min_pairwise_delta_e(colours, kind)
                if d < MIN_DELTA_E_CVD:
                    out.append(f"{_legend_name(leg)}: under {kind} the colours of {names[i]!r} and {names[j]!r} differ "
                               f"by CIEDE2000 {d:.1f} < {MIN_DELTA_E_CVD:g}")
                    break
    return out


def _check_clipped_bars(fig) -> list[str]:
    out = []
    for ax in fig.axes:
        bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_visible() and p is not ax.patch]
        if not bars:
            continue
        y0, y1 = sorted(ax.get_ylim())
        x0, x1 = sorted(ax.get_xlim())
        markers = [a for a in [*ax.lines, *ax.texts, *ax.collections] if a.get_gid() == CLIP_MARKER_GID]
        n_clipped = 0
        for b in bars:
            bx0, bx1 = sorted((b.get_x(), b.get_x() + b.get_width()))
            by0, by1 = sorted((b.get_y(), b.get_y() + b.get_height()))
            vertical_clip = (by0 < y0 - 1e-9 * (y1 - y0) or by1 > y1 + 1e-9 * (y1 - y0)) and x0 <= (bx0 + bx1) / 2 <= x1
            horizontal_clip = (bx0 < x0 - 1e-9 * (x1 - x0) or bx1 > x1 + 1e-9 * (x1 - x0)) and y0 <= (by0 + by1) / 2 <= y1
            if b.get_height() == 0 or b.get_width() == 0 or not (vertical_clip or horizontal_clip):
                continue
            if vertical_clip and bx0 == x0 and bx1 == x1 or horizontal_clip and by0 == y0 and by1 == y1:
                continue  # a background band (axvspan / axhspan), not a bar
            n_clipped += 1
        if n_clipped > len(markers):
            where = f"panel '{ax.get_title()}'" if ax.get_title() else "a panel"
            out.append(f"{n_clipped - len(markers)} bar(s) in {where} extend beyond the axis limits without a clip "
                       "marker showing the true value (skinmap.viz.bars.clipped_bars)")
    return out


def _check_squashed(fig, renderer, rendered_width_in) -> list[str]:
    scale, _ = rendered_scale(fig, rendered_width_in, renderer)
    out = []
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison or ax.images:
            continue  # image cells and colour bars are small by design
        if ax.get_label() == "<colorbar>":
            continue
        box = ax.get_window_extent(renderer)
        w, h = box.width / fig.dpi * scale, box.height / fig.dpi * scale
        if min(w, h) < MIN_PANEL_IN:
            where = f"panel '{ax.get_title()}'" if ax.get_title() else "a panel"
            out.append(f"{where} is squashed to {w:.1f} x {h:.1f} in at the rendered width (a legend or labels take "
                       f"the room; need >= {MIN_PANEL_IN:g} in each way)")
    return out


def audit_figure(fig, rendered_width_in: float = RENDERED_WIDTH_IN) -> list[str]:
    """Check ``fig`` against the book's figure rules (module docstring); ``[]`` when it passes.

    Parameters
    ----------
    fig : matplotlib Figure
        A finished figure (it is drawn once).
    rendered_width_in : float
        Width of the column the figure is shown in (CSS inches).

    Returns
    -------
    list of str
        One human-readable message per violation.
    """
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    out = []
    out += _check_text_sizes(fig, renderer, rendered_width_in)
    out += _check_legends(fig, renderer)
    out += _check_overlapping_texts(fig, renderer)
    out += _check_colours(fig)
    out += _check_clipped_bars(fig)
    out += _check_squashed(fig, renderer, rendered_width_in)
    return list(dict.fromkeys(out))

