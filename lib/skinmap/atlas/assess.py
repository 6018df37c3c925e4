"""Acquisition steering: what would a proposed cohort add to the atlas? (paper §9)

:func:`assess` embeds a proposed cohort (a folder of images, a table with a ``path`` column, or
precomputed vectors; :mod:`skinmap.atlas.cohort`) into the fused space and reports its marginal
value against the atlas of a run, in four steps:

1. **novelty** with exactly the yearly-novelty definition (paper eqs. 2-6): the atlas plays the
   history ``P_t`` and the cohort the new year ``I_t``; per-image novelty is the mean cosine
   distance to its k nearest atlas images, and the cohort's mean is compared with the bootstrap
   null of pseudo-cohorts drawn from the atlas (:func:`skinmap.analysis.novelty.yearly_novelty`
   is called as is, so the two chapters can never disagree on the definition);
2. **near duplicates**: cohort images whose nearest atlas image has cosine similarity at least
   ``near_duplicate_similarity``, tallied per atlas dataset; a dataset counts as "nearly
   duplicated" when at least ``duplicate_share`` of the cohort matches it;
3. **Fréchet distance** (eqs. 7-8) from the cohort's Gaussian to every atlas dataset's, with the
   similarity chapter's implementation (:mod:`skinmap.analysis.frechet`);
4. **holes and sparse regions filled**, when the holes chapter has run: a cohort image fills a
   hole when it lies inside the hole's ball (distance to the centre ``c_k`` below the radius
   ``r_k``, eqs. 15-16); it lands in a sparse region when its nearest atlas image is flagged
   ``sparse`` by the holes chapter's density.

Progress (embedding, then each measure) goes to standard error as tqdm bars, shown when it is
a terminal unless ``progress`` says otherwise. The report names the atlas it compared against
(the run's profile, and whether the atlas is synthetic) and places the cohort on the atlas' 2-D
map (similarity-weighted mean position of each image's nearest atlas cases, as the atlas app
does for an upload).

The command line is ``python -m skinmap assess <folder or table>`` (:mod:`skinmap.cli`).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from skinmap import runs
from skinmap.analysis.knn import KnnResult, knn_search, l2_normalize
from skinmap.atlas.cohort import check_vectors, cohort_name, load_cohort, load_cohort_vectors, screen_images
from skinmap.atlas.report import AssessmentReport
from skinmap.config import check_knobs, knob, with_knobs
from skinmap.data.images import MAX_IMAGE_PIXELS

__all__ = ["AssessConfig", "assess", "holes_filled"]

EmbedFn = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class AssessConfig:
    """The knobs of :func:`assess`, their defaults and ranges (declared once, :mod:`skinmap.config`)."""

    n_neighbors: int = knob(10, ge=1, le=1000, description="nearest atlas images per cohort image (k of eq. 2)")
    n_bootstrap: int = knob(200, ge=1, le=100_000, description="bootstrap pseudo-cohorts of the novelty null (eq. 5)")
    seed: int = knob(0, ge=0, description="seed of the bootstrap")
    near_duplicate_similarity: float = knob(0.95, gt=0.0, le=1.0, description="cosine similarity of a near duplicate")
    duplicate_share: float = knob(
        0.5, gt=0.0, le=1.0, description="share of the cohort that makes a dataset 'nearly duplicated'")
    exclude_datasets: tuple[str, ...] = knob(
        (), description="atlas datasets left out first (assess a dataset as if it were new)")
    fd_min_images: int = knob(10, ge=2, description="groups with fewer images get no Fréchet distance")
    fd_covariance: Literal["empirical", "ledoit_wolf", "auto"] = knob(
        "auto", description="covariance estimator of the Fréchet distances (auto: Ledoit-Wolf when n <= d)")
    max_pixels: int = knob(MAX_IMAGE_PIXELS, ge=1, description="cohort images declaring more pixels are left out")
    thumbnails: bool = knob(True, description="show near-duplicate pairs as thumbnails in the HTML report")
    embed_batch: int = knob(32, ge=1, description="images embedded per step of the progress bar")

    def __post_init__(self):
        object.__setattr__(self, "exclude_datasets", tuple(self.exclude_datasets))
        check_knobs(self)

    def params(self) -> dict:
        """The knobs recorded in the report's summary."""
        out = asdict(self)
        out["exclude_datasets"] = list(self.exclude_datasets)
        keep = ("n_neighbors", "n_bootstrap", "seed", "near_duplicate_similarity", "duplicate_share",
                "exclude_datasets", "fd_covariance")
        return {k: out[k] for k in keep}


