"""Chapters 06-novelty and 07-similarity run end to end on a tiny planted run directory.

Slow (a Jupyter kernel per chapter), so marked ``slow``. The run directory holds only the files the
chapters read (data/catalog.parquet, data/ground_truth.json, embedding/fused.npy + fused_ids.parquet).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tiny_run(run: Path) -> None:
    rng = np.random.default_rng(0)
    d = 16
    centres = {"A": 0, "B": 1, "C": 2}
    rows, vecs = [], []
    plan = [("A", 2015, 120), ("B", 2016, 90), ("C", 2018, 60)]
    for name, year, n in plan:
        mean = np.zeros(d)
        mean[centres[name]] = 3.0
        x = mean + rng.standard_normal((n, d))
        for i in range(n):
            code = ["C43.9", "D22.9", "L40.0"][i % 3] if name != "C" else "B86"
            rows.append(dict(dataset=name, image_id=f"{name}{i}", release_year=year, icd10_code=code,
                             fst=[1, 3, 5, pd.NA][i % 4]))
        vecs.append(x)
    # a re-release subset of A in 2017
    a = vecs[0]
    pick = rng.choice(len(a), 40, replace=False)
    for j, i in enumerate(pick):
        rows.append(dict(dataset="A-lite", image_id=f"L{j}", release_year=2017, icd10_code=rows[i]["icd10_code"],
                         fst=rows[i]["fst"]))
    vecs.append(a[pick])
    cat = pd.DataFrame(rows)
    cat["uid"] = cat["dataset"] + "/" + cat["image_id"]
    cat["path"] = "/nonexistent.png"
    cat["release_year"] = cat["release_year"].astype("Int64")
    cat["fst"] = cat["fst"].astype("Int64")
    cat["icd10_block"] = cat["icd10_code"].str[:2]
    cat["icd10_chapter"] = cat["icd10_code"].str[0]
    z = np.concatenate(vecs).astype(np.float32)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    (run / "data").mkdir(parents=True)
    (run / "embedding").mkdir()
    cat.to_parquet(run / "data" / "catalog.parquet", index=False)
    (run / "data" / "ground_truth.json").write_text(json.dumps(
        {"subset_pairs": [{"subset": "A-lite", "parent": "A"}], "exact_duplicates": [], "novel_year": 2018}))
    np.save(run / "embedding" / "fused.npy", z)
    cat[["uid", "dataset", "image_id"]].to_parquet(run / "embedding" / "fused_ids.parquet", index=False)


@pytest.mark.slow
def test_chapters_run_and_export(tmp_path):
    pm = pytest.importorskip("papermill")
    run = tmp_path / "run"
    _tiny_run(run)
    for nb in ("06-novelty", "07-similarity"):
        pm.execute_notebook(str(ROOT / "chapters" / f"{nb}.ipynb"), str(tmp_path / f"{nb}.ipynb"),
                            parameters=dict(run_dir=str(run), figures_dir=str(tmp_path / "fig"),
                                            project_root=str(ROOT), profile="demo", n_bootstrap=20),
                            cwd=str(ROOT / "chapters"), progress_bar=False)
    yearly = pd.read_csv(run / "novelty" / "yearly_novelty.csv")
    assert list(yearly.columns) == ["year", "n_new", "n_history", "n_neighbors", "n_bootstrap", "nu", "nu_null",
                                    "ci_low", "ci_high", "ratio"]
    assert yearly.set_index("year").loc[2018, "ratio"] > 1.5  # planted new region
    assert yearly.set_index("year").loc[2017, "ratio"] < 1.0  # re-release of 2015 images
    fd = pd.read_csv(run / "similarity" / "frechet.csv")
    assert list(fd.columns) == ["dataset_a", "dataset_b", "n_a", "n_b", "fd", "ci_low", "ci_high"]
    assert len(fd) == 6 and fd["fd"].notna().all()
    # issue 21: uniqueness.csv gains the size-fair columns beside the raw ones
    assert list(pd.read_csv(run / "similarity" / "uniqueness.csv").columns) == [
        "dataset", "n", "uniqueness", "rank", "size_fair_uniqueness", "size_fair_ci_low", "size_fair_ci_high",
        "size_fair_rank"]
    fair = pd.read_csv(run / "similarity" / "frechet_size_fair.csv")
    assert len(fair) == 6 and fair["fd_size_fair"].notna().all()
    known = pd.read_csv(run / "similarity" / "known_pairs.csv")
    assert known.iloc[0]["rank"] == 1 and bool(known.iloc[0]["parent_is_nearest"])
    assert (tmp_path / "fig" / "novelty-yearly-novelty.png").is_file()
    assert (tmp_path / "fig" / "similarity-fd-heatmap.png").is_file()
