"""Atomic writes never leave a truncated file and never lose the previous version."""

import json

import numpy as np
import pandas as pd
import pytest

from skinmap.io import atomic_path, read_json, write_json, write_npy, write_parquet


def test_failed_write_keeps_previous_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.json"
    write_json({"v": 1}, target)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"v": 2')  # half-written
            raise RuntimeError("crash mid-write")
    assert read_json(target) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_writers_round_trip_and_json_handles_numpy(tmp_path):
    write_npy(np.arange(6, dtype=np.float32).reshape(2, 3), tmp_path / "a.npy")
    assert np.load(tmp_path / "a.npy").sum() == 15
    df = pd.DataFrame({"x": [1, 2], "y": ["a", None]})
    write_parquet(df, tmp_path / "t.parquet")
    assert pd.read_parquet(tmp_path / "t.parquet")["x"].tolist() == [1, 2]
    write_json({"i": np.int64(3), "f": np.float32(0.5), "nan": np.float64("nan"), "arr": np.arange(2)}, tmp_path / "j.json")
    assert json.loads((tmp_path / "j.json").read_text()) == {"i": 3, "f": 0.5, "nan": None, "arr": [0, 1]}
