"""The run directory: the one owner of its file names, readers and writers.

A build writes ``runs/<profile>/``: one folder per chapter holding that chapter's exports, plus the
runner's bookkeeping (``manifest.json``, ``_state/``, ``notebooks/``). Every file name of that
layout is registered here, once, and nothing else in the library or the chapters spells one:

* :data:`EXPORTS` maps an export key (``"<chapter>.<name>"``) to its path template relative to
  the run directory, e.g. ``"embedding.member" -> "embedding/members/{member}.npy"``;
* :data:`FOLDERS` does the same for folders (caches, the synthetic atlas root, assess reports);
* :data:`RUN_FILES` holds the runner's bookkeeping files.

:func:`export_path` resolves a key, :func:`write_export` writes an object atomically (through
:mod:`skinmap.io`, dispatching on the suffix) and :func:`read_export` reads one back. The typed
readers (:func:`load_catalog`, :func:`load_atlas`, :func:`load_members`, ...) are what chapters and
front ends call. Tables are joined by ``uid``; a join that would lose or duplicate rows is a
``ValueError`` naming the files and the counts, never a silent drop: a new catalog is never paired
with an old embedding. A missing export is a ``FileNotFoundError`` naming the file and the chapter
that writes it.
"""

from __future__ import annotations

import os
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from skinmap import io

__all__ = [
    "EXPORTS",
    "FOLDERS",
    "RUN_FILES",
    "Atlas",
    "chapter_dir",
    "export_path",
    "chapter_export_path",
    "export_name",
    "folder_path",
    "run_file",
    "write_export",
    "read_export",
    "load_catalog",
    "load_ground_truth",
    "load_synthetic_latent",
    "load_embedding",
    "load_roles",
    "embedding_sources",
    "load_vectors",
    "load_atlas",
    "load_members",
    "load_map2d",
    "load_imputed",
    "load_holes",
    "load_density",
    "load_duplicate_clusters",
    "load_groups",
]