@dataclass
class _Atlas:
    """The atlas as assessed: every fused row, and the rows kept after exclusions."""

    vectors: np.ndarray            # all rows of the fused embedding (holes/density index these)
    samples: pd.DataFrame          # their metadata
    rows: np.ndarray               # positions kept
    z: np.ndarray = field(init=False)
    meta: pd.DataFrame = field(init=False)

    def __post_init__(self):
        self.z = l2_normalize(self.vectors[self.rows])
        self.meta = self.samples.iloc[self.rows].reset_index(drop=True)


def assess(
    folder_or_table: str | os.PathLike | pd.DataFrame,
    run_dir: str | os.PathLike,
    config: AssessConfig | None = None,
    *,
    vectors: np.ndarray | None = None,
    embed_fn: EmbedFn | None = None,
    name: str | None = None,
    progress: bool | None = None,
    **knobs,
) -> AssessmentReport:
    """Score a proposed cohort against the atlas in ``run_dir`` (module docstring for the measures).

    Parameters
    ----------
    folder_or_table : a folder of images, a CSV/TSV/parquet table, a ``.npy`` of vectors, or a
        DataFrame (:func:`skinmap.atlas.cohort.load_cohort`).
    run_dir : the built run whose atlas is the reference.
    config : the knobs; any :class:`AssessConfig` field may also be given as a keyword
        (``n_neighbors=5``), which overrides ``config``. ``k`` is a deprecated alias of
        ``n_neighbors``.
    vectors : one row per cohort image in the fused space; skips embedding.
    embed_fn : ``embed_fn(paths) -> (n, d)``, default the run's pipeline
        (:func:`skinmap.embed.pipeline.embed_paths`).
    name : the cohort's name in the report (default from the folder or file name).
    progress : tqdm bars on standard error for embedding and each measure (default: when
        standard error is a terminal).
    """
    if "k" in knobs:
        warnings.warn("assess(k=...) is deprecated; use n_neighbors=...", DeprecationWarning, stacklevel=2)
        knobs["n_neighbors"] = knobs.pop("k")
    config = with_knobs(AssessConfig, config, knobs)
    run_dir = Path(run_dir)
    show = sys.stderr.isatty() if progress is None else bool(progress)
    notes: list[str] = []
    cohort, z_new = _cohort_vectors(folder_or_table, run_dir, vectors, embed_fn, config, notes, show)
    atlas = _load_atlas(run_dir, config, z_new.shape[1])

    from tqdm.auto import tqdm

    steps = tqdm(total=5, desc="assess", unit="measure", file=sys.stderr, disable=not show)
    with steps:
        steps.set_postfix_str("novelty (eqs. 2-6)")
        novelty, per_sample = _novelty(atlas.z, z_new, config)
        nn = knn_search(z_new, atlas.z, config.n_neighbors, normalize=False)
        per_image = _nearest_cases(cohort, per_sample, nn, atlas.meta, config)
        steps.update()
        steps.set_postfix_str("near duplicates")
        near = _near_duplicates(per_image, nn.indices[:, 0], atlas.meta, config)
        pairs = _duplicate_pairs(per_image, nn.indices[:, 0], atlas.meta)
        steps.update()
        steps.set_postfix_str("Fréchet distance (eq. 8)")
        fd = _frechet_to_datasets(z_new, atlas.z, atlas.meta["dataset"].astype("string"), config, notes, show)
        steps.update()
        steps.set_postfix_str("holes (eqs. 15-16)")
        holes_df = _holes(run_dir, z_new, atlas, config, notes)
        steps.update()
        steps.set_postfix_str("sparse regions")
        sparse = _sparse_regions(run_dir, per_image, nn, atlas, notes)
        steps.update()
    atlas_map = _place_on_map(run_dir, per_image, nn, atlas)
    from skinmap.atlas.app import run_profile

    return AssessmentReport(
        cohort_name=name or cohort_name(folder_or_table),
        per_image=per_image, novelty=novelty, frechet=fd, holes=holes_df, sparse=sparse,
        near_duplicates=near, params=config.params(), notes=notes,
        atlas_profile=run_profile(run_dir), atlas_synthetic=runs.load_ground_truth(run_dir) is not None,
        atlas_map=atlas_map, duplicate_pairs=pairs if config.thumbnails else None,
        atlas_n_images=int(len(atlas.rows)),
        atlas_diagnoses=set(atlas.meta["diagnosis"].dropna().astype(str)) if "diagnosis" in atlas.meta else None,
    )


