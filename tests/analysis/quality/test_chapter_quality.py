"""End-to-end: the chapter executes on a tiny synthetic run directory and writes its exports."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_chapter_runs_on_fake_run(tmp_path):
    pm = pytest.importorskip("papermill")
    sys.path.insert(0, str(Path(__file__).parent))
    from fake_run import make_fake_run

    run = make_fake_run(tmp_path / "run", n_lesions=60, embed=False)
    pm.execute_notebook(
        str(ROOT / "chapters" / "02-quality.ipynb"), str(tmp_path / "out.ipynb"),
        parameters=dict(run_dir=str(run), figures_dir=str(tmp_path / "fig"), project_root=str(ROOT), profile="demo",
                        embedding_source="pixels", mirror_invariant=False, whiten_dims=16, resolution_n_images=40, gallery_pairs=4, gallery_offtopic=4),
        cwd=str(ROOT / "chapters"), progress_bar=False, kernel_name="python3",
    )
    out = run / "quality"
    for name in ["split_leakage.csv", "near_duplicates.csv", "clusters.csv", "cleaned.parquet", "cleaned_split.csv",
                 "corrected_splits.csv", "review_template.csv", "offtopic_ranking.csv", "resolution_probe.csv",
                 "cleaned_rows.csv", "datasheet.json", "critique/images_per_lesion.csv", "critique/top_pair_review.csv",
                 "critique/critique_rule.csv"]:
        assert (out / name).is_file(), name
    from skinmap import runs

    rows = runs.read_export(run, "quality.cleaned_rows")
    sheet = runs.read_export(run, "quality.datasheet")
    assert rows["kept"].sum() == sheet["totals"]["kept"] and len(rows) == sheet["totals"]["images"]
    assert rows.loc[~rows["kept"], "split_clean"].isna().all() and rows.loc[rows["kept"], "split_clean"].notna().all()
    leak = pd.read_csv(out / "split_leakage.csv")
    assert "SynDermA" in set(leak["dataset"])
    near = pd.read_csv(out / "near_duplicates.csv")
    assert list(near.columns[:5]) == ["image_a", "image_b", "similarity", "cluster", "conflict"]


@pytest.mark.slow
def test_chapter_caps_the_whitening_on_a_small_collection(tmp_path):
    """Fewer images than ``whiten_dims`` (the default 256) is a normal small cohort: the chapter caps the
    whitening, says so, and runs (it used to stop with ``n_components must be in [1, ...]``)."""
    pm = pytest.importorskip("papermill")
    sys.path.insert(0, str(Path(__file__).parent))
    from fake_run import make_fake_run

    run = make_fake_run(tmp_path / "run", n_lesions=60, embed=False)
    from skinmap import runs

    n_images = int(runs.load_catalog(run)["path"].notna().sum())
    assert n_images < 256
    pm.execute_notebook(
        str(ROOT / "chapters" / "02-quality.ipynb"), str(tmp_path / "out.ipynb"),
        parameters=dict(run_dir=str(run), figures_dir=str(tmp_path / "fig"), project_root=str(ROOT), profile="demo",
                        embedding_source="pixels", mirror_invariant=False, verify_pairs=False, resolution_n_images=20,
                        gallery_pairs=2, gallery_offtopic=2),
        cwd=str(ROOT / "chapters"), progress_bar=False, kernel_name="python3",
    )
    text = (tmp_path / "out.ipynb").read_text()
    assert "Whitening capped:" in text and "is capped at" in text
    assert list(runs.read_export(run, "quality.near_duplicates").columns[:3]) == ["image_a", "image_b", "similarity"]