#: Every chapter export, keyed ``"<chapter>.<name>"``, as a path template relative to the run
#: directory. ``{field}`` placeholders are filled by the keyword arguments of :func:`export_path`.
EXPORTS: dict[str, str] = {
    # data
    "data.catalog": "data/catalog.parquet",
    "data.summary": "data/summary.csv",
    "data.issues": "data/issues.csv",
    "data.report": "data/report.json",
    "data.ground_truth": "data/ground_truth.json",
    "data.synthetic_latent": "data/synthetic_latent.npy",
    # quality
    "quality.split_leakage": "quality/split_leakage.csv",
    "quality.corrected_splits": "quality/corrected_splits.csv",
    "quality.corrected_split_summary": "quality/corrected_split_summary.csv",
    "quality.duplicate_evaluation": "quality/duplicate_evaluation.csv",
    "quality.duplicate_source_comparison": "quality/duplicate_source_comparison.csv",
    "quality.review_template": "quality/review_template.csv",
    "quality.near_duplicates": "quality/near_duplicates.csv",
    "quality.clusters": "quality/clusters.csv",
    "quality.cross_dataset_by_id": "quality/cross_dataset_by_id.csv",
    "quality.cross_dataset_by_embedding": "quality/cross_dataset_by_embedding.csv",
    "quality.offtopic_ranking": "quality/offtopic_ranking.csv",
    "quality.cleaned": "quality/cleaned.parquet",
    "quality.cleaned_split": "quality/cleaned_split.csv",
    "quality.resolution_probe": "quality/resolution_probe.csv",
    # the critique's own units (issue 16 s1): images_per_lesion, crossing_pairs, top_pair_review, ...
    "quality.critique": "quality/critique/{table}.csv",
    # the cleaned datasets: one row per image (dataset, kept, reason, split, split_clean) and their datasheet
    "quality.cleaned_rows": "quality/cleaned_rows.csv",
    "quality.datasheet": "quality/datasheet.json",
    # `make bench-quality` (tests/benchmarks/bench_quality.py --run-dir): our detectors against the peers, one row per
    # tool, set and transform (tool, licence, set, transform, precision, recall, n, note); the chapter shows it
    # embedding
    "embedding.roles": "embedding/roles.parquet",
    "embedding.fused": "embedding/fused.npy",
    "embedding.fused_ids": "embedding/fused_ids.parquet",
    "embedding.member": "embedding/members/{member}.npy",
    "embedding.member_ids": "embedding/members/{member}_ids.parquet",
    "embedding.text": "embedding/text/{member}.npy",
    "embedding.training_curves": "embedding/training_curves.parquet",
    "embedding.fusion_curve": "embedding/fusion_curve.parquet",
    "embedding.map2d": "embedding/map2d.parquet",
    "embedding.knn_overlap": "embedding/knn_overlap.csv",
    "embedding.probe_diagnosis": "embedding/probe_diagnosis.csv",
    "embedding.zero_shot": "embedding/zero_shot.csv",
    "embedding.member_retrieval": "embedding/member_retrieval.csv",
    "embedding.member_retrieval_curves": "embedding/member_retrieval_curves.parquet",
    "embedding.probe_attributes": "embedding/probe_attributes.csv",
    "embedding.report": "embedding/report.json",
    "embedding.models_manifest": "embedding/models/manifest.json",
    "embedding.model": "embedding/models/{member}.pt",
    "embedding.fusion_model": "embedding/models/fusion.pt",
    # imputation
    "imputation.probe_scores": "imputation/probe_scores.csv",
    "imputation.imputed": "imputation/imputed.parquet",
    "imputation.coverage": "imputation/coverage.csv",
    # demographics
    "demographics.distributions": "demographics/distributions.csv",
    "demographics.baselines": "demographics/baselines.csv",
    "demographics.claim_shares": "demographics/claim_shares.csv",
    "demographics.icd_coverage_by_fst": "demographics/icd_coverage_by_fst.csv",
    # novelty
    "novelty.yearly": "novelty/yearly_novelty.csv",
    "novelty.per_sample": "novelty/per_sample_novelty.parquet",
    "novelty.cross_year_duplicates": "novelty/cross_year_duplicates.csv",
    "novelty.by_stratum": "novelty/novelty_by_{stratum}.csv",
    "novelty.by_icd10_block_year": "novelty/novelty_by_icd10_block_year.csv",
    "novelty.vs_prevalence": "novelty/novelty_vs_prevalence.csv",
    "novelty.icd_coverage_by_fst": "novelty/icd_coverage_by_fst.csv",
    "novelty.orphan_codes": "novelty/orphan_codes.csv",
    "novelty.search_error": "novelty/search_error.csv",
    # similarity
    "similarity.frechet": "similarity/frechet.csv",
    "similarity.frechet_size_fair": "similarity/frechet_size_fair.csv",
    "similarity.size_fair_curve": "similarity/size_fair_curve.csv",
    "similarity.uniqueness": "similarity/uniqueness.csv",
    "similarity.high_overlap_pairs": "similarity/high_overlap_pairs.csv",
    "similarity.dataset_gaussians": "similarity/dataset_gaussians.csv",
    "similarity.known_pairs": "similarity/known_pairs.csv",
    # holes
    "holes.density": "holes/density.parquet",
    "holes.holes": "holes/holes.json",
    "holes.terms": "holes/hole-{rank}-terms.parquet",
    "holes.null_draws": "holes/null_draws.csv",
    "holes.stability": "holes/stability.csv",
    "holes.planted_overlap": "holes/planted_overlap.parquet",
    "holes.planted_overlap_latent": "holes/planted_overlap_latent.parquet",
    "holes.explorer": "holes/hole_explorer.html",
    # claims ledger (appendix)
    "claims.ledger": "claims/ledger.csv",
    # atlas (the assess report files live in a report folder, see ``FOLDERS["atlas.assess"]``)
    "atlas.retrieval": "atlas/retrieval.csv",
    "atlas.retrieval_curves": "atlas/retrieval_curves.csv",
    "atlas.retrieval_differences": "atlas/retrieval_differences.csv",
    "assess.per_image": "atlas/assess/{cohort}/per_image.csv",
    "assess.frechet": "atlas/assess/{cohort}/frechet.csv",
    "assess.holes": "atlas/assess/{cohort}/holes.csv",
    "assess.near_duplicates": "atlas/assess/{cohort}/near_duplicates.csv",
    "assess.summary": "atlas/assess/{cohort}/summary.json",
    "assess.report": "atlas/assess/{cohort}/report.md",
    "assess.report_html": "atlas/assess/{cohort}/report.html",
    # robustness
    "robustness.scores": "robustness/scores.csv",
    "robustness.measurements": "robustness/measurements.csv",
    "robustness.agreement": "robustness/agreement.csv",
    "robustness.verdicts": "robustness/verdicts.csv",
    "robustness.fusion_gain": "robustness/fusion_gain.csv",
}

