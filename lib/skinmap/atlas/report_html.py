"""The assessment as one self-contained HTML page in the book's style.

Sections, in order: the atlas it was compared against (profile; a warning callout when the atlas
is synthetic), a ranked "what this cohort adds" list, the cohort on the atlas' 2-D map, its
novelty against the bootstrap null band (eqs. 2-6), the Fréchet distance to every dataset
(eq. 8), the holes and sparse regions it enters (eqs. 15-16), and its near duplicates, with
thumbnails when the report allows them. Figures and thumbnails are inlined as PNG / JPEG data,
so the file can be mailed or opened offline; every value from the data is HTML-escaped.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas inside an
``rc_context``: rendering a report changes neither the pyplot backend nor the global style of
the notebook or program that calls it.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["render_html", "thumbnail_data_uri"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; margin: 0; }
main { max-width: 1000px; margin: 0 auto; padding: 1rem 1.5rem 3rem; line-height: 1.5; }
h1, h2 { color: #1f3a5f; } h2 { border-bottom: 1px solid #dde1e6; padding-bottom: 0.2rem; margin-top: 2rem; }
.atlas { padding: 0.6rem 1rem; background: #f6f7f9; border: 1px solid #dde1e6; border-radius: 6px; }
.callout-warning { margin: 1rem 0; padding: 0.7rem 1rem; border-left: 5px solid #de8f05; background: #fff4e0;
  border-radius: 4px; }
.callout-warning strong { display: block; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; }
th, td { padding: 0.25rem 0.7rem; border-bottom: 1px solid #e4e7eb; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; } figure img { max-width: 100%; } figcaption { font-size: 0.85rem; color: #4b5563; }
ol.adds li { margin: 0.2rem 0; }
.pairs { display: grid; grid-template-columns: repeat(auto-fill, minmax(270px, 1fr)); gap: 0.8rem; }
.pair { border: 1px solid #dde1e6; border-radius: 6px; padding: 0.4rem; font-size: 0.8rem; }
.pair img { width: 120px; height: 120px; object-fit: cover; background: #eee; }
.note { color: #4b5563; font-size: 0.9rem; }
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _figure_uri(draw, size=(7.0, 4.0)) -> str:
    """PNG data URI of a figure drawn by ``draw(fig)`` in the book's style, without touching pyplot."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from skinmap.viz.style import set_style

    with matplotlib.rc_context():
        set_style()
        fig = Figure(figsize=size)
        FigureCanvasAgg(fig)
        draw(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnail_data_uri(path, size: int = 120, max_pixels: int = 40_000_000) -> str | None:
    """A JPEG thumbnail of an image file as a data URI, or None when it cannot be read."""
    from PIL import Image

    if path is None or (isinstance(path, float) and np.isnan(path)) or pd.isna(path) or not Path(str(path)).is_file():
        return None
    try:
        with Image.open(str(path)) as img:
            if img.width * img.height > max_pixels:
                return None
            img = img.convert("RGB")
            img.thumbnail((size, size))
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=80)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _table(df: pd.DataFrame, formats: dict[str, str] | None = None) -> str:
    formats = formats or {}
    numeric = {c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])}
    head = "".join(f'<th class="{"num" if c in numeric else ""}">{_e(c)}</th>' for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for c, v in zip(df.columns, row):
            text = "" if v is None or (isinstance(v, float) and not np.isfinite(v)) else (
                format(v, formats[c]) if c in formats else str(v))
            cells.append(f'<td class="{"num" if c in numeric else ""}">{_e(text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _map_section(report) -> str:
    per = report.per_image
    if report.atlas_map is None or "map_x" not in per:
        return '<p class="note">The run has no 2-D map: the cohort cannot be placed on it.</p>'
    atlas = report.atlas_map

    def draw(fig):
        ax = fig.add_subplot()
        import seaborn as sns

        names = sorted(atlas["dataset"].unique())
        colours = dict(zip(names, sns.color_palette("colorblind", len(names))))
        for name in names:
            sub = atlas[atlas["dataset"] == name]
            ax.scatter(sub["x"], sub["y"], s=5, alpha=0.35, color=colours[name], label=name, linewidths=0)
        ax.scatter(per["map_x"], per["map_y"], s=22, marker="X", color="black", label="this cohort", linewidths=0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("map axis 1")
        ax.set_ylabel("map axis 2")
        legend = ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, markerscale=2)
        for handle in legend.legend_handles:
            handle.set_alpha(1.0)  # the points are faint on the map, not in the legend

    uri = _figure_uri(draw, size=(7.5, 5.0))
    return (f'<figure><img src="{uri}" alt="the cohort on the atlas map"><figcaption>The cohort (black crosses) '
            f"on the atlas' 2-D map, coloured by dataset. Each cohort image sits at the similarity-weighted mean "
            f"position of its {_e(report.novelty.get('n_neighbors', ''))} nearest atlas images (the map has no "
            f"stored transform; a display approximation).</figcaption></figure>")


def _novelty_section(report) -> str:
    nov = report.novelty
    if not np.isfinite(nov.get("nu", np.nan)):
        return '<p class="note">No novelty: too few images.</p>'
    if nov["nu"] > nov["ci_high"]:
        verdict = "above the null band: the cohort adds regions the atlas does not cover"
    elif nov["nu"] < nov["ci_low"]:
        verdict = "below the null band: the cohort is closer to the atlas than the atlas is to itself"
    else:
        verdict = "within the null band: the cohort resamples regions the atlas already covers"

    def draw(fig):
        ax = fig.add_subplot()
        ax.hist(report.per_image["novelty"], bins=30, color="#0173b2", alpha=0.85)
        ax.axvspan(nov["ci_low"], nov["ci_high"], color="grey", alpha=0.3, label="null band (cohort mean)")
        ax.axvline(nov["nu_null"], color="grey", lw=1, ls="--", label=f"null mean {nov['nu_null']:.3f}")
        ax.axvline(nov["nu"], color="#d55e00", lw=2, label=f"cohort mean {nov['nu']:.3f}")
        ax.set_xlabel("per-image novelty (mean cosine distance to nearest atlas images)")
        ax.set_ylabel("images")
        ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)

    uri = _figure_uri(draw)
    return (f"<p>Mean novelty ν = {nov['nu']:.4f} against the bootstrap null ν° = {nov['nu_null']:.4f} "
            f"(band {nov['ci_low']:.4f} to {nov['ci_high']:.4f}, {_e(nov.get('n_bootstrap', ''))} pseudo-cohorts "
            f"drawn from the atlas); ratio {nov['ratio']:.2f}: {_e(verdict)}.</p>"
            f'<figure><img src="{uri}" alt="novelty histogram with the null band"><figcaption>Per-image novelty '
            f"of the cohort, its mean (orange) and the null band of same-size pseudo-cohorts drawn from the atlas "
            f"(grey).</figcaption></figure>")


def _frechet_section(report) -> str:
    fd = report.frechet
    if fd.empty:
        return '<p class="note">No Fréchet distance: the cohort or every dataset has too few images.</p>'

    def draw(fig):
        ax = fig.add_subplot()
        ordered = fd.sort_values("fd", ascending=False)
        ax.barh(ordered["dataset"].astype(str), ordered["fd"], color="#029e73")
        ax.set_xlabel("Fréchet distance to the cohort (eq. 8; smaller = more alike)")

    uri = _figure_uri(draw, size=(7.0, 0.5 + 0.32 * len(fd)))
    return (f'<figure><img src="{uri}" alt="Fréchet distance to every dataset"><figcaption>Fréchet distance from '
            f"the cohort's Gaussian to each atlas dataset's.</figcaption></figure>"
            + _table(fd.rename(columns={"n_images": "images", "fd": "Fréchet distance"}),
                     {"Fréchet distance": ".4f"}))


def _holes_section(report) -> str:
    parts = []
    if report.holes.empty:
        parts.append('<p class="note">No holes in this run (or the holes chapter has not run).</p>')
    else:
        holes = report.holes.copy()
        entered = int((holes["n_inside"] > 0).sum())
        parts.append(f"<p>The cohort enters {entered} of the {len(holes)} holes of the atlas (an image enters a hole "
                     f"when it lies inside the hole's ball, eqs. 15-16).</p>")
        parts.append(_table(holes.rename(columns={"n_inside": "images inside",
                                                  "min_distance_in_radii": "closest (radii)"}),
                            {"persistence": ".3f", "p_value": ".3f", "radius": ".3f", "closest (radii)": ".2f"}))
    if report.sparse:
        s = report.sparse
        parts.append(f"<p>{s['n_in_sparse']} cohort images ({100 * s['share_in_sparse']:.1f}%) land in sparse regions "
                     f"of the atlas (its own base rate: {100 * s['atlas_sparse_share']:.1f}%), reaching "
                     f"{s['n_sparse_atlas_images_reached']} sparse atlas images as neighbours.</p>")
    else:
        parts.append('<p class="note">Sparse regions not assessed (no density from the holes chapter).</p>')
    return "".join(parts)


def _duplicates_section(report, max_pairs: int = 24) -> str:
    per = report.per_image
    n_dup = int(per["near_duplicate"].sum()) if "near_duplicate" in per else 0
    sim = report.params.get("near_duplicate_similarity")
    parts = [f"<p>{n_dup} cohort images have an atlas image at cosine similarity {_e(sim)} or more.</p>"]
    if not report.near_duplicates.empty:
        parts.append(_table(report.near_duplicates, {"max_similarity": ".3f", "share_of_cohort": ".3f",
                                                     "share_of_dataset": ".3f"}))
    pairs = report.duplicate_pairs
    if pairs is None:
        parts.append('<p class="note">Thumbnails are not shown in this report (not allowed by its settings).</p>')
    elif len(pairs):
        cards = []
        for p in pairs.head(max_pairs).itertuples(index=False):
            imgs = []
            for path, label in ((p.cohort_path, "cohort"), (p.atlas_path, "atlas")):
                uri = thumbnail_data_uri(path)
                imgs.append(f'<img src="{uri}" alt="{label} image">' if uri else f"<span>({label}: no image)</span>")
            cards.append(f'<div class="pair">{"".join(imgs)}<div>{_e(p.cohort_id)} ↔ {_e(p.atlas_uid)}</div>'
                         f"<div>similarity {p.similarity:.3f}</div></div>")
        more = f'<p class="note">First {max_pairs} of {len(pairs)} pairs.</p>' if len(pairs) > max_pairs else ""
        parts.append(f'<div class="pairs">{"".join(cards)}</div>{more}')
    return "".join(parts)


def _adds_section(report) -> str:
    adds = report.additions()
    if adds.empty:
        return "<p>Nothing the atlas lacks: no hole, sparse region, unusually novel image or new diagnosis.</p>"
    items = "".join(f"<li><strong>{_e(r.finding)}</strong>: {r.n_images} images ({100 * r.share:.1f}% of the cohort)</li>"
                    for r in adds.itertuples(index=False))
    return f'<ol class="adds">{items}</ol>'


def render_html(report) -> str:
    """The report as one HTML page (string)."""
    n = len(report.per_image)
    warning = (f'<div class="callout-warning" role="note"><strong>Synthetic atlas</strong>'
               f"{_e(report.synthetic_warning)}</div>" if report.synthetic_warning else "")
    atlas_size = f", {report.atlas_n_images} images" if report.atlas_n_images else ""
    excluded = report.params.get("exclude_datasets") or []
    notes = "".join(f"<li>{_e(n_)}</li>" for n_ in report.notes)
    sections = [
        ("What this cohort adds", _adds_section(report)),
        ("The cohort on the atlas map", _map_section(report)),
        ("Novelty against the null band", _novelty_section(report)),
        ("Fréchet distance to every dataset", _frechet_section(report)),
        ("Holes and sparse regions entered", _holes_section(report)),
        ("Near duplicates", _duplicates_section(report)),
    ]
    body = "".join(f"<section><h2>{_e(title)}</h2>{content}</section>" for title, content in sections)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Assessment of {_e(report.cohort_name)}</title><style>{_CSS}</style></head>
<body><main>
<h1>Assessment of cohort {_e(report.cohort_name)}</h1>
<p class="atlas" id="atlas-profile">Compared against the <strong>{_e(report.atlas_label)}</strong>{_e(atlas_size)}{
    _e(f"; left out first: {', '.join(excluded)}") if excluded else ""}. Cohort: {n} images.</p>
{warning}
{body}
{f"<section><h2>Notes</h2><ul>{notes}</ul></section>" if notes else ""}
</main></body></html>
"""
