"""Execute the data and demographics chapters on the demo profile (slow: papermill kernels)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from skinmap.data.schema import read_catalog, validate_catalog

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_data_and_demographics_chapters_run_on_demo(tmp_path):
    import papermill as pm

    common = dict(run_dir=str(tmp_path / "run"), figures_dir=str(tmp_path / "fig"), project_root=str(ROOT),
                  profile="demo", synthetic_n_images=300, synthetic_image_size=32)
    pm.execute_notebook(str(ROOT / "chapters/01-data.ipynb"), str(tmp_path / "01.ipynb"), parameters=common,
                        cwd=str(ROOT / "chapters"), progress_bar=False)
    out = tmp_path / "run" / "data"
    catalog = read_catalog(out / "catalog.parquet")
    validate_catalog(catalog)
    truth = json.loads((out / "ground_truth.json").read_text())
    assert set(truth["off_topic"]) <= set(catalog["uid"])
    summary = pd.read_csv(out / "summary.csv")
    assert summary["rows"].sum() == len(catalog)
    demo_params = {k: v for k, v in common.items() if k in ("run_dir", "figures_dir", "project_root", "profile")}
    pm.execute_notebook(str(ROOT / "chapters/05-demographics.ipynb"), str(tmp_path / "05.ipynb"),
                        parameters=demo_params, cwd=str(ROOT / "chapters"), progress_bar=False)
    assert (tmp_path / "run" / "demographics" / "baselines.csv").is_file()
    assert (tmp_path / "fig" / "demographics-fst-x-age-group.png").is_file()