#: Folders of the run directory that are not single exports. ``cache`` folders hold reusable work
#: (never fingerprinted, never cleaned, safe to delete).
FOLDERS: dict[str, str] = {
    "data.synthetic_atlas": "data/atlas",
    "embedding.members": "embedding/members",
    "embedding.models": "embedding/models",
    "embedding.cache": "embedding/cache",
    "quality.cache": "quality/cache",
    "atlas.assess": "atlas/assess/{cohort}",
    "robustness.cache": "robustness/cache",
    "atlas.app_cache": "atlas/app_cache",
    "assess.report": "assess/{cohort}",
    "assess.embed_cache": "assess/embed_cache",
}

#: The runner's bookkeeping files (not chapter exports).
RUN_FILES: dict[str, str] = {
    "manifest": "manifest.json",
    "state": "_state/{chapter}.json",
    "file_hashes": "_state/file_hashes.json",
    "notebook": "notebooks/{stem}.ipynb",
    "failed_notebook": "notebooks/{stem}.failed.ipynb",
    "running_notebook": "notebooks/.{stem}.running.ipynb",
    "figure_audit": "{chapter}/figure_audit.jsonl",
}


# ---------------------------------------------------------------------------------------- paths


def _fill(registry: dict[str, str], kind: str, key: str, fields: dict[str, Any]) -> str:
    try:
        template = registry[key]
    except KeyError:
        raise KeyError(f"unknown {kind} {key!r}; known: {sorted(registry)}") from None
    needed = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    if needed != set(fields):
        raise TypeError(f"{kind} {key!r} ({template}) takes fields {sorted(needed)}, got {sorted(fields)}")
    return template.format(**{k: str(v) for k, v in fields.items()})


def chapter_dir(run_dir: str | os.PathLike, chapter: str) -> Path:
    """Return (and create) the output folder of ``chapter`` inside ``run_dir``.

    Parameters
    ----------
    run_dir : path-like
        The run directory (``runs/<profile>``).
    chapter : str
        Chapter key, e.g. ``"novelty"``.

    Returns
    -------
    pathlib.Path
        ``run_dir / chapter``, created if needed.
    """
    path = Path(run_dir) / chapter
    path.mkdir(parents=True, exist_ok=True)
    return path


def export_path(run_dir: str | os.PathLike, key: str, **fields: Any) -> Path:
    """The path of export ``key`` in ``run_dir``.

    Parameters
    ----------
    run_dir : path-like
        The run directory.
    key : str
        A key of :data:`EXPORTS`, e.g. ``"embedding.member"``.
    **fields
        Values of the template's placeholders, e.g. ``member="dino"``; exactly those it names.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    KeyError
        For an unknown key.
    TypeError
        When ``fields`` do not match the template's placeholders.
    """
    return Path(run_dir) / _fill(EXPORTS, "export", key, fields)


