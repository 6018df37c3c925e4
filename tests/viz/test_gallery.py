"""Galleries show a grey cell, never crash, for missing or unreadable images."""

import numpy as np
import pandas as pd
from PIL import Image

from skinmap.viz.gallery import load_thumbnail, thumbnail_grid


def test_load_thumbnail_handles_missing_and_corrupt(tmp_path):
    good = tmp_path / "a.png"
    Image.fromarray(np.full((40, 80, 3), 200, dtype=np.uint8)).save(good)
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    assert load_thumbnail(good, size=20).shape == (10, 20, 3)
    for path in (None, pd.NA, float("nan"), bad, tmp_path / "absent.png"):
        assert load_thumbnail(path) is None


def test_thumbnail_grid_lays_out_all_cells(tmp_path):
    good = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(good)
    fig = thumbnail_grid([good, None, pd.NA], ["a", "b", "c"], ncols=2)
    assert len(fig.axes) == 4  # 2 x 2 grid, last cell empty
    assert sum(1 for ax in fig.axes if ax.images) == 3
