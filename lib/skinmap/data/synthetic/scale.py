"""A paper-scale synthetic vector atlas (issue 19): 1,135,082 x 1,024 float32 rows streamed to disk.

:func:`write_scale_atlas` writes, in bounded memory (``chunk_rows`` rows at a time), a
memory-mapped ``vectors.npy`` (``np.lib.format.open_memmap``), an ids/metadata table
``rows.parquet`` and the known answers ``planted.json`` (+ ``planted_geometry.npz``). No images:
this atlas feeds the analysis calls of the chapters (novelty, similarity, density, holes,
retrieval, 2-D map) at the paper's size, for ``tests/benchmarks/bench_scale.py``.

Corpus. The 29 datasets of ``methods.md`` section 1 with their image counts scaled to ``n_rows``
by largest-remainder apportionment (:func:`allocate_rows`; the table sums to 1,136,045, more than
the paper's 1,135,082 unique images, so at the default ``n_rows`` the counts are the table's scaled
by 0.99915). Release years (:data:`RELEASE_YEARS`) are plausible publication years chosen for
this benchmark (challenge year for ISIC; year of the describing paper or public release for the
others, e.g. PH2 2013, MED-NODE 2015, HAM10000 2018, Fitzpatrick17k 2021, DDI 2022, SCIN 2024,
Derm1M 2025); they are not taken from the SkinMap paper, which does not list them.

Vectors. A Gaussian mixture in a ``latent_dim``-d latent space (``n_clusters`` base clusters plus
``n_novel_clusters`` used only by the novel year), mapped into ``dim`` dimensions by a fixed random
matrix with orthonormal columns ``Q`` plus isotropic noise (``noise_sd`` per coordinate). A dataset
is its cluster weights (Dirichlet draws), so datasets differ only by where they put their mass.
Images of one lesion share part of their within-cluster offset (``lesion_share``); lesions are
grouped into patients. Every cluster carries a diagnosis label (retrieval relevance).

Planted structure (``planted.json``):

- ``resampled_year`` (Fitzpatrick17k's year, alone in it): its cohort is drawn from the
  row-weighted mixture of all earlier datasets, i.e. the history's own distribution, so the
  novelty ratio ``nu_t / nu°_t`` is about 1;
- ``novel_year`` (Derm1M and DermaCon-IN): its cohort lies in clusters no earlier dataset uses:
  ratio clearly above 1;
- ``near_copy_pair`` (CAN5600, CAN2000): every CAN2000 row is a CAN5600 row plus tiny noise
  (``copy_noise_sd``), so the pair has the smallest Fréchet distance of all pairs;
- ``hole``: ``hole_fraction`` of the rows (the tail of ISIC-2024) on a circle of radius
  ``hole_radius`` in a 2-D plane orthogonal to the latent map, around a centre far from every
  cluster, so the disc inside the loop holds no row.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "DATASET_SIZES",
    "RELEASE_YEARS",
    "ScaleAtlasPaths",
    "ScaleAtlasConfig",
    "allocate_rows",
    "write_scale_atlas",
    "load_scale_atlas",
]

PAPER_N_ROWS = 1_135_082

#: The paper's 29 datasets and image counts (methods.md section 1), in the paper's table order.
DATASET_SIZES: dict[str, int] = {
    "ISIC-2024": 401_059, "Derm1M": 412_038, "PubMed": 126_284, "ISIC-2020": 44_108,
    "DermNet": 30_324, "ISIC-2019": 18_946, "Fitzpatrick17k": 16_574, "HAM10000": 11_526,
    "Daffodil": 9_548, "MSKCC": 8_984, "Altmeyers": 7_673, "SD-128": 5_619, "CAN5600": 5_619,
    "DermaCon-IN": 5_450, "SCIN": 5_033, "PASSION": 4_145, "SkinCAP": 4_000, "ISIC-2018": 2_805,
    "DermaCompass": 2_450, "PAD-UFES-20": 2_298, "Derm7pt": 2_022, "CAN2000": 2_006,
    "ISIC-others": 1_898, "ISIC-2017": 1_696, "HIBA": 1_635, "ISIC-2016": 1_279, "DDI": 656,
    "PH2": 200, "MED-NODE": 170,
}

#: Plausible release years chosen for this benchmark (see the module docstring), not the paper's.
RELEASE_YEARS: dict[str, int] = {
    "PH2": 2013, "MED-NODE": 2015, "ISIC-2016": 2016, "SD-128": 2016, "ISIC-2017": 2017,
    "ISIC-2018": 2018, "HAM10000": 2018, "Derm7pt": 2019, "ISIC-2019": 2019, "MSKCC": 2019,
    "DermNet": 2019, "ISIC-2020": 2020, "PAD-UFES-20": 2020, "ISIC-others": 2020,
    "Fitzpatrick17k": 2021, "DDI": 2022, "HIBA": 2023, "CAN5600": 2023, "CAN2000": 2023,
    "Daffodil": 2023, "Altmeyers": 2023, "SCIN": 2024, "PASSION": 2024, "SkinCAP": 2024,
    "DermaCompass": 2024, "ISIC-2024": 2024, "PubMed": 2024, "Derm1M": 2025, "DermaCon-IN": 2025,
}

RESAMPLED_DATASET = "Fitzpatrick17k"
NOVEL_YEAR = 2025
NEAR_COPY_PAIR = ("CAN5600", "CAN2000")  # (original, copy); the original comes first in row order
HOLE_DATASET = "ISIC-2024"
HOLE_DIAGNOSIS = "nail disorder"


@dataclass(frozen=True)
class ScaleAtlasConfig:
    """Shape of the generated mixture (defaults are the benchmark's)."""

    latent_dim: int = 48
    n_clusters: int = 40
    n_novel_clusters: int = 8
    n_diagnoses: int = 24
    cluster_scale: float = 1.0      # sd of cluster centres per latent coordinate
    spread: float = 0.35            # within-cluster sd per latent coordinate
    lesion_share: float = 0.2       # share of the within-cluster variance common to one lesion
    noise_sd: float = 0.02          # isotropic noise per ambient coordinate
    dirichlet_alpha: float = 0.3    # concentration of each dataset's cluster weights
    copy_noise_sd: float = 0.002    # per-coordinate noise of the near copies
    hole_fraction: float = 0.01
    hole_radius: float = 6.0
    hole_offset: float = 14.0       # norm of the hole centre in latent space
    min_rows: int = 2               # every dataset gets at least this many rows


@dataclass(frozen=True)
class ScaleAtlasPaths:
    """Files written by :func:`write_scale_atlas`."""

    vectors: Path   # (n_rows, dim) float32 .npy, open with np.load(..., mmap_mode="r")
    rows: Path      # parquet: row, uid, dataset, release_year, lesion_id, patient_id, diagnosis, cluster
    planted: Path   # planted.json
    geometry: Path  # planted_geometry.npz: hole_centre (dim,), hole_plane (2, dim)


def allocate_rows(n_rows: int, *, min_rows: int = 2) -> dict[str, int]:
    """Rows per dataset: the paper's sizes scaled to ``n_rows`` (largest-remainder apportionment).

    Datasets below ``min_rows`` are raised to it, taking the rows from the largest datasets, so
    the counts always sum to ``n_rows``. At ``n_rows = sum(DATASET_SIZES.values())`` they are the
    table's.
    """
    names = list(DATASET_SIZES)
    if n_rows < min_rows * len(names):
        raise ValueError(f"n_rows={n_rows} is below {min_rows} rows for each of {len(names)} datasets")
    sizes = np.array([DATASET_SIZES[k] for k in names], dtype=np.int64)
    quota = sizes * n_rows / sizes.sum()
    counts = np.floor(quota).astype(np.int64)
    short = n_rows - counts.sum()
    order = np.lexsort((np.arange(len(names)), -(quota - counts)))  # largest remainder, ties by order
    counts[order[:short]] += 1
    lift = np.maximum(min_rows - counts, 0)
    counts += lift
    for _ in range(int(lift.sum())):
        counts[np.argmax(counts)] -= 1
    return {k: int(c) for k, c in zip(names, counts)}


def _orthonormal(rng: np.random.Generator, dim: int, n_cols: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((dim, n_cols)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


def _year_order(names: list[str]) -> list[str]:
    """Row order: datasets by release year, then by the paper's table order (stable)."""
    return sorted(names, key=lambda k: RELEASE_YEARS[k])


def _dataset_weights(rng: np.random.Generator, order: list[str], counts: dict[str, int],
                     cfg: ScaleAtlasConfig) -> dict[str, np.ndarray]:
    k_all = cfg.n_clusters + cfg.n_novel_clusters
    weights: dict[str, np.ndarray] = {}
    for name in order:
        w = np.zeros(k_all)
        if RELEASE_YEARS[name] == NOVEL_YEAR:
            w[cfg.n_clusters:] = rng.dirichlet(np.full(cfg.n_novel_clusters, cfg.dirichlet_alpha))
        else:
            w[:cfg.n_clusters] = rng.dirichlet(np.full(cfg.n_clusters, cfg.dirichlet_alpha))
        weights[name] = w
    # The resampled year: the row-weighted mixture of every earlier dataset (the history's law).
    year = RELEASE_YEARS[RESAMPLED_DATASET]
    earlier = [k for k in order if RELEASE_YEARS[k] < year]
    mix = sum(counts[k] * weights[k] for k in earlier)
    weights[RESAMPLED_DATASET] = mix / mix.sum()
    weights[NEAR_COPY_PAIR[1]] = weights[NEAR_COPY_PAIR[0]]
    return weights


def write_scale_atlas(
    out_dir: str | Path,
    n_rows: int = PAPER_N_ROWS,
    dim: int = 1024,
    *,
    seed: int = 0,
    chunk_rows: int = 65_536,
    config: ScaleAtlasConfig | None = None,
    progress: bool = False,
) -> ScaleAtlasPaths:
    """Stream a synthetic atlas of ``n_rows`` x ``dim`` float32 vectors to ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Created if missing; receives ``vectors.npy``, ``rows.parquet``, ``planted.json`` and
        ``planted_geometry.npz``.
    n_rows, dim : int
        Shape of the vector file ``(n_rows, dim)``.
    seed : int
        Same seed and arguments give byte-identical vectors and tables.
    chunk_rows : int
        At most this many rows are generated and held in memory at a time (float32).
    config : ScaleAtlasConfig, optional
        Mixture shape and planted-structure sizes.
    progress : bool
        tqdm bar on stderr over chunks.

    Returns
    -------
    ScaleAtlasPaths
    """
    cfg = config or ScaleAtlasConfig()
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be >= 1")
    if dim < cfg.latent_dim + 2:
        raise ValueError(f"dim={dim} must exceed latent_dim + 2 = {cfg.latent_dim + 2}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    counts = allocate_rows(n_rows, min_rows=cfg.min_rows)
    order = _year_order(list(DATASET_SIZES))
    k_all = cfg.n_clusters + cfg.n_novel_clusters
    L = cfg.latent_dim

    # Fixed geometry: the map Q (latent + the 2-D hole plane), cluster centres, the hole centre.
    q = _orthonormal(rng, dim, L + 2)
    centres = (cfg.cluster_scale * rng.standard_normal((k_all, L))).astype(np.float32)
    hole_dir = rng.standard_normal(L)
    hole_latent = (cfg.hole_offset * hole_dir / np.linalg.norm(hole_dir)).astype(np.float32)
    cluster_dx = rng.permutation(np.arange(k_all) % cfg.n_diagnoses)
    weights = _dataset_weights(rng, order, counts, cfg)

    starts, start = {}, 0
    for name in order:
        starts[name] = start
        start += counts[name]
    n_hole = min(max(int(round(cfg.hole_fraction * n_rows)), 8), counts[HOLE_DATASET])
    hole_start = starts[HOLE_DATASET] + counts[HOLE_DATASET] - n_hole

    vectors = np.lib.format.open_memmap(out / "vectors.npy", mode="w+", dtype=np.float32, shape=(n_rows, dim))
    tables = []
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=n_rows, desc="scale atlas", unit="row", file=None)
    lesion_base = 0
    a_name, b_name = NEAR_COPY_PAIR
    for d_index, name in enumerate(order):
        n_d, s_d = counts[name], starts[name]
        d_rng = np.random.default_rng([seed, 1, d_index])
        for c0 in range(0, n_d, chunk_rows):
            m = min(chunk_rows, n_d - c0)
            rows = np.arange(s_d + c0, s_d + c0 + m)
            noise_sd = cfg.noise_sd
            if name == b_name:
                # near copies: rows of the original plus tiny noise (the original precedes in row order)
                src = np.sort(d_rng.choice(counts[a_name], size=m, replace=m > counts[a_name])) + starts[a_name]
                block = np.asarray(vectors[src], dtype=np.float32)
                block += d_rng.standard_normal((m, dim), dtype=np.float32) * np.float32(cfg.copy_noise_sd)
                src_meta = pd.concat(tables)  # small: only rows written so far
                clusters = src_meta["cluster"].to_numpy()[src]
                lesion = lesion_base + np.arange(m)
            else:
                clusters = d_rng.choice(k_all, size=m, p=weights[name]).astype(np.int64)
                # lesions: runs of 1-3 consecutive images share part of their offset
                run = d_rng.integers(1, 4, size=m)
                lesion_local = np.repeat(np.arange(m), run)[:m]
                lesion = lesion_base + lesion_local
                clusters = clusters[lesion_local]  # one cluster per lesion
                shared = d_rng.standard_normal((m, L), dtype=np.float32)[lesion_local]
                own = d_rng.standard_normal((m, L), dtype=np.float32)
                offs = cfg.spread * (np.sqrt(cfg.lesion_share) * shared + np.sqrt(1 - cfg.lesion_share) * own)
                latent = centres[clusters] + offs.astype(np.float32)
                block = latent @ q[:, :L].T
                in_hole = (rows >= hole_start) & (rows < hole_start + n_hole)
                if in_hole.any():
                    theta = 2 * np.pi * (rows[in_hole] - hole_start) / n_hole + d_rng.uniform(0, 1e-3, in_hole.sum())
                    ring = hole_latent @ q[:, :L].T + cfg.hole_radius * (
                        np.cos(theta)[:, None] * q[:, L] + np.sin(theta)[:, None] * q[:, L + 1])
                    block[in_hole] = ring.astype(np.float32)
                    clusters = np.where(in_hole, -1, clusters)
                block += d_rng.standard_normal((m, dim), dtype=np.float32) * np.float32(noise_sd)
            vectors[rows[0]:rows[-1] + 1] = block
            lesion_base = int(lesion.max()) + 1
            dx = np.where(clusters >= 0, cluster_dx[np.maximum(clusters, 0)], -1)
            tables.append(pd.DataFrame({
                "row": rows.astype(np.int64),
                "cluster": clusters.astype(np.int16),
                "diagnosis_code": dx.astype(np.int16),
                "lesion_id": lesion.astype(np.int64),
            }))
            del block
            if bar is not None:
                bar.update(m)
    if bar is not None:
        bar.close()
    vectors.flush()
    del vectors

    meta = pd.concat(tables, ignore_index=True)
    ds = np.repeat(np.array(order, dtype=object), [counts[k] for k in order])
    meta.insert(1, "uid", pd.array([f"scale-{i:07d}" for i in range(n_rows)], dtype="string"))
    meta.insert(2, "dataset", pd.Categorical(ds, categories=list(DATASET_SIZES)))
    meta.insert(3, "release_year", np.repeat([RELEASE_YEARS[k] for k in order], [counts[k] for k in order]).astype(np.int16))
    meta["patient_id"] = (meta["lesion_id"] // 2).astype(np.int64)  # two consecutive lesions per patient
    dx_names = np.array([f"dx-{i:02d}" for i in range(cfg.n_diagnoses)] + [HOLE_DIAGNOSIS], dtype=object)
    meta["diagnosis"] = pd.Categorical(dx_names[meta["diagnosis_code"].to_numpy()])  # -1 -> hole label
    meta = meta.drop(columns="diagnosis_code")
    meta.to_parquet(out / "rows.parquet", index=False)

    centre = hole_latent @ q[:, :L].T
    plane = q[:, L:L + 2].T
    np.savez(out / "planted_geometry.npz", hole_centre=centre.astype(np.float32), hole_plane=plane.astype(np.float32))
    norm = float(np.hypot(cfg.hole_offset, cfg.hole_radius))
    planted = {
        "n_rows": n_rows, "dim": dim, "seed": seed, "chunk_rows": chunk_rows,
        "config": asdict(cfg),
        "counts": {k: counts[k] for k in order},
        "release_years": {k: RELEASE_YEARS[k] for k in order},
        "release_years_note": "plausible publication years chosen for the benchmark, not the paper's",
        "resampled_year": {"year": RELEASE_YEARS[RESAMPLED_DATASET], "datasets": [RESAMPLED_DATASET],
                           "expected": "novelty ratio nu_t / nu0_t about 1"},
        "novel_year": {"year": NOVEL_YEAR, "datasets": [k for k in order if RELEASE_YEARS[k] == NOVEL_YEAR],
                       "expected": "novelty ratio clearly above 1"},
        "near_copy_pair": {"datasets": list(NEAR_COPY_PAIR),
                           "expected": "smallest Frechet distance of all dataset pairs"},
        "hole": {"dataset": HOLE_DATASET, "row_start": int(hole_start), "row_stop": int(hole_start + n_hole),
                 "n_rows": int(n_hole), "diagnosis": HOLE_DIAGNOSIS,
                 "radius": cfg.hole_radius, "radius_normalised": cfg.hole_radius / norm,
                 "expected": "an H1 hole whose cycle lies on these rows; no row near the centre",
                 "geometry": "planted_geometry.npz (hole_centre, hole_plane; before l2-normalisation)"},
    }
    (out / "planted.json").write_text(json.dumps(planted, indent=1))
    return ScaleAtlasPaths(out / "vectors.npy", out / "rows.parquet", out / "planted.json", out / "planted_geometry.npz")


def load_scale_atlas(out_dir: str | Path) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """``(vectors memmap (n, dim), rows table, planted dict)`` of a written atlas (read-only memmap)."""
    out = Path(out_dir)
    return (np.load(out / "vectors.npy", mmap_mode="r"), pd.read_parquet(out / "rows.parquet"),
            json.loads((out / "planted.json").read_text()))