def chapter_export_path(folder: str | os.PathLike, key: str, **fields: Any) -> Path:
    """The path of export ``key`` inside an already resolved chapter folder.

    For code that is handed the chapter's folder (``runs/<profile>/embedding``) rather than the run
    directory: ``chapter_export_path(embedding_dir, "embedding.model", member="dino")`` is
    ``embedding_dir / "models/dino.pt"``.
    """
    relative = _fill(EXPORTS, "export", key, fields)
    chapter, _, rest = relative.partition("/")
    return Path(folder) / rest


def export_name(key: str, **fields: Any) -> str:
    """The file name (last path component) of export ``key``, e.g. ``"per_image.csv"``.

    For writers whose target folder is chosen by the user (an ``assess`` report written with
    ``--out``) but whose file names belong to the run-directory layout. Only the placeholders of
    the file name itself are filled (``export_name("assess.per_image")`` needs no ``cohort``).
    """
    if key not in EXPORTS:
        raise KeyError(f"unknown export {key!r}; known: {sorted(EXPORTS)}")
    return _fill({key: EXPORTS[key].rsplit("/", 1)[-1]}, "export name", key, fields)


def folder_path(run_dir: str | os.PathLike, key: str, **fields: Any) -> Path:
    """The path of folder ``key`` of :data:`FOLDERS` in ``run_dir`` (not created)."""
    return Path(run_dir) / _fill(FOLDERS, "folder", key, fields)


def run_file(run_dir: str | os.PathLike, key: str, **fields: Any) -> Path:
    """The path of the runner's bookkeeping file ``key`` of :data:`RUN_FILES` in ``run_dir``."""
    return Path(run_dir) / _fill(RUN_FILES, "run file", key, fields)


def _chapter_of(key: str) -> str:
    chapter = key.partition(".")[0]
    return "atlas" if chapter == "assess" else chapter


def _require(path: Path, key: str) -> Path:
    if not path.is_file():
        chapter = _chapter_of(key)
        raise FileNotFoundError(
            f"{path} is missing: run the {chapter!r} chapter first (python -m skinmap run {chapter})")
    return path


# -------------------------------------------------------------------------------- read / write

_WRITERS = {
    ".parquet": io.write_parquet,
    ".csv": io.write_csv,
    ".json": io.write_json,
    ".npy": io.write_npy,
    ".html": io.write_text,
    ".md": io.write_text,
}


def write_export(run_dir: str | os.PathLike, key: str, obj: Any, **fields: Any) -> Path:
    """Write ``obj`` atomically as export ``key`` and return its path.

    The writer is chosen by the file's suffix: a DataFrame to ``.parquet`` / ``.csv`` (no index),
    any JSON-serialisable object to ``.json``, an array to ``.npy``, a string to ``.html`` /
    ``.md``. See :mod:`skinmap.io` for the atomic-write guarantee.
    """
    path = export_path(run_dir, key, **fields)
    try:
        writer = _WRITERS[path.suffix]
    except KeyError:
        raise ValueError(f"no writer for {path.name} (export {key!r})") from None
    return writer(obj, path)


def read_export(run_dir: str | os.PathLike, key: str, **fields: Any) -> Any:
    """Read export ``key`` (DataFrame, dict/list, array or string, by suffix).

    Raises
    ------
    FileNotFoundError
        Naming the file and the chapter that writes it.
    """
    path = _require(export_path(run_dir, key, **fields), key)
    suffix = path.suffix
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix == ".json":
        return io.read_json(path)
    if suffix == ".npy":
        return np.load(path)
    if suffix in (".html", ".md"):
        return path.read_text(encoding="utf-8")
    raise ValueError(f"no reader for {path.name} (export {key!r})")


def _optional(run_dir: str | os.PathLike, key: str, missing_ok: bool, **fields: Any) -> Any:
    if missing_ok and not export_path(run_dir, key, **fields).is_file():
        return None
    return read_export(run_dir, key, **fields)


# ---------------------------------------------------------------------------------- data chapter


