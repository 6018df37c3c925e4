"""`make bench-scale` end to end on a small atlas: every step runs in its own process, prints its BENCH
line, and the planted answers are checked (slow: about 5-10 minutes on 2 cores)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

BENCH = Path(__file__).with_name("bench_scale.py")


@pytest.mark.slow
def test_bench_scale_runs_every_step_on_a_small_atlas(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_scale_smoke", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--n-rows", "6000", "--dim", "96", "--out-dir", str(tmp_path), "--queries", "500"])
    out = capsys.readouterr().out
    for step in bench.STEPS:
        assert f"BENCH scale step={step} n=6000" in out, step
    table = pd.read_csv(tmp_path / "scale-6000" / "errors.csv")
    assert set(bench.STEPS) <= set(table["step"])
    finished = table[table["metric"] == "step finished"]
    assert finished.empty, finished.to_dict("records")  # no step crashed
    # at 6,000 rows the small datasets hold a handful of rows (CAN2000: 10, Fitzpatrick17k: 88), so only the
    # planted answers that do not hinge on them are expected: the novel year and the loop
    novel = table[table["metric"].str.startswith("planted novel_year")]
    loop = table[table["metric"].str.startswith("planted hole recovered")]
    assert len(novel) == 1 and novel["pass"].all(), novel.to_dict("records")
    assert len(loop) == 1 and loop["pass"].all(), loop.to_dict("records")
    # the optional null step on the same atlas: its own tables, the whole pass's left as they were
    before = (tmp_path / "scale-6000" / "errors.csv").read_bytes()
    bench.main(["--n-rows", "6000", "--dim", "96", "--out-dir", str(tmp_path), "--steps", "null"])
    assert "BENCH scale step=null n=6000" in capsys.readouterr().out
    assert (tmp_path / "scale-6000" / "errors.csv").read_bytes() == before
    null = pd.read_csv(tmp_path / "scale-6000" / "errors-null.csv")
    same = null[null["metric"].str.contains("equal the serial draws")]
    assert len(same) == 1 and same["pass"].all(), null.to_dict("records")
