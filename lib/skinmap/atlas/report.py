"""What :func:`skinmap.atlas.assess.assess` found, and how it is written and read.

The report folder holds the per-image table, the Fréchet distances, the holes entered, the
near-duplicate tallies, a JSON summary, a Markdown report and a self-contained HTML report
(:mod:`skinmap.atlas.report_html`), under the ``assess.*`` export names of :mod:`skinmap.runs` (the
one owner of run-directory file names); files are written atomically, readable by the group and
others as the process umask allows (:mod:`skinmap.io`; ``0644`` under the usual ``022``).

:meth:`AssessmentReport.to_text` is the plain-text summary for a terminal, naming the atlas profile
first and warning when the atlas is synthetic; :meth:`AssessmentReport.additions` ranks what the
cohort adds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from skinmap import runs
from skinmap.io import write_csv, write_json, write_text

__all__ = ["AssessmentReport"]


@dataclass
class AssessmentReport:
    """Everything :func:`~skinmap.atlas.assess.assess` found; :meth:`write` saves it."""

    cohort_name: str
    per_image: pd.DataFrame
    novelty: dict
    frechet: pd.DataFrame
    holes: pd.DataFrame
    sparse: dict
    near_duplicates: pd.DataFrame
    params: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    atlas_profile: str | None = None
    atlas_synthetic: bool = False
    atlas_map: pd.DataFrame | None = None          # x, y, dataset of the atlas rows compared against
    duplicate_pairs: pd.DataFrame | None = None    # near-duplicate pairs for thumbnails (None: not allowed)
    atlas_n_images: int | None = None
    atlas_diagnoses: set[str] | None = None

    @property
    def atlas_label(self) -> str:
        """How the report names the atlas: its profile, and a warning when it is synthetic."""
        profile = self.atlas_profile or "unknown profile"
        return f"atlas profile '{profile}'" + (" (SYNTHETIC atlas)" if self.atlas_synthetic else "")

    @property
    def synthetic_warning(self) -> str | None:
        if not self.atlas_synthetic:
            return None
        return ("Warning: this atlas is synthetic (generated images and labels, built to test the pipeline): "
                "the numbers below say nothing about real datasets. Assess against a run on real data.")

    def additions(self) -> pd.DataFrame:
        """What the cohort adds, ranked by the number of cohort images behind each finding.

        Rows: holes entered (images inside each hole's ball), sparse regions reached, images more
        novel than the upper edge of the null band, diagnoses the atlas lacks; columns ``finding``,
        ``n_images``, ``share`` (of the cohort). Near duplicates, which add little, are not listed.
        """
        n = max(len(self.per_image), 1)
        rows = []
        if not self.holes.empty:
            for h in self.holes[self.holes["n_inside"] > 0].itertuples(index=False):
                rows.append((f"fills hole {h.rank} (persistence {h.persistence:.3f})", int(h.n_inside)))
        if self.sparse and self.sparse.get("n_in_sparse"):
            rows.append((f"lands in sparse regions of the atlas (atlas base rate "
                         f"{100 * self.sparse['atlas_sparse_share']:.1f}%)", int(self.sparse["n_in_sparse"])))
        high = self.novelty.get("ci_high", np.nan)
        if "novelty" in self.per_image and np.isfinite(high):
            count = int((self.per_image["novelty"] > high).sum())
            if count:
                rows.append((f"images more novel than the null band's upper edge ({high:.3f})", count))
        if self.atlas_diagnoses is not None and "diagnosis" in self.per_image:
            dx = self.per_image["diagnosis"].dropna().astype(str)
            new = dx[~dx.isin(self.atlas_diagnoses)]
            for label, count in new.value_counts().items():
                rows.append((f"diagnosis new to the atlas: {label}", int(count)))
        out = pd.DataFrame(rows, columns=["finding", "n_images"])
        out["share"] = out["n_images"] / n
        return out.sort_values("n_images", ascending=False, kind="stable", ignore_index=True)

    @property
    def nearly_duplicated_datasets(self) -> list[str]:
        if self.near_duplicates.empty:
            return []
        return self.near_duplicates.loc[self.near_duplicates["nearly_duplicates"], "dataset"].tolist()

    def summary(self) -> dict:
        return {
            "cohort": self.cohort_name,
            "n_images": int(len(self.per_image)),
            "novelty": self.novelty,
            "closest_dataset_fd": None if self.frechet.empty else self.frechet.iloc[0].to_dict(),
            "holes_entered": [] if self.holes.empty else self.holes.loc[self.holes["n_inside"] > 0, "rank"].tolist(),
            "sparse": self.sparse,
            "nearly_duplicated_datasets": self.nearly_duplicated_datasets,
            "params": self.params,
            "notes": self.notes,
            "atlas": {"profile": self.atlas_profile, "synthetic": self.atlas_synthetic,
                      "n_images": self.atlas_n_images},
            "adds": self.additions().to_dict(orient="records"),
        }

    def to_markdown(self) -> str:
        nov = self.novelty
        lines = [f"# Assessment of cohort `{self.cohort_name}` ({len(self.per_image)} images)", "",
                 f"Compared against the {self.atlas_label}.", ""]
        if self.synthetic_warning:
            lines += [f"> **{self.synthetic_warning}**", ""]
        if np.isfinite(nov.get("nu", np.nan)):
            verdict = (
                "above the null band: it adds new regions" if nov["nu"] > nov["ci_high"] else
                "below the null band: it is closer to the atlas than the atlas is to itself"
                if nov["nu"] < nov["ci_low"] else "within the null band: it resamples covered regions"
            )
            lines.append(
                f"- Mean novelty ν = {nov['nu']:.4f} against a bootstrap null ν° = {nov['nu_null']:.4f} "
                f"(95% {nov['ci_low']:.4f}–{nov['ci_high']:.4f}); ratio {nov['ratio']:.2f}: {verdict}."
            )
        if not self.frechet.empty:
            best = self.frechet.iloc[0]
            lines.append(f"- Closest existing dataset by FD: {best['dataset']} (FD {best['fd']:.4f}).")
        if not self.holes.empty:
            entered = self.holes[self.holes["n_inside"] > 0]
            lines.append(
                f"- Holes entered: {len(entered)} of {len(self.holes)}"
                + (f" (ranks {', '.join(map(str, entered['rank']))})." if len(entered) else ".")
            )
        if self.sparse:
            lines.append(
                f"- {self.sparse['n_in_sparse']} images ({100 * self.sparse['share_in_sparse']:.1f}%) land in "
                f"sparse regions (atlas base rate {100 * self.sparse['atlas_sparse_share']:.1f}%)."
            )
        dup = self.nearly_duplicated_datasets
        lines.append(f"- Nearly duplicates: {', '.join(dup) if dup else 'no existing dataset'}.")
        lines += [f"- Note: {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def to_text(self, report_path: str | os.PathLike | None = None) -> str:
        """A plain-text summary for the terminal (no Markdown markup)."""
        nov = self.novelty
        lines = [f"Assessment of cohort {self.cohort_name} ({len(self.per_image)} images)",
                 f"Compared against the {self.atlas_label}"
                 + (f", {self.atlas_n_images} images" if self.atlas_n_images else "")]
        if self.synthetic_warning:
            lines.append(self.synthetic_warning)
        lines.append("")
        if np.isfinite(nov.get("nu", np.nan)):
            where = ("above the null band: it adds new regions" if nov["nu"] > nov["ci_high"] else
                     "below the null band: closer to the atlas than the atlas is to itself"
                     if nov["nu"] < nov["ci_low"] else "within the null band: it resamples covered regions")
            lines.append(f"  novelty        {nov['nu']:.4f} vs null {nov['nu_null']:.4f} "
                         f"[{nov['ci_low']:.4f}, {nov['ci_high']:.4f}], ratio {nov['ratio']:.2f}: {where}")
        if not self.frechet.empty:
            best = self.frechet.iloc[0]
            lines.append(f"  closest (FD)   {best['dataset']} (FD {best['fd']:.4f}; {len(self.frechet)} datasets compared)")
        if not self.holes.empty:
            entered = self.holes[self.holes["n_inside"] > 0]
            lines.append(f"  holes entered  {len(entered)} of {len(self.holes)}"
                         + (f" (ranks {', '.join(map(str, entered['rank']))})" if len(entered) else ""))
        if self.sparse:
            lines.append(f"  sparse         {self.sparse['n_in_sparse']} images "
                         f"({100 * self.sparse['share_in_sparse']:.1f}%; atlas base rate "
                         f"{100 * self.sparse['atlas_sparse_share']:.1f}%)")
        n_dup = int(self.per_image["near_duplicate"].sum()) if "near_duplicate" in self.per_image else 0
        dup = self.nearly_duplicated_datasets
        lines.append(f"  near dups      {n_dup} images; nearly duplicates {', '.join(dup) if dup else 'no existing dataset'}")
        adds = self.additions()
        lines += ["", "What this cohort adds (most images first):"]
        lines += ([f"  {i + 1}. {r.finding}: {r.n_images} images ({100 * r.share:.1f}%)"
                   for i, r in enumerate(adds.itertuples(index=False))] or ["  nothing the atlas lacks"])
        if self.notes:
            lines += ["", *[f"note: {n}" for n in self.notes]]
        if report_path is not None:
            lines += ["", f"Report: {report_path}"]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        """The self-contained HTML report (figures and thumbnails inlined)."""
        from skinmap.atlas.report_html import render_html

        return render_html(self)

    def write(self, out_dir: str | os.PathLike) -> Path:
        """Write the report files into ``out_dir`` (created) and return it."""
        out = Path(out_dir)
        write_csv(self.per_image, out / runs.export_name("assess.per_image"))
        write_csv(self.frechet, out / runs.export_name("assess.frechet"))
        write_csv(self.holes, out / runs.export_name("assess.holes"))
        write_csv(self.near_duplicates, out / runs.export_name("assess.near_duplicates"))
        write_json(self.summary(), out / runs.export_name("assess.summary"))
        write_text(self.to_markdown(), out / runs.export_name("assess.report"))
        write_text(self.to_html(), out / runs.export_name("assess.report_html"))
        return out