def load_catalog(run_dir: str | os.PathLike) -> pd.DataFrame:
    """The data chapter's catalog, every column in the catalog schema's nullable dtype."""
    from skinmap.data.schema import conform

    return conform(read_export(run_dir, "data.catalog"))


def load_ground_truth(run_dir: str | os.PathLike) -> dict | None:
    """The synthetic atlas's planted ground truth, or None for real data (no such file)."""
    return _optional(run_dir, "data.ground_truth", True)


def load_synthetic_latent(run_dir: str | os.PathLike) -> np.ndarray | None:
    """The synthetic atlas's latent vectors (rows of the catalog rows with pixels), or None."""
    return _optional(run_dir, "data.synthetic_latent", True)


# ------------------------------------------------------------------------------------- embedding


def load_roles(run_dir: str | os.PathLike, uids: Sequence[str] | None = None) -> pd.DataFrame:
    """The evaluation split (``uid``, ``dataset``, ``image_id``, ``group``, ``role``, ``split_seed``,
    ``group_rule``, ``evaluation_protocol``) written by the embedding chapter before any training.

    With ``uids`` the rows come back in that order, one per uid (index reset); a uid without a role
    is a ``ValueError`` (the split is older than the embedding: rerun the 'embedding' chapter).
    """
    table = read_export(run_dir, "embedding.roles")
    if uids is None:
        return table
    name = export_path(run_dir, "embedding.roles")
    wanted = pd.Index(pd.Series(uids).astype(str))
    pos = pd.Index(table["uid"].astype(str)).get_indexer(wanted)
    if (pos < 0).any():
        raise ValueError(f"{int((pos < 0).sum())} of {len(wanted)} rows have no role in {name}, e.g. "
                         f"{list(wanted[pos < 0][:3])}: rerun the 'embedding' chapter")
    return table.iloc[pos].reset_index(drop=True)


def _uids(ids: pd.DataFrame) -> pd.Series:
    """The ``uid`` column, or ``dataset/image_id`` for id tables written before it existed."""
    if "uid" in ids:
        return ids["uid"].astype(str)
    return ids["dataset"].astype(str) + "/" + ids["image_id"].astype(str)


def embedding_sources(run_dir: str | os.PathLike) -> list[str]:
    """``"fused"`` (when present) and every member name under ``embedding/members``, sorted."""
    names = ["fused"] if export_path(run_dir, "embedding.fused").is_file() else []
    folder = folder_path(run_dir, "embedding.members")
    if folder.is_dir():
        names += sorted(p.stem for p in folder.glob("*.npy"))
    return names


def load_embedding(run_dir: str | os.PathLike, source: str = "fused", *,
                   mmap: bool = True) -> tuple[np.ndarray, pd.DataFrame]:
    """``(vectors, ids)`` of the fused embedding or of member ``source``; row i of ids is vector i.

    ``mmap=True`` (default) memory-maps the vectors read-only (``np.load(..., mmap_mode="r")``):
    nothing is read until used, so a 1.1M x 1,024 atlas costs no RAM up front and a caller that
    takes rows (``vectors[mask]``) or chunks copies only those. Writing into it is an error: a
    caller that must modify the vectors copies them (``np.array(vectors)``) or passes ``mmap=False``.

    Raises
    ------
    FileNotFoundError
        When the vectors or ids are missing (the message lists the available sources).
    ValueError
        When the vectors and the id table have different lengths.
    """
    if source == "fused":
        vec_key, ids_key, fields = "embedding.fused", "embedding.fused_ids", {}
    else:
        vec_key, ids_key, fields = "embedding.member", "embedding.member_ids", {"member": source}
    vec_path, ids_path = export_path(run_dir, vec_key, **fields), export_path(run_dir, ids_key, **fields)
    if not vec_path.is_file() or not ids_path.is_file():
        missing = vec_path if not vec_path.is_file() else ids_path
        raise FileNotFoundError(f"embedding source {source!r} not found: {missing} is missing (run the "
                                f"'embedding' chapter); available: {embedding_sources(run_dir)}")
    vectors = np.load(vec_path, mmap_mode="r" if mmap else None)
    ids = pd.read_parquet(ids_path)
    if len(ids) != len(vectors):
        raise ValueError(f"{vec_path} has {len(vectors)} rows but {ids_path} has {len(ids)}")
    return vectors, ids


