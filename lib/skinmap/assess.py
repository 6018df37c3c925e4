"""Acquisition steering: what would a proposed cohort add to the atlas? (paper §9)

``assess(cohort, run_dir)`` embeds a proposed cohort (a folder of images, a table with a ``path``
column, or precomputed vectors) into the fused space and reports its marginal value against the
atlas in ``run_dir``:

* **novelty** with exactly the yearly-novelty definition (paper eqs. 2-6): the atlas plays the
  history ``P_t`` and the cohort the new year ``I_t``; per-image novelty is the mean cosine distance
  to its k nearest atlas images, and the cohort's mean is compared with the bootstrap null of
  pseudo-cohorts drawn from the atlas (:func:`skinmap.analysis.novelty.yearly_novelty` is called
  as is, so the two chapters can never disagree on the definition);
* **Fréchet distance** (eqs. 7-8) from the cohort's Gaussian to every atlas dataset's, with the
  similarity chapter's implementation (:mod:`skinmap.analysis.frechet`);
* **holes and sparse regions filled**, when the holes chapter has run: a cohort image fills a hole
  when it lies inside the hole's ball (distance to the centre ``c_k`` below the radius ``r_k``,
  eqs. 15-16); it lands in a sparse region when its nearest atlas image is flagged ``sparse`` in
  ``holes/density.parquet``;
* **near duplicates**: cohort images whose nearest atlas image has cosine similarity at least
  ``near_duplicate_similarity``, tallied per atlas dataset; a dataset counts as "nearly
  duplicated" when at least ``duplicate_share`` of the cohort matches it.

The CLI is ``python -m skinmap assess <folder or table>`` (:func:`main`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from skinmap.analysis.knn import knn_search, l2_normalize
from skinmap.analysis.retrieval import load_atlas
from skinmap.io import read_json, write_csv, write_json, write_text

__all__ = [
    "IMAGE_SUFFIXES",
    "AssessmentReport",
    "load_cohort",
    "load_atlas",
    "load_holes",
    "holes_filled",
    "assess",
    "main",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


# --------------------------------------------------------------------------- inputs


def load_cohort(source: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """The cohort as a table with ``cohort_id`` and ``path`` (NA when only vectors are given).

    ``source`` may be a folder (every image file below it, sorted), a CSV/TSV/parquet table with a
    ``path`` column (relative paths resolve against the table's folder; ``uid`` or ``image_id``
    become ``cohort_id`` when present), a ``.npy`` file of precomputed vectors (ids are row
    numbers), or a DataFrame in either table form.
    """
    if isinstance(source, pd.DataFrame):
        table, base = source.copy(), Path.cwd()
    else:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"cohort {path} does not exist")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {path}")
            return pd.DataFrame(
                {"cohort_id": [str(p.relative_to(path)) for p in files], "path": [str(p.resolve()) for p in files]}
            )
        suffix = path.suffix.lower()
        if suffix == ".npy":
            n = np.load(path, mmap_mode="r").shape[0]
            return pd.DataFrame({"cohort_id": [str(i) for i in range(n)], "path": pd.Series([pd.NA] * n, dtype="string")})
        if suffix == ".parquet":
            table = pd.read_parquet(path)
        elif suffix in (".csv", ".tsv", ".txt"):
            table = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        else:
            raise ValueError(f"cohort {path}: expected a folder, .csv, .tsv, .parquet or .npy")
        base = path.parent
    id_col = next((c for c in ("cohort_id", "uid", "image_id") if c in table), None)
    ids = table[id_col].astype(str) if id_col else pd.Series([str(i) for i in range(len(table))])
    if "path" in table:
        paths = table["path"].astype("string")
        paths = paths.map(lambda p: p if pd.isna(p) or os.path.isabs(p) else str((base / p).resolve()))
    else:
        paths = pd.Series([pd.NA] * len(table), dtype="string")
    out = pd.DataFrame({"cohort_id": ids.to_numpy(), "path": paths.to_numpy()})
    for extra in ("dataset", "diagnosis"):
        if extra in table:
            out[extra] = table[extra].to_numpy()
    return out


def load_holes(run_dir: str | os.PathLike) -> list[dict]:
    """The holes chapter's ``holes/holes.json`` as a list of hole records ([] when absent)."""
    path = Path(run_dir) / "holes" / "holes.json"
    if not path.is_file():
        return []
    data = read_json(path)
    holes = data.get("holes", []) if isinstance(data, dict) else data
    return [h for h in holes if isinstance(h, dict)]


