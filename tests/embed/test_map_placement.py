"""The 2-D map at scale (issue 19): UMAP on a subsample, other rows placed by nearest subsample rows."""

from __future__ import annotations

import numpy as np
import pytest
import pandas as pd

from skinmap.embed.pipeline import umap_map


@pytest.mark.slow  # two UMAP fits (numba compilation): ~1-2 min on a busy 2-core machine
def test_subsample_map_places_rows_inside_their_planted_cluster(tmp_path):
    rng = np.random.default_rng(0)
    d, n = 32, 3000
    centres = 3.0 * np.eye(d)[:3]
    label = rng.integers(0, 3, n)
    x = (centres[label] + 0.3 * rng.normal(size=(n, d)) + 0.5).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    ids = pd.DataFrame({"uid": [f"u{i}" for i in range(n)]})
    out = umap_map(mm, ids, n_neighbors=10, seed=0, fit_size=500, chunk_rows=700)
    assert list(out["uid"]) == list(ids["uid"]) and np.isfinite(out[["x", "y"]].to_numpy()).all()
    xy = out[["x", "y"]].to_numpy()
    sub = np.sort(np.random.default_rng(0).choice(n, 500, replace=False))
    placed = np.setdiff1d(np.arange(n), sub)
    # the subsample's own UMAP positions are kept: the map of the subsample alone, fitted the same way
    alone = umap_map(np.asarray(x[sub]), ids.iloc[sub], n_neighbors=10, seed=0)
    np.testing.assert_allclose(xy[sub], alone[["x", "y"]].to_numpy(), atol=1e-5)
    # every placed row lands nearest to the 2-D centre of its own planted cluster's subsample rows
    centre_2d = np.array([xy[sub][label[sub] == c].mean(axis=0) for c in range(3)])
    nearest = np.argmin(((xy[placed, None, :] - centre_2d[None]) ** 2).sum(-1), axis=1)
    assert (nearest == label[placed]).mean() > 0.99