def load_vectors(run_dir: str | os.PathLike, source: str,
                 catalog: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame, int]:
    """Vectors of ``source`` restricted to the uids of ``catalog`` (quality chapter).

    ``source`` is ``"fused"``, a member name, or ``"pixels"`` (the thumbnail descriptor of every
    readable catalog image, computed here rather than read). Returns ``(vectors, ids, n_dropped)``
    where ``n_dropped`` counts embedded rows whose uid is not in the catalog (a stale embedding);
    they are left out and counted, for the chapter to report.
    """
    if source == "pixels":
        from skinmap.analysis.quality.descriptors import thumbnail_descriptors

        rows = catalog[catalog["path"].notna()].reset_index(drop=True)
        x, ok = thumbnail_descriptors(list(rows["path"]))
        return x, rows.loc[ok, ["uid", "dataset", "image_id"]].reset_index(drop=True), 0
    x, ids = load_embedding(run_dir, source)
    known = ids["uid"].isin(set(catalog["uid"])).to_numpy()
    if known.all():  # the (memory-mapped) vectors as they are: nothing copied
        return x, ids.reset_index(drop=True), 0
    return x[known], ids[known].reset_index(drop=True), int((~known).sum())


@dataclass(frozen=True)
class Atlas:
    """An embedding of a run with its metadata, joined once: row ``i`` of every field is vector ``i``.

    Attributes
    ----------
    vectors : ndarray of shape (n, d)
        The embedding's rows as stored (fused vectors are float32 and l2-normalised).
    ids : DataFrame
        ``uid``, ``dataset``, ``image_id`` of each row, as stored next to the vectors.
    samples : DataFrame
        ``ids`` followed by every other catalog column of the same uid (one-to-one).
    """

    vectors: np.ndarray
    ids: pd.DataFrame
    samples: pd.DataFrame

    def __len__(self) -> int:
        return len(self.vectors)


def _join_catalog(ids: pd.DataFrame, catalog: pd.DataFrame, ids_name: str, catalog_name: str) -> pd.DataFrame:
    """``ids`` with the catalog's other columns, by uid; every id must match exactly one row."""
    uids = _uids(ids)
    dup = catalog["uid"].astype(str).duplicated()
    if dup.any():
        raise ValueError(f"{catalog_name} has {int(dup.sum())} duplicated uid(s), e.g. "
                         f"{list(catalog.loc[dup, 'uid'][:3])}: cannot join {ids_name} one-to-one")
    lost = ~uids.isin(set(catalog["uid"].astype(str)))
    if lost.any():
        raise ValueError(
            f"{int(lost.sum())} of {len(ids)} rows of {ids_name} have no row in {catalog_name} "
            f"(e.g. {list(uids[lost][:3])}): the embedding is older than the catalog; rerun the "
            "'embedding' chapter")
    table = ids.assign(uid=uids) if "uid" not in ids else ids
    extra = [c for c in catalog.columns if c not in table.columns or c == "uid"]
    return table.merge(catalog[extra], on="uid", how="left", validate="one_to_one").reset_index(drop=True)