def _place_on_map(run_dir: Path, per_image: pd.DataFrame, nn: KnnResult, atlas: _Atlas) -> pd.DataFrame | None:
    """Adds ``map_x``, ``map_y`` (similarity-weighted mean of the nearest atlas cases' positions) to
    ``per_image``; returns the atlas map (``x``, ``y``, ``dataset``) of the kept rows, or None."""
    table = runs.load_map2d(run_dir, missing_ok=True)
    if table is None:
        return None
    pos = table.set_index(table["uid"].astype(str))[["x", "y"]].reindex(atlas.meta["uid"].astype(str))
    xy = pos.to_numpy(dtype=np.float64)
    near_xy = xy[nn.indices]                                  # (n_cohort, k, 2)
    w = np.clip(nn.similarities.astype(np.float64), 1e-6, None) * np.isfinite(near_xy).all(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        placed = np.nansum(near_xy * w[..., None], axis=1) / w.sum(axis=1, keepdims=True)
    per_image["map_x"], per_image["map_y"] = placed[:, 0], placed[:, 1]
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "dataset": atlas.meta["dataset"].astype(str).to_numpy()})


def _duplicate_pairs(per_image: pd.DataFrame, nearest: np.ndarray, meta: pd.DataFrame) -> pd.DataFrame:
    """Each near-duplicate cohort image with its atlas match (paths for thumbnails), most similar first."""
    dup = per_image["near_duplicate"].to_numpy()
    out = pd.DataFrame({
        "cohort_id": per_image.loc[dup, "cohort_id"].to_numpy(),
        "cohort_path": per_image.loc[dup, "path"].to_numpy() if "path" in per_image else None,
        "atlas_uid": meta["uid"].to_numpy()[nearest[dup]],
        "atlas_path": meta["path"].to_numpy()[nearest[dup]] if "path" in meta else None,
        "similarity": per_image.loc[dup, "nearest_similarity"].to_numpy(),
    })
    return out.sort_values("similarity", ascending=False, ignore_index=True)


# --------------------------------------------------------------------------- inputs


