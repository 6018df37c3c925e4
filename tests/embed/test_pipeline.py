"""The pipeline: embed_paths reproduces the catalog's fused rows; ONNX equals eager PyTorch;
the chapter's parameters cell equals the schema."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from skinmap.embed import pipeline as emb
from skinmap.embed.fusion import FusionConfig, concat_members, fit_fusion
from skinmap.embed.members.base import OptimConfig
from skinmap.embed.members.training import train_member
from skinmap.embed.members.mae import MAEConfig

ROOT = Path(__file__).resolve().parents[2]


def test_embed_paths_reproduces_fused_rows(image_dir, tmp_path):
    paths, _ = image_dir
    run = tmp_path / "embedding"
    (run / "models").mkdir(parents=True)
    cfg = MAEConfig(image_size=16, patch_size=8, embed_dim=32, depth=1, optim=OptimConfig(lr=1e-3, batch_size=8, max_steps=2))
    train_member("mae", "mae_t", cfg, paths, run / "models" / "mae_t.pt")
    train_member("dino", "dino_t", __import__("skinmap.embed.members.dino", fromlist=["SSLConfig"]).SSLConfig(
        image_size=16, local_size=8, patch_size=8, embed_dim=32, depth=1, optim=cfg.optim), paths, run / "models" / "dino_t.pt")
    specs = [{"name": "mae_t", "kind": "mae"}, {"name": "dino_t", "kind": "dino"}]
    encoders = [emb.build_member(s, run, run / "cache") for s in specs]
    results = emb.extract_members(paths, encoders, run / "cache", progress=False)
    keep = emb.aligned_rows(results)
    assert keep.all()
    members = [results[e.name].vectors for e in encoders]
    fusion = fit_fusion(members, FusionConfig(out_dim=8, epochs=2, batch_size=8, warmup_steps=2), progress=False)
    fused = fusion.projector.transform(concat_members(members))
    emb.save_fusion(run, fusion.projector, specs)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG broken")
    new = emb.embed_paths(paths[:5] + [str(bad)], run, cache_dir=tmp_path / "fresh_cache")
    np.testing.assert_allclose(new[:5], fused[:5], rtol=1e-4, atol=1e-5)
    assert np.isnan(new[5]).all()
    np.testing.assert_allclose(np.linalg.norm(new[:5], axis=1), 1.0, rtol=1e-5)


def test_onnx_member_equals_eager_torch(tmp_path_factory, rng):
    from skinmap.embed.members.efficientnet_onnx import EfficientNetLite0

    cache = tmp_path_factory.mktemp("onnx_cache")
    batch = rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    onnx = EfficientNetLite0(cache, image_size=32, num_threads=1).encode_uint8(batch)
    eager = EfficientNetLite0(cache, image_size=32, backend="torch").encode_uint8(batch)
    assert onnx.shape == (3, 1280)
    np.testing.assert_allclose(onnx, eager, rtol=1e-3, atol=1e-4)
    assert len(list((cache / "onnx").glob("*.onnx"))) == 1  # exported once, keyed by weights hash


def test_chapter_parameters_match_schema():
    from skinmap.book.schemas import RUNNER_INJECTED
    from skinmap.book.schemas.embedding import Params
    import ast
    import yaml

    nb = json.loads((ROOT / "chapters" / "03-embedding.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    names = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}
    assert names == set(Params.model_fields) | set(RUNNER_INJECTED)
    values = {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
              for t in node.targets if t.id in Params.model_fields}
    assert Params(**values) == Params()  # notebook defaults are the schema's (demo) defaults
    for profile in ("demo", "mini", "full"):
        Params(**yaml.safe_load((ROOT / "params" / profile / "embedding.yml").read_text()))
    assert Params(**yaml.safe_load((ROOT / "params" / "demo" / "embedding.yml").read_text())) == Params()
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")


def test_partition_too_small_skips_member(tmp_path):
    import pandas as pd

    images = pd.DataFrame({"dataset": ["a", "a"], "path": [str(tmp_path / "x.png"), str(tmp_path / "y.png")],
                           "caption": ["c", "c"]})
    curves, report = emb.train_members([{"name": "m", "kind": "mae", "partition": "third2",
                                         "config": {"image_size": 16, "optim": {"max_steps": 1}}}], images, tmp_path)
    assert report["m"]["status"] == "skipped" and "usable images" in report["m"]["reason"]
    assert curves.empty


def test_renamed_neighbour_count_key_still_works():
    import pytest

    from skinmap.book.params import load_params

    with pytest.warns(FutureWarning, match="knn_k"):
        params = load_params(ROOT, "demo", "embedding", overrides={"knn_k": 7})
    assert params.n_neighbors == 7