def load_atlas(run_dir: str | os.PathLike, source: str = "fused", *, with_map: bool = False,
               catalog_columns: Sequence[str] | None = None, mmap: bool = True) -> Atlas:
    """The embedding ``source`` (default the fused atlas) joined with the catalog by uid.

    Parameters
    ----------
    run_dir : path-like
        The run directory.
    source : str, default "fused"
        ``"fused"`` or a member name.
    with_map : bool, default False
        Also join each row's 2-d map position (``x``, ``y`` of the embedding chapter's map); a row
        without a position is a ``ValueError``.
    catalog_columns : sequence of str, optional
        Read only these catalog columns (and ``uid``) for the join: at paper scale a chapter that
        needs a few metadata columns of 1.1M rows does not hold the whole catalog. Default: all.
    mmap : bool, default True
        Memory-map the vectors read-only (see :func:`load_embedding`).

    Returns
    -------
    Atlas
        ``vectors``, ``ids`` and ``samples`` (ids + catalog columns), row i = vector i.

    Raises
    ------
    FileNotFoundError
        When the embedding or the catalog is missing.
    ValueError
        When an embedded row has no catalog row, or the catalog repeats a uid.
    """
    vectors, ids = load_embedding(run_dir, source, mmap=mmap)
    # the raw table, not :func:`load_catalog`: the join keeps the catalog's columns as stored
    if catalog_columns is None:
        catalog = read_export(run_dir, "data.catalog")
    else:
        wanted = ["uid"] + [c for c in dict.fromkeys(catalog_columns) if c != "uid"]
        catalog = pd.read_parquet(_require(export_path(run_dir, "data.catalog"), "data.catalog"), columns=wanted)
    if source == "fused":
        ids_name = export_path(run_dir, "embedding.fused_ids")
    else:
        ids_name = export_path(run_dir, "embedding.member_ids", member=source)
    samples = _join_catalog(ids, catalog, str(ids_name), str(export_path(run_dir, "data.catalog")))
    if with_map:
        load_map2d(run_dir, samples["uid"])  # every row has exactly one position, else a ValueError
        xy = read_export(run_dir, "embedding.map2d")[["uid", "x", "y"]]
        samples = samples.merge(xy, on="uid", how="left", validate="one_to_one")
    return Atlas(vectors=vectors, ids=ids, samples=samples)