def holes_filled(cohort: np.ndarray, atlas: np.ndarray, holes: Sequence[dict]) -> pd.DataFrame:
    """How many cohort images fall inside each hole's ball (paper eqs. 15-16).

    The centre ``c_k`` and radius ``r_k`` are taken from the hole record when they match the
    space's dimension, otherwise recomputed from the hole's cycle rows (centre = mean of the
    boundary points, radius = their median distance to it). Returns one row per hole: ``rank``,
    ``radius``, ``n_inside``, ``min_distance`` (closest cohort image to the centre, in radii).
    """
    rows = []
    for h in holes:
        cycle = np.asarray(h.get("cycle") or h.get("boundary") or [], dtype=np.int64)
        center = np.asarray(h.get("center") or [], dtype=np.float64)
        if center.shape != (atlas.shape[1],):
            if cycle.size == 0:
                continue
            center = atlas[cycle].astype(np.float64).mean(axis=0)
        radius = h.get("radius")
        if radius is None or not np.isfinite(radius) or center is None:
            if cycle.size == 0:
                continue
            radius = float(np.median(np.linalg.norm(atlas[cycle] - center, axis=1)))
        dist = np.linalg.norm(cohort.astype(np.float64) - center, axis=1)
        rows.append(
            {
                "rank": h.get("rank", len(rows) + 1),
                "persistence": h.get("persistence", np.nan),
                "p_value": h.get("p_value", np.nan),
                "radius": float(radius),
                "n_inside": int((dist < radius).sum()),
                "min_distance_in_radii": float(dist.min() / radius) if radius > 0 and dist.size else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=["rank", "persistence", "p_value", "radius", "n_inside", "min_distance_in_radii"])


def _frechet_to_datasets(
    cohort: np.ndarray, atlas: np.ndarray, datasets: pd.Series, *, min_images: int, covariance: str = "auto"
) -> pd.DataFrame:
    """FD (eq. 8) from the cohort's Gaussian to each atlas dataset's, via the similarity chapter."""
    from skinmap.analysis import frechet

    names = [d for d, n in datasets.value_counts().items() if n >= min_images]
    if cohort.shape[0] < min_images or not names:
        return pd.DataFrame(columns=["dataset", "n_images", "fd"])
    cohort_stats = frechet.gaussian_stats(cohort, covariance=covariance)
    rows = []
    for name in sorted(names):
        mask = (datasets == name).to_numpy()
        fd = frechet.frechet_distance(cohort_stats, frechet.gaussian_stats(atlas[mask], covariance=covariance))
        rows.append({"dataset": name, "n_images": int(mask.sum()), "fd": float(fd)})
    return pd.DataFrame(rows).sort_values("fd", ignore_index=True)


# --------------------------------------------------------------------------- the report


@dataclass
class AssessmentReport:
    """Everything :func:`assess` found; ``write(out_dir)`` saves it as CSV/JSON/Markdown."""

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
        nov = self.novelty
        return {
            "cohort": self.cohort_name,
            "n_images": int(len(self.per_image)),
            "novelty": nov,
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
        out = Path(out_dir)
        write_csv(self.per_image, out / "per_image.csv")
        write_csv(self.frechet, out / "frechet.csv")
        write_csv(self.holes, out / "holes.csv")
        write_csv(self.near_duplicates, out / "near_duplicates.csv")
        write_json(self.summary(), out / "summary.json")
        write_text(self.to_markdown(), out / "report.md")
        return out


def _embed_cohort(paths: Sequence[str], run_dir: Path, embed_fn: Callable | None) -> np.ndarray:
    if embed_fn is None:
        try:
            from skinmap.embed.pipeline import embed_paths
        except ImportError as exc:  # the embedding pipeline is an optional, heavier layer
            raise RuntimeError(
                "cannot embed images: skinmap.embed.pipeline.embed_paths is unavailable "
                f"({exc}); pass precomputed vectors instead (--vectors FILE.npy)"
            ) from exc

        def embed_fn(p):
            # The feature cache of new images stays out of the embedding chapter's folder.
            return embed_paths(p, run_dir / "embedding", cache_dir=run_dir / "assess" / "embed_cache")

    return np.asarray(embed_fn(list(paths)), dtype=np.float32)


def assess(
    folder_or_table: str | os.PathLike | pd.DataFrame,
    run_dir: str | os.PathLike,
    *,
    vectors: np.ndarray | None = None,
    k: int = 10,
    n_bootstrap: int = 200,
    seed: int = 0,
    near_duplicate_similarity: float = 0.95,
    duplicate_share: float = 0.5,
    exclude_datasets: Sequence[str] = (),
    fd_min_images: int = 10,
    fd_covariance: str = "auto",
    embed_fn: Callable[[list[str]], np.ndarray] | None = None,
    name: str | None = None,
) -> AssessmentReport:
    """Score a proposed cohort against the atlas in ``run_dir`` (module docstring for the measures).

    ``vectors`` (one row per cohort image, fused space) skips embedding; otherwise images are
    embedded with ``embed_fn`` (default :func:`skinmap.embed.pipeline.embed_paths`).
    ``exclude_datasets`` removes datasets from the atlas first: the worked example assesses a
    dataset that is already in the atlas as if it were new. ``fd_covariance`` is passed to
    :func:`skinmap.analysis.frechet.gaussian_stats` (``"auto"``: Ledoit-Wolf shrinkage for
    groups with no more images than dimensions); datasets with fewer than ``fd_min_images``
    images get no FD row.
    """
    run_dir = Path(run_dir)
    cohort = load_cohort(folder_or_table)
    name = name or (Path(folder_or_table).stem if not isinstance(folder_or_table, pd.DataFrame) else "cohort")
    if vectors is None and not isinstance(folder_or_table, pd.DataFrame) and str(folder_or_table).endswith(".npy"):
        vectors = np.load(folder_or_table)
    if vectors is None:
        if cohort["path"].isna().any():
            raise ValueError("some cohort rows have no image path and no vectors were given")
        vectors = _embed_cohort(cohort["path"].tolist(), run_dir, embed_fn)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(cohort):
        raise ValueError(f"{vectors.shape[0]} cohort vectors for {len(cohort)} cohort rows")
    notes: list[str] = []
    usable = np.isfinite(vectors).all(axis=1)  # the embedder marks unusable images with NaN rows
    if not usable.all():
        notes.append(f"{int((~usable).sum())} cohort image(s) could not be embedded and were left out")
        cohort, vectors = cohort[usable].reset_index(drop=True), vectors[usable]
    if len(cohort) == 0:
        raise ValueError("no usable cohort image")
    z_new = l2_normalize(vectors)

    atlas_all, meta_all = load_atlas(run_dir)
    if atlas_all.shape[1] != z_new.shape[1]:
        raise ValueError(f"cohort vectors have dimension {z_new.shape[1]}, the atlas {atlas_all.shape[1]}")
    keep = ~meta_all["dataset"].astype("string").isin(list(exclude_datasets)).to_numpy()
    atlas_rows = np.flatnonzero(keep)  # positions in fused.npy (holes/density use these)
    z_atlas = l2_normalize(atlas_all[atlas_rows])
    meta = meta_all.iloc[atlas_rows].reset_index(drop=True)
    if len(atlas_rows) <= k:
        raise ValueError(f"the atlas has {len(atlas_rows)} images after exclusions; need more than k = {k}")

    # Novelty: the atlas is the history (year 0), the cohort the new year (year 1).
    from skinmap.analysis.novelty import yearly_novelty

    years = np.r_[np.zeros(len(z_atlas), dtype=np.int64), np.ones(len(z_new), dtype=np.int64)]
    yn = yearly_novelty(
        np.vstack([z_atlas, z_new]), years, k=k, n_bootstrap=n_bootstrap, seed=seed, progress=False
    )
    row = yn.table.set_index("year").loc[1]
    novelty = {key: float(row[key]) for key in ("nu", "nu_null", "ci_low", "ci_high", "ratio")}
    novelty.update(k=k, B=n_bootstrap, n_atlas=int(len(z_atlas)))

    nn = knn_search(z_new, z_atlas, k, normalize=False)
    nearest = nn.indices[:, 0]
    per_image = cohort.copy()
    per_image["novelty"] = yn.per_sample[len(z_atlas):]
    per_image["nearest_uid"] = meta["uid"].to_numpy()[nearest]
    per_image["nearest_dataset"] = meta["dataset"].to_numpy()[nearest]
    if "diagnosis" in meta:
        per_image["nearest_diagnosis"] = meta["diagnosis"].to_numpy()[nearest]
    per_image["nearest_similarity"] = nn.similarities[:, 0].astype(np.float64)
    per_image["near_duplicate"] = per_image["nearest_similarity"] >= near_duplicate_similarity

    # Near duplicates per atlas dataset.
    dup = per_image[per_image["near_duplicate"]]
    sizes = meta["dataset"].value_counts()
    near = (
        dup.assign(atlas_row=nearest[per_image["near_duplicate"].to_numpy()])
        .groupby("nearest_dataset")
        .agg(n_cohort_matched=("cohort_id", "size"), n_dataset_matched=("atlas_row", "nunique"),
             max_similarity=("nearest_similarity", "max"))
        .reset_index()
        .rename(columns={"nearest_dataset": "dataset"})
    )
    near["share_of_cohort"] = near["n_cohort_matched"] / len(cohort)
    near["share_of_dataset"] = near["n_dataset_matched"] / near["dataset"].map(sizes).to_numpy()
    near["nearly_duplicates"] = near["share_of_cohort"] >= duplicate_share
    near = near.sort_values("n_cohort_matched", ascending=False, ignore_index=True)

    # Fréchet distance to every dataset.
    try:
        fd = _frechet_to_datasets(z_new, z_atlas, meta["dataset"].astype("string"), min_images=fd_min_images,
                                  covariance=fd_covariance)
    except (ImportError, AttributeError) as exc:
        notes.append(f"Fréchet distances unavailable ({exc})")
        fd = pd.DataFrame(columns=["dataset", "n_images", "fd"])

    # Holes and sparse regions from the holes chapter, when it has run.
    holes = load_holes(run_dir)
    holes_df = holes_filled(z_new, l2_normalize(atlas_all), holes) if holes else holes_filled(z_new, z_atlas, [])
    if not holes:
        notes.append("no holes/holes.json in the run directory: hole filling not assessed")
    if exclude_datasets and holes:
        notes.append("holes were computed on the full atlas, including the excluded datasets")
    sparse: dict = {}
    density_path = run_dir / "holes" / "density.parquet"
    if density_path.is_file():
        density = pd.read_parquet(density_path)
        region = pd.Series("unknown", index=np.arange(len(atlas_all)), dtype="string")
        if "uid" in density:  # join by id when the holes chapter wrote it: robust to row order
            by_uid = density.set_index(density["uid"].astype(str))["region"].astype("string")
            region[:] = by_uid.reindex(meta_all["uid"].astype(str)).fillna("unknown").to_numpy()
        else:
            region[density["row"].to_numpy()] = density["region"].astype("string").to_numpy()
        region_kept = region.to_numpy()[atlas_rows]
        per_image["nearest_region"] = region_kept[nearest]
        per_image["sparse_neighbour_share"] = (region_kept[nn.indices] == "sparse").mean(axis=1)
        in_sparse = per_image["nearest_region"] == "sparse"
        sparse = {
            "n_in_sparse": int(in_sparse.sum()),
            "share_in_sparse": float(in_sparse.mean()),
            "atlas_sparse_share": float((region_kept == "sparse").mean()),
            "n_sparse_atlas_images_reached": int(np.unique(nn.indices[region_kept[nn.indices] == "sparse"]).size),
        }
    else:
        notes.append("no holes/density.parquet in the run directory: sparse regions not assessed")

    return AssessmentReport(
        cohort_name=name,
        per_image=per_image,
        novelty=novelty,
        frechet=fd,
        holes=holes_df,
        sparse=sparse,
        near_duplicates=near,
        params=dict(k=k, n_bootstrap=n_bootstrap, seed=seed, near_duplicate_similarity=near_duplicate_similarity,
                    duplicate_share=duplicate_share, exclude_datasets=list(exclude_datasets),
                    fd_covariance=fd_covariance),
        notes=notes,
    )


# --------------------------------------------------------------------------- CLI


def _find_project_root() -> Path | None:
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "_quarto.yml").is_file() and (candidate / "params").is_dir():
            return candidate
    return None


def _atlas_defaults(project_root: Path | None, profile: str) -> dict:
    """The atlas chapter's params for this profile (k, B, thresholds), when available."""
    if project_root is None:
        return {}
    try:
        from skinmap.book.params import load_params

        p = load_params(project_root, profile, "atlas")
    except Exception:  # no params file or no schema: fall back to the built-in defaults
        return {}
    return {
        "k": p.k,
        "bootstrap_b": p.assess_bootstrap_b,
        "near_duplicate_similarity": p.near_duplicate_similarity,
        "seed": p.seed,
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m skinmap assess",
        description="Score a proposed cohort against the atlas: novelty with its bootstrap null, "
        "Fréchet distance to every dataset, holes and sparse regions it fills, datasets it nearly duplicates.",
    )
    p.add_argument("cohort", help="a folder of images, a CSV/parquet table with a 'path' column, or vectors .npy")
    p.add_argument("--profile", default="demo", help="profile whose run directory is the atlas (default demo)")
    p.add_argument("--run-dir", help="the atlas run directory (default <project>/runs/<profile>)")
    p.add_argument("--project", help="project root (default: found from the current folder)")
    p.add_argument("--vectors", help="precomputed fused-space vectors (.npy), one row per cohort image")
    p.add_argument("--k", type=int, help="neighbours per image (default: atlas params, else 10)")
    p.add_argument("--bootstrap-b", type=int, help="bootstrap pseudo-cohorts of the null (default 200)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--near-duplicate-similarity", type=float, help="cosine similarity of a near duplicate (0.95)")
    p.add_argument("--exclude-dataset", action="append", default=[], metavar="NAME",
                   help="leave an atlas dataset out (repeatable), e.g. to assess it as if it were new")
    p.add_argument("--out", help="where to write the report (default <run-dir>/assess/<cohort name>)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry: ``python -m skinmap assess <folder or table> [options]``; returns an exit code."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    root = Path(args.project).resolve() if args.project else _find_project_root()
    if args.run_dir:
        run_dir = Path(args.run_dir).resolve()
    elif root is not None:
        run_dir = root / "runs" / args.profile
    else:
        print("error: not inside a SkinMap project; pass --run-dir", file=sys.stderr)
        return 2
    defaults = {"k": 10, "bootstrap_b": 200, "near_duplicate_similarity": 0.95, "seed": 0}
    defaults.update(_atlas_defaults(root, args.profile))
    pick = lambda name: getattr(args, name) if getattr(args, name) is not None else defaults[name]  # noqa: E731
    try:
        report = assess(
            args.cohort,
            run_dir,
            vectors=np.load(args.vectors) if args.vectors else None,
            k=pick("k"),
            n_bootstrap=pick("bootstrap_b"),
            seed=pick("seed"),
            near_duplicate_similarity=pick("near_duplicate_similarity"),
            exclude_datasets=args.exclude_dataset,
        )
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else run_dir / "assess" / report.cohort_name
    report.write(out)
    print(report.to_markdown())
    print(f"Report written to {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
