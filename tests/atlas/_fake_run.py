"""A tiny fake run directory (catalog, fused vectors, map, images) for atlas/assess tests.

Four clusters in a 16-d space, each with its own diagnosis and image colour; three datasets
spread over the clusters. ``colour_embed_fn`` embeds an image by its mean colour into the
matching cluster, so an uploaded picture has a known right answer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

COLOURS = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]], dtype=np.uint8)
DIAGNOSES = ["melanoma", "nevus", "bcc", "sk"]
DATASETS = ["alpha", "beta", "gamma"]
D = 16
#: A picture whose mean colour is farther than this from every planted colour embeds off the clusters.
OFF_PALETTE = 60.0


def centroids(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(len(COLOURS), D))
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def make_fake_run(root: Path, *, n: int = 120, seed: int = 0, with_images: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    run = Path(root)
    (run / "data").mkdir(parents=True, exist_ok=True)
    (run / "embedding").mkdir(parents=True, exist_ok=True)
    img_dir = run / "_images"
    img_dir.mkdir(exist_ok=True)
    cluster = np.arange(n) % len(COLOURS)
    dataset = np.array(DATASETS)[(np.arange(n) // len(COLOURS)) % len(DATASETS)]
    vecs = centroids(seed)[cluster] + 0.15 * rng.normal(size=(n, D))
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
    image_ids = [f"img{i:04d}" for i in range(n)]
    uids = [f"{d}/{i}" for d, i in zip(dataset, image_ids)]
    paths = []
    for i in range(n):
        p = img_dir / f"{i}.png"
        if with_images:
            Image.new("RGB", (32, 32), tuple(int(v) for v in COLOURS[cluster[i]])).save(p)
        paths.append(str(p))
    catalog = pd.DataFrame(
        {
            "uid": uids,
            "dataset": dataset,
            "image_id": image_ids,
            "path": paths,
            "diagnosis": np.array(DIAGNOSES)[cluster],
            "icd10_code": np.array(["C43", "D22", "C44", "L82"])[cluster],
            "fst": pd.array(rng.integers(1, 7, size=n), dtype="Int64"),
            "body_site": rng.choice(["head", "trunk", "arm"], size=n),
            "modality": np.where(dataset == "gamma", "clinical", "dermoscopy"),
            "age": rng.uniform(20, 80, size=n),
            "sex": rng.choice(["male", "female"], size=n),
            "release_year": pd.array(np.where(dataset == "alpha", 2018, 2020), dtype="Int64"),
        }
    )
    catalog.to_parquet(run / "data" / "catalog.parquet", index=False)
    np.save(run / "embedding" / "fused.npy", vecs)
    catalog[["uid", "dataset", "image_id"]].to_parquet(run / "embedding" / "fused_ids.parquet", index=False)
    xy = vecs[:, :2] * 10
    pd.DataFrame({"uid": uids, "x": xy[:, 0], "y": xy[:, 1]}).to_parquet(run / "embedding" / "map2d.parquet", index=False)
    return run


def add_quality_exports(run: Path, *, offtopic_rows=(0, 5), clusters=((1, 9, "homogeneous"), (2, 6, "diagnosis")),
                        profile: str = "demo", synthetic: bool = True) -> Path:
    """Plant what the quality chapter and the runner write: off-topic flags, duplicate clusters,
    a manifest naming the profile and (for a synthetic atlas) the ground-truth file.

    ``clusters`` lists ``(row_a, row_b, conflict)`` pairs; every row here is a catalog row.
    """
    import json

    catalog = pd.read_parquet(run / "data" / "catalog.parquet")
    uids = catalog["uid"].astype(str).tolist()
    (run / "quality").mkdir(exist_ok=True)
    pd.DataFrame({"uid": uids, "dataset": catalog["dataset"], "offtopic_score": 0.0, "robust_z": 0.0,
                  "flagged": [i in set(offtopic_rows) for i in range(len(uids))]}).to_csv(
        run / "quality" / "offtopic_ranking.csv", index=False)
    pd.DataFrame({"cluster": range(len(clusters)), "size": 2,
                  "uids": [f"{uids[a]};{uids[b]}" for a, b, _ in clusters],
                  "conflict": [c for _, _, c in clusters]}).to_csv(run / "quality" / "clusters.csv", index=False)
    (run / "manifest.json").write_text(json.dumps({"profile": profile, "chapters": []}))
    if synthetic:
        (run / "data" / "ground_truth.json").write_text(json.dumps({"planted": True}))
    return run


def colour_embed_fn(seed: int = 0):
    """Embed an image by its mean colour: nearest palette colour -> that cluster's centroid."""
    c = centroids(seed)

    def embed(paths):
        out = []
        for p in paths:
            with Image.open(p) as img:
                mean = np.asarray(img.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
            dist = np.linalg.norm(COLOURS - mean, axis=1)
            k = int(np.argmin(dist))
            if dist[k] > OFF_PALETTE:  # unlike every planted colour: a direction of its own
                v = np.random.default_rng(int(mean.sum() * 1000)).normal(size=D)
                out.append(v / np.linalg.norm(v))
            else:
                out.append(c[k])
        return np.asarray(out, dtype=np.float32)

    return embed


def png_bytes(colour, size=(40, 30)) -> bytes:
    import io

    buf = io.BytesIO()
    Image.new("RGB", size, tuple(int(v) for v in colour)).save(buf, format="PNG")
    return buf.getvalue()


def png_with_header_size(width: int, height: int) -> bytes:
    """A tiny valid PNG whose IHDR claims width x height (CRC fixed): a decompression bomb."""
    import struct
    import zlib

    data = bytearray(png_bytes((10, 20, 30), size=(4, 4)))
    ihdr = 8 + 8  # signature + (length, type)
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)