def load_members(run_dir: str | os.PathLike, uids: Sequence[str]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Each ensemble member's vectors in the order of ``uids``.

    A member whose ids do not cover every uid, or without an id table, is left out with a note
    (second return value).
    """
    folder = folder_path(run_dir, "embedding.members")
    members, notes = {}, []
    wanted = pd.Index(pd.Series(uids).astype(str))
    for npy in sorted(folder.glob("*.npy")) if folder.is_dir() else []:
        ids_path = export_path(run_dir, "embedding.member_ids", member=npy.stem)
        if not ids_path.is_file():
            notes.append(f"member {npy.stem}: no {ids_path.name}; left out")
            continue
        pos = pd.Index(_uids(pd.read_parquet(ids_path))).get_indexer(wanted)
        if (pos < 0).any():
            notes.append(f"member {npy.stem}: {(pos < 0).sum()} fused rows missing; left out")
            continue
        members[npy.stem] = np.load(npy, mmap_mode="r")[pos]  # copies only the wanted rows
    return members, notes


def load_map2d(run_dir: str | os.PathLike, uids: Sequence[str] | None = None, *,
               missing_ok: bool = False) -> pd.DataFrame | None:
    """The 2-d map of the embedding (``uid``, ``x``, ``y``).

    With ``uids``, the rows are returned in that order, one per uid (index reset); a uid without a
    map position, or a map that repeats a uid, is a ``ValueError``. With ``missing_ok``, an absent
    map gives None.
    """
    table = _optional(run_dir, "embedding.map2d", missing_ok)
    if table is None or uids is None:
        return table
    name = export_path(run_dir, "embedding.map2d")
    key = table["uid"].astype(str)
    if key.duplicated().any():
        raise ValueError(f"{name} repeats {int(key.duplicated().sum())} uid(s)")
    wanted = pd.Index(pd.Series(uids).astype(str))
    pos = pd.Index(key).get_indexer(wanted)
    if (pos < 0).any():
        raise ValueError(f"{int((pos < 0).sum())} of {len(wanted)} rows have no position in {name}, e.g. "
                         f"{list(wanted[pos < 0][:3])}: rerun the 'embedding' chapter")
    return table.iloc[pos].reset_index(drop=True)


# ------------------------------------------------------------------------ later chapters' exports


def load_imputed(run_dir: str | os.PathLike, *, missing_ok: bool = False) -> pd.DataFrame | None:
    """The imputation chapter's per-image imputed values (None when absent and ``missing_ok``)."""
    return _optional(run_dir, "imputation.imputed", missing_ok)


def load_holes(run_dir: str | os.PathLike, *, missing_ok: bool = False) -> list[dict] | None:
    """The holes chapter's hole records (the ``holes`` list of ``holes/holes.json``).

    None when the file is absent and ``missing_ok``.
    """
    data = _optional(run_dir, "holes.holes", missing_ok)
    if data is None:
        return None
    holes = data.get("holes", []) if isinstance(data, dict) else data
    return [h for h in holes if isinstance(h, dict)]


def load_density(run_dir: str | os.PathLike, *, missing_ok: bool = False) -> pd.DataFrame | None:
    """Per-sample log density and region of the holes chapter (``row``, ``uid``, ``log_density``,
    ``region``, ``component``); None when absent and ``missing_ok``."""
    return _optional(run_dir, "holes.density", missing_ok)


def load_groups(run_dir: str | os.PathLike, uids: Sequence[str]) -> np.ndarray:
    """The group of each of ``uids`` that retrieval and every score must respect.

    The evaluation split's groups (lesion, patient and near-duplicate of the frozen pretrained member,
    ``embedding/roles.parquet``) joined with the quality chapter's near-duplicate clusters when that
    chapter has run (found later, in the trained space; more exclusions never make a score leak).
    A run without a split (older than the evaluation protocol) groups by the catalog's lesion and
    patient ids instead. Returns an int64 array aligned with ``uids`` (labels ``0..G-1``).
    """
    from skinmap.analysis.evaluation_split import group_ids

    clusters = load_duplicate_clusters(run_dir, uids, missing_ok=True)
    extra = [clusters.to_numpy(dtype=object)] if clusters is not None else []
    if export_path(run_dir, "embedding.roles").is_file():
        roles = load_roles(run_dir, uids)
        return group_ids(roles["dataset"].to_numpy(), clusters=[roles["group"].to_numpy(), *extra])
    catalog = load_catalog(run_dir)
    rows = catalog.set_index(catalog["uid"].astype(str)).reindex(pd.Index(pd.Series(uids).astype(str)))
    ids = {c: rows[c].to_numpy(dtype=object) if c in rows else None for c in ("lesion_id", "patient_id")}
    return group_ids(rows["dataset"].astype(object).fillna("?").to_numpy(), ids["lesion_id"], ids["patient_id"],
                     clusters=extra)


def load_duplicate_clusters(run_dir: str | os.PathLike, uids: Sequence[str], *,
                            missing_ok: bool = False) -> pd.Series | None:
    """The quality chapter's near-duplicate cluster of each of ``uids`` (NA: in no cluster).

    ``quality/clusters.csv`` lists each cluster of two or more images with its ``;``-joined
    ``uids``; the result is a nullable integer Series aligned with ``uids`` (index reset). None
    when the file is absent and ``missing_ok``. A uid listed in two clusters is a ``ValueError``.
    """
    table = _optional(run_dir, "quality.clusters", missing_ok)
    if table is None:
        return None
    members = (table.assign(uid=table["uids"].astype(str).str.split(";"))[["cluster", "uid"]]
               .explode("uid"))
    members = members[members["uid"].astype(str).str.len() > 0]
    if members["uid"].duplicated().any():
        raise ValueError(f"{export_path(run_dir, 'quality.clusters')} lists "
                         f"{int(members['uid'].duplicated().sum())} uid(s) in more than one cluster")
    cluster_of = members.set_index("uid")["cluster"]
    wanted = pd.Series(uids).astype(str)
    return wanted.map(cluster_of).astype("Int64").reset_index(drop=True)
