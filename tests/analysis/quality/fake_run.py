"""A tiny stand-in for ``runs/demo`` (catalog, ground truth, embeddings) used when the upstream
chapters have not produced one yet: synthetic lesion-like images with planted exact and near
duplicates (crop / flip / colour jitter), label conflicts, a cross-dataset copy and off-topic
images, embedded with the ImageNet EfficientNet-Lite0 (member ``efficientnet_lite0``; ``fused`` is a
copy of it). Run as a script: ``python tests/analysis/quality/fake_run.py /tmp/quality_fake/demo``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

DIAGNOSES = ["nevus", "melanoma", "bcc", "seborrheic keratosis"]


def _lesion_image(rng: np.random.Generator, dx: int, size: int = 160) -> Image.Image:
    skin = np.array([220, 180, 150]) * rng.uniform(0.55, 1.05) + rng.normal(0, 15, 3)
    # low-frequency texture at a random scale, so that images differ beyond their blobs
    cells = int(rng.integers(3, 24))
    tex = np.asarray(Image.fromarray(rng.integers(0, 255, (cells, cells, 3), dtype=np.uint8)).resize(
        (size, size), Image.Resampling.BICUBIC), dtype=np.float32) - 128
    base = np.clip(skin + tex * rng.uniform(0.1, 0.6) + rng.normal(0, 6, (size, size, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(base)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0, 8))):  # hairs
        x0, y0, x1, y1 = rng.uniform(0, size, 4)
        draw.line([x0, y0, x1, y1], fill=(40, 30, 25), width=int(rng.integers(1, 3)))
    colour = [(120, 80, 50), (50, 30, 30), (200, 120, 130), (150, 120, 70)][dx]
    for _ in range(int(rng.integers(2, 6))):
        cx, cy = rng.uniform(0.3, 0.7, 2) * size
        rx, ry = rng.uniform(0.08, 0.3, 2) * size
        c = tuple(int(np.clip(v + rng.normal(0, 25), 0, 255)) for v in colour)
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=c)
    for _ in range(int(rng.integers(5, 40))):
        x, y = rng.uniform(0, size, 2)
        r = rng.uniform(1, 5)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(v) for v in rng.integers(20, 200, 3)))
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))


def _offtopic_image(rng: np.random.Generator, kind: int, size: int = 160) -> Image.Image:
    img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(img)
    if kind == 0:  # stripes
        for x in range(0, size, int(rng.integers(6, 20))):
            draw.rectangle([x, 0, x + 3, size], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    elif kind == 1:  # checkerboard
        s = int(rng.integers(8, 30))
        for x in range(0, size, s):
            for y in range(0, size, s):
                if (x // s + y // s) % 2:
                    draw.rectangle([x, y, x + s, y + s], fill=(0, 0, 0))
    elif kind == 2:  # "slide" with text lines
        img = Image.new("RGB", (size, size), (255, 255, 255))
        draw = ImageDraw.Draw(img)
        for y in range(10, size, 14):
            draw.text((8, y), "".join(rng.choice(list("abcdefghij "), 20)), fill=(0, 0, 0))
    else:  # green leaves
        img = Image.new("RGB", (size, size), (30, 90, 30))
        draw = ImageDraw.Draw(img)
        for _ in range(12):
            cx, cy = rng.uniform(0, size, 2)
            draw.ellipse([cx - 25, cy - 10, cx + 25, cy + 10], fill=(60, int(rng.integers(120, 200)), 40))
    return img


def _transform(img: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    if kind == "crop":
        m = int(w * rng.uniform(0.04, 0.10))
        return img.crop((m, m, w - m, h - m)).resize((w, h), Image.Resampling.BICUBIC)
    if kind == "flip":
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.9, 1.1))
    return ImageEnhance.Color(img).enhance(rng.uniform(0.85, 1.15))


def make_fake_run(run_dir: Path, *, n_lesions: int = 150, seed: int = 0, embed: bool = True) -> Path:
    """Write ``data/`` (catalog, ground truth, images) and ``embedding/`` under ``run_dir``."""
    rng = np.random.default_rng(seed)
    img_dir = run_dir / "data" / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    rows, images = [], []

    def add(dataset, image_id, img, dx, lesion, split, fst):
        path = img_dir / f"{dataset}_{image_id}.png"
        img.save(path)
        images.append(img)
        rows.append({"uid": f"{dataset}/{image_id}", "dataset": dataset, "image_id": image_id,
                     "path": str(path), "lesion_id": lesion, "split": split, "diagnosis": DIAGNOSES[dx] if dx is not None else pd.NA,
                     "fst": fst, "width": img.size[0], "height": img.size[1]})

    datasets = ["SynDermA", "SynDermB", "SynClinC"]
    originals = []
    for k in range(n_lesions):
        ds = datasets[k % 3]
        dx = int(rng.integers(0, 4))
        fst = int(rng.integers(1, 7))
        img = _lesion_image(rng, dx)
        split = rng.choice(["train", "val", "test"], p=[0.7, 0.1, 0.2]) if ds != "SynClinC" else "train"
        lesion = f"L{k:04d}" if ds != "SynClinC" else pd.NA
        add(ds, f"img{k:04d}", img, dx, lesion, split, fst)
        originals.append(len(rows) - 1)
        if ds == "SynDermA" and k % 5 == 0:  # a second view of the same lesion, maybe another split
            split2 = rng.choice(["train", "val", "test"])
            add(ds, f"img{k:04d}b", _lesion_image(np.random.default_rng(seed * 1000 + k), dx), dx, lesion, split2, fst)
    truth = {"exact_duplicates": [], "near_duplicates": [], "label_conflicts": [], "off_topic": []}
    picks = rng.choice(originals, size=36, replace=False)
    for n, idx in enumerate(picks):
        src = rows[idx]
        kind = ["crop", "flip", "jitter", "exact"][n % 4]
        img = images[idx] if kind == "exact" else _transform(images[idx], kind, rng)
        dx = DIAGNOSES.index(src["diagnosis"])
        if n % 9 == 0:
            dx = (dx + 1) % 4  # a label conflict
        fst = src["fst"] if n % 7 else min(6, src["fst"] + 1)
        ds = src["dataset"] if n % 12 else datasets[(datasets.index(src["dataset"]) + 1) % 3]
        add(ds, f"dup{n:03d}", img.resize((img.size[0] + (n % 3) * 16,) * 2), dx, src["lesion_id"], src["split"], fst)
        pair = [src["uid"], rows[-1]["uid"]]
        if kind == "exact":
            truth["exact_duplicates"].append(pair)
        else:
            truth["near_duplicates"].append({"a": pair[0], "b": pair[1], "transform": kind})
        if DIAGNOSES[dx] != src["diagnosis"]:
            truth["label_conflicts"].append(pair)
    for n in range(8):
        add("SynDermB", f"off{n:02d}", _offtopic_image(rng, n % 4), 0, f"O{n}", "train", pd.NA)
        truth["off_topic"].append(rows[-1]["uid"])
    cat = pd.DataFrame(rows)
    cat["fst"] = cat["fst"].astype("Int64")
    cat["width"] = cat["width"].astype("Int64")
    cat["height"] = cat["height"].astype("Int64")
    cat["patient_id"] = pd.Series(pd.NA, index=cat.index, dtype="string")
    cat["also_in"] = pd.Series(pd.NA, index=cat.index, dtype="string")
    (run_dir / "data").mkdir(parents=True, exist_ok=True)
    cat.to_parquet(run_dir / "data" / "catalog.parquet", index=False)
    import json

    (run_dir / "data" / "ground_truth.json").write_text(json.dumps(truth, indent=1))
    if embed:
        from skinmap.analysis.quality.resolution import efficientnet_lite0_features

        feats = efficientnet_lite0_features(images)
        feats /= np.linalg.norm(feats, axis=1, keepdims=True)
        emb = run_dir / "embedding"
        (emb / "members").mkdir(parents=True, exist_ok=True)
        ids = cat[["uid", "dataset", "image_id"]]
        np.save(emb / "members" / "efficientnet_lite0.npy", feats)
        ids.to_parquet(emb / "members" / "efficientnet_lite0_ids.parquet", index=False)
        np.save(emb / "fused.npy", feats)
        ids.to_parquet(emb / "fused_ids.parquet", index=False)
    return run_dir


if __name__ == "__main__":
    make_fake_run(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/quality_fake/demo"))
