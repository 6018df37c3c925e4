"""Benchmark: yearly novelty with B = 200 (one k-NN pass per year) versus per-replicate queries.

The baseline follows the published code: per year one faiss index over P_t, and for every
bootstrap replicate a k+1-NN query of the drawn points against it, self removed by identity.
Both use the same draws (``skinmap.analysis.resampling.bootstrap_draws``), so nu_t, nu°_t and the
interval must agree to float32 round-off; the max difference is printed.

Run: ``python tests/benchmarks/bench_novelty.py [n_per_year] [n_years] [dim]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness  # noqa: E402

from skinmap.analysis.knn import build_index, l2_normalize  # noqa: E402
from skinmap.analysis.novelty import yearly_novelty  # noqa: E402
from skinmap.analysis.resampling import bootstrap_draws  # noqa: E402

K, B, SEED = 10, 200, 0


def ours(z, years):
    cpu = time.process_time()
    return yearly_novelty(z, years, n_neighbors=K, n_bootstrap=B, seed=SEED, progress=False).table, time.process_time() - cpu


def per_replicate_queries(z, years):
    """Eqs. 1-6 the published way: query the index again for every replicate."""
    cpu = time.process_time()
    z = l2_normalize(z)
    years = np.asarray(years)
    rows = []
    for t in np.unique(years):
        # P_t in (year, input position) order: the order the documented draws refer to.
        hist_rows = np.flatnonzero(years < t)
        hist_rows = hist_rows[np.argsort(years[hist_rows], kind="stable")]
        hist, new = z[hist_rows], z[years == t]
        if len(hist) < K + 1:
            rows.append(dict(year=int(t), nu=np.nan, nu_null=np.nan, ci_low=np.nan, ci_high=np.nan))
            continue
        index = build_index(hist)
        sims, _ = index.search(new, K)
        nu = float((1.0 - sims.astype(np.float64)).mean())
        reps = []
        for draw in bootstrap_draws(len(hist), len(new), B, SEED, int(t)):
            sims, idx = index.search(hist[draw], K + 1)
            keep = idx != draw[:, None]
            order = np.argsort(~keep, axis=1, kind="stable")[:, :K]  # drop self by identity
            d = 1.0 - np.take_along_axis(sims, order, axis=1).astype(np.float64)
            reps.append(d.mean())
        reps = np.array(reps)
        lo, hi = np.quantile(reps, [0.025, 0.975])
        rows.append(dict(year=int(t), nu=nu, nu_null=reps.mean(), ci_low=lo, ci_high=hi))
    return pd.DataFrame(rows), time.process_time() - cpu


def main(n_per_year: int = 1500, n_years: int = 5, dim: int = 128) -> str:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((n_years, dim))
    z = np.concatenate([c + 1.5 * rng.standard_normal((n_per_year, dim)) for c in centres]).astype(np.float32)
    years = np.repeat(np.arange(2010, 2010 + n_years), n_per_year)
    a = _harness.measure(ours, z, years)
    b = _harness.measure(per_replicate_queries, z, years)
    cols = ["nu", "nu_null", "ci_low", "ci_high"]
    (ta, cpu_a), (tb, cpu_b) = a[2], b[2]
    diff = np.nanmax(np.abs(ta[cols].to_numpy() - tb[cols].to_numpy()))
    # CPU seconds (all threads of the child) are robust to other load on a shared machine.
    return _harness.report("novelty_B200", a, b, n=len(z), years=n_years, d=dim, k=K, B=B,
                           cpu_ours=f"{cpu_a:.2f}s", cpu_baseline=f"{cpu_b:.1f}s",
                           cpu_speedup=f"{cpu_b / cpu_a:.1f}x", max_abs_diff=f"{diff:.1e}")


if __name__ == "__main__":
    main(*(int(x) for x in sys.argv[1:]))
