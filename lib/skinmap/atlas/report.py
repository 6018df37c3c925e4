"""What :func:`skinmap.atlas.assess.assess` found, and how it is written and read.

The report folder holds the per-image table, the Fréchet distances, the holes entered, the
near-duplicate tallies, a JSON summary and a Markdown report, under the ``assess.*`` export names
of :mod:`skinmap.runs` (the one owner of run-directory file names); files are written atomically
with the process umask (:mod:`skinmap.io`).
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
        }

    def to_markdown(self) -> str:
        nov = self.novelty
        lines = [f"# Assessment of cohort `{self.cohort_name}` ({len(self.per_image)} images)", ""]
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

    def write(self, out_dir: str | os.PathLike) -> Path:
        """Write the report files into ``out_dir`` (created) and return it."""
        out = Path(out_dir)
        write_csv(self.per_image, out / runs.export_name("assess.per_image"))
        write_csv(self.frechet, out / runs.export_name("assess.frechet"))
        write_csv(self.holes, out / runs.export_name("assess.holes"))
        write_csv(self.near_duplicates, out / runs.export_name("assess.near_duplicates"))
        write_json(self.summary(), out / runs.export_name("assess.summary"))
        write_text(self.to_markdown(), out / runs.export_name("assess.report"))
        return out
