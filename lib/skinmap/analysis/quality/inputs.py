"""Reading the chapter's inputs: the chosen embedding aligned with the catalog, and the
critique's released DermaMNIST tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["available_sources", "load_vectors", "load_embedding", "load_dermamnist", "read_duplicate_pairs", "ground_truth_pairs"]


def load_embedding(run_dir: str | Path, source: str = "fused") -> tuple[np.ndarray, pd.DataFrame]:
    """``(vectors, ids)`` of ``embedding/fused.npy`` or ``embedding/members/<source>.npy``.

    A missing file is an error naming the available members.
    """
    emb_dir = Path(run_dir) / "embedding"
    if source == "fused":
        vec, ids = emb_dir / "fused.npy", emb_dir / "fused_ids.parquet"
    else:
        vec, ids = emb_dir / "members" / f"{source}.npy", emb_dir / "members" / f"{source}_ids.parquet"
    if not vec.is_file() or not ids.is_file():
        members = sorted(p.stem for p in (emb_dir / "members").glob("*.npy")) if (emb_dir / "members").is_dir() else []
        raise FileNotFoundError(f"embedding source {source!r} not found at {vec}; available: fused, {members}")
    x = np.load(vec)
    table = pd.read_parquet(ids)
    if len(table) != len(x):
        raise ValueError(f"{vec} has {len(x)} rows but {ids} has {len(table)}")
    return x, table


def load_dermamnist(split_csv: str | Path, metadata_csv: str | Path) -> pd.DataFrame:
    """DermaMNIST's partition of each HAM10000 image joined with its HAM10000 metadata.

    Both CRLF and LF files are accepted. Every split row must find its metadata row (else an
    error lists the first missing ids)."""
    splits = pd.read_csv(split_csv, dtype={"split": "string", "image_id": "string"})
    meta = pd.read_csv(metadata_csv, dtype={"lesion_id": "string", "image_id": "string", "dx": "string"})
    for col in ("split", "image_id"):
        splits[col] = splits[col].str.strip()
    df = splits.merge(meta, on="image_id", how="left", validate="one_to_one")
    missing = df.loc[df["lesion_id"].isna(), "image_id"]
    if len(missing):
        raise ValueError(f"{len(missing)} DermaMNIST image(s) lack HAM10000 metadata, e.g. {list(missing[:3])}")
    return df


def read_duplicate_pairs(path: str | Path) -> list[tuple[str, str]]:
    """Confirmed duplicate pairs ``(from_img, to_img)`` with any file extension removed."""
    df = pd.read_csv(path, dtype=str)
    strip = lambda s: s.str.strip().str.replace(r"\.(jpe?g|png)$", "", regex=True)  # noqa: E731
    return list(zip(strip(df["from_img"]), strip(df["to_img"])))


def ground_truth_pairs(truth: dict) -> pd.DataFrame:
    """Planted duplicate pairs of the synthetic atlas as ``a, b, transform`` ("exact" for exact ones)."""
    rows = [{"a": a, "b": b, "transform": "exact"} for a, b in truth.get("exact_duplicates", [])]
    rows += [{"a": d["a"], "b": d["b"], "transform": d.get("transform", "unknown")} for d in truth.get("near_duplicates", [])]
    return pd.DataFrame(rows, columns=["a", "b", "transform"])


def load_vectors(run_dir: str | Path, source: str, catalog: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame, int]:
    """Vectors for the duplicate and off-topic analyses, restricted to uids in ``catalog``.

    ``source`` is "fused", a member name, or "pixels" (the
    :mod:`~skinmap.analysis.quality.descriptors` thumbnail descriptor of every readable catalog
    image). Returns ``(vectors, ids, n_dropped)`` where ``n_dropped`` counts embedded rows whose uid
    is not in the catalog (a stale embedding), which are left out.
    """
    if source == "pixels":
        from skinmap.analysis.quality.descriptors import thumbnail_descriptors

        rows = catalog[catalog["path"].notna()].reset_index(drop=True)
        x, ok = thumbnail_descriptors(list(rows["path"]))
        return x, rows.loc[ok, ["uid", "dataset", "image_id"]].reset_index(drop=True), 0
    x, ids = load_embedding(run_dir, source)
    known = ids["uid"].isin(set(catalog["uid"])).to_numpy()
    return x[known], ids[known].reset_index(drop=True), int((~known).sum())


def available_sources(run_dir: str | Path) -> list[str]:
    """"fused" (when present) and every member name under ``embedding/members``."""
    emb_dir = Path(run_dir) / "embedding"
    names = ["fused"] if (emb_dir / "fused.npy").is_file() else []
    if (emb_dir / "members").is_dir():
        names += sorted(p.stem for p in (emb_dir / "members").glob("*.npy"))
    return names