def _cohort_vectors(source, run_dir: Path, vectors, embed_fn: EmbedFn | None, config: AssessConfig,
                    notes: list[str], progress: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """The cohort table and its l2-normalised vectors, unusable images left out with a note."""
    cohort = load_cohort(source)
    is_npy = not isinstance(source, pd.DataFrame) and str(source).lower().endswith(".npy")
    if vectors is None and is_npy:
        vectors = load_cohort_vectors(source)
    if vectors is None:
        if cohort["path"].isna().any():
            raise ValueError("some cohort rows have no image path and no vectors were given")
        readable, screen_notes = screen_images(cohort["path"].tolist(), max_pixels=config.max_pixels)
        notes.extend(screen_notes)
        cohort = cohort[readable].reset_index(drop=True)
        if len(cohort) == 0:
            raise ValueError("no usable cohort image: " + "; ".join(screen_notes))
        vectors = _embed_cohort(cohort["path"].tolist(), run_dir, embed_fn, batch=config.embed_batch,
                                progress=progress)
    vectors = check_vectors(vectors, n_rows=len(cohort))
    usable = np.isfinite(vectors).all(axis=1)  # the embedder marks unusable images with NaN rows
    if not usable.all():
        notes.append(f"{int((~usable).sum())} cohort image(s) could not be embedded and were left out")
        cohort, vectors = cohort[usable].reset_index(drop=True), vectors[usable]
    if len(cohort) == 0:
        raise ValueError("no usable cohort image")
    return cohort, l2_normalize(vectors)


def _embed_cohort(paths: Sequence[str], run_dir: Path, embed_fn: EmbedFn | None, *, batch: int = 32,
                  progress: bool = False) -> np.ndarray:
    """The cohort's fused vectors, ``batch`` images per call, with a progress bar over images."""
    from tqdm.auto import tqdm

    if embed_fn is None:
        try:
            from skinmap.embed.pipeline import FusedEmbedder
        except ImportError as exc:  # the embedding pipeline is an optional, heavier layer
            raise RuntimeError(
                "cannot embed images: skinmap.embed.pipeline is unavailable "
                f"({exc}); pass precomputed vectors instead (--vectors FILE.npy)"
            ) from exc
        # Models load once; the feature cache of new images stays out of the embedding chapter's folder.
        embed_fn = FusedEmbedder(runs.chapter_dir(run_dir, "embedding"),
                                 runs.folder_path(run_dir, "assess.embed_cache"))
    paths = list(paths)
    chunks = []
    with tqdm(total=len(paths), desc="embedding", unit="image", file=sys.stderr, disable=not progress) as bar:
        for start in range(0, len(paths), batch):
            part = paths[start:start + batch]
            chunks.append(np.asarray(embed_fn(part), dtype=np.float32).reshape(len(part), -1))
            bar.update(len(part))
    return np.vstack(chunks) if chunks else np.empty((0, 0), np.float32)


def _load_atlas(run_dir: Path, config: AssessConfig, dim: int) -> _Atlas:
    loaded = runs.load_atlas(run_dir)
    if loaded.vectors.shape[1] != dim:
        raise ValueError(f"cohort vectors have dimension {dim}, the atlas {loaded.vectors.shape[1]}")
    keep = ~loaded.samples["dataset"].astype("string").isin(list(config.exclude_datasets)).to_numpy()
    atlas = _Atlas(loaded.vectors, loaded.samples, np.flatnonzero(keep))
    if len(atlas.rows) <= config.n_neighbors:
        raise ValueError(f"the atlas has {len(atlas.rows)} images after exclusions; "
                         f"need more than n_neighbors = {config.n_neighbors}")
    return atlas


# --------------------------------------------------------------------------- step 1: novelty


def _novelty(z_atlas: np.ndarray, z_new: np.ndarray, config: AssessConfig) -> tuple[dict, np.ndarray]:
    """Eqs. 2-6 with the atlas as the history (year 0) and the cohort as the new year (year 1)."""
    from skinmap.analysis.novelty import yearly_novelty

    years = np.r_[np.zeros(len(z_atlas), dtype=np.int64), np.ones(len(z_new), dtype=np.int64)]
    yn = yearly_novelty(np.vstack([z_atlas, z_new]), years, n_neighbors=config.n_neighbors,
                        n_bootstrap=config.n_bootstrap, seed=config.seed, progress=False)
    row = yn.table.set_index("year").loc[1]
    novelty = {key: float(row[key]) for key in ("nu", "nu_null", "ci_low", "ci_high", "ratio")}
    novelty.update(n_neighbors=config.n_neighbors, n_bootstrap=config.n_bootstrap, n_atlas=int(len(z_atlas)))
    return novelty, yn.per_sample[len(z_atlas):]


# --------------------------------------------------------------------------- step 2: near duplicates


def _nearest_cases(cohort: pd.DataFrame, novelty: np.ndarray, nn: KnnResult, meta: pd.DataFrame,
                   config: AssessConfig) -> pd.DataFrame:
    """Per cohort image: its novelty and its nearest atlas case (id, dataset, diagnosis, similarity)."""
    nearest = nn.indices[:, 0]
    per_image = cohort.copy()
    per_image["novelty"] = novelty
    per_image["nearest_uid"] = meta["uid"].to_numpy()[nearest]
    per_image["nearest_dataset"] = meta["dataset"].to_numpy()[nearest]
    if "diagnosis" in meta:
        per_image["nearest_diagnosis"] = meta["diagnosis"].to_numpy()[nearest]
    per_image["nearest_similarity"] = nn.similarities[:, 0].astype(np.float64)
    per_image["near_duplicate"] = per_image["nearest_similarity"] >= config.near_duplicate_similarity
    return per_image


def _near_duplicates(per_image: pd.DataFrame, nearest: np.ndarray, meta: pd.DataFrame,
                     config: AssessConfig) -> pd.DataFrame:
    """Near-duplicate matches tallied per atlas dataset, largest first."""
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
    near["share_of_cohort"] = near["n_cohort_matched"] / len(per_image)
    near["share_of_dataset"] = near["n_dataset_matched"] / near["dataset"].map(sizes).to_numpy()
    near["nearly_duplicates"] = near["share_of_cohort"] >= config.duplicate_share
    return near.sort_values("n_cohort_matched", ascending=False, ignore_index=True)


# --------------------------------------------------------------------------- step 3: Fréchet distance


def _frechet_to_datasets(cohort: np.ndarray, atlas: np.ndarray, datasets: pd.Series, config: AssessConfig,
                         notes: list[str], progress: bool = False) -> pd.DataFrame:
    """FD (eq. 8) from the cohort's Gaussian to each atlas dataset's, via the similarity chapter."""
    empty = pd.DataFrame(columns=["dataset", "n_images", "fd"])
    try:
        from skinmap.analysis import frechet
    except ImportError as exc:
        notes.append(f"Fréchet distances unavailable ({exc})")
        return empty
    names = [d for d, n in datasets.value_counts().items() if n >= config.fd_min_images]
    if cohort.shape[0] < config.fd_min_images or not names:
        return empty
    cohort_stats = frechet.gaussian_stats(cohort, covariance=config.fd_covariance)
    from tqdm.auto import tqdm

    rows = []
    for name in tqdm(sorted(names), desc="Fréchet distance", unit="dataset", file=sys.stderr,
                     disable=not progress, leave=False):
        mask = (datasets == name).to_numpy()
        other = frechet.gaussian_stats(atlas[mask], covariance=config.fd_covariance)
        rows.append({"dataset": name, "n_images": int(mask.sum()), "fd": float(frechet.frechet_distance(cohort_stats, other))})
    return pd.DataFrame(rows).sort_values("fd", ignore_index=True)


# --------------------------------------------------------------------------- step 4: holes, sparse regions


def holes_filled(cohort: np.ndarray, atlas: np.ndarray, holes: Sequence[dict]) -> pd.DataFrame:
    """How many cohort images fall inside each hole's ball (paper eqs. 15-16).

    The centre ``c_k`` and radius ``r_k`` are taken from the hole record when they match the
    space's dimension, otherwise recomputed from the hole's cycle rows (centre = mean of the
    boundary points, radius = their median distance to it). Returns one row per hole: ``rank``,
    ``radius``, ``n_inside``, ``min_distance_in_radii`` (closest cohort image to the centre).
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
        if radius is None or not np.isfinite(radius):
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


def _holes(run_dir: Path, z_new: np.ndarray, atlas: _Atlas, config: AssessConfig, notes: list[str]) -> pd.DataFrame:
    holes = runs.load_holes(run_dir, missing_ok=True) or []
    if not holes:
        notes.append(f"no {runs.EXPORTS['holes.holes']} in the run directory: hole filling not assessed")
        return holes_filled(z_new, atlas.z, [])
    if config.exclude_datasets:
        notes.append("holes were computed on the full atlas, including the excluded datasets")
    # Hole records index the full fused embedding, exclusions or not.
    return holes_filled(z_new, l2_normalize(atlas.vectors), holes)


def _sparse_regions(run_dir: Path, per_image: pd.DataFrame, nn: KnnResult, atlas: _Atlas,
                    notes: list[str]) -> dict:
    """Adds ``nearest_region`` and ``sparse_neighbour_share`` to ``per_image``; returns the tallies."""
    density = runs.load_density(run_dir, missing_ok=True)
    if density is None:
        notes.append(f"no {runs.EXPORTS['holes.density']} in the run directory: sparse regions not assessed")
        return {}
    region = pd.Series("unknown", index=np.arange(len(atlas.vectors)), dtype="string")
    if "uid" in density:  # join by id when the holes chapter wrote it: robust to row order
        by_uid = density.set_index(density["uid"].astype(str))["region"].astype("string")
        region[:] = by_uid.reindex(atlas.samples["uid"].astype(str)).fillna("unknown").to_numpy()
    else:
        region[density["row"].to_numpy()] = density["region"].astype("string").to_numpy()
    region_kept = region.to_numpy()[atlas.rows]
    per_image["nearest_region"] = region_kept[nn.indices[:, 0]]
    per_image["sparse_neighbour_share"] = (region_kept[nn.indices] == "sparse").mean(axis=1)
    in_sparse = per_image["nearest_region"] == "sparse"
    return {
        "n_in_sparse": int(in_sparse.sum()),
        "share_in_sparse": float(in_sparse.mean()),
        "atlas_sparse_share": float((region_kept == "sparse").mean()),
        "n_sparse_atlas_images_reached": int(np.unique(nn.indices[region_kept[nn.indices] == "sparse"]).size),
    }
