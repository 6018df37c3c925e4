"""Benchmark: all-pairs Fréchet distance for 29 datasets at d = 1024 versus scipy.linalg.sqrtm.

Ours (``skinmap.analysis.frechet``): one Cholesky factorisation per dataset, then per pair
``L_b^T S_a L_b`` (LAPACK dsygst) and its eigenvalues, pairs spread over threads with one BLAS
thread each; the per-dataset work is inside our timing. Baseline: the usual
``scipy.linalg.sqrtm(S_a @ S_b)`` per pair (as in pytorch-fid), with the default BLAS threads.
``sqrtm`` at d = 1024 takes seconds per pair, so to keep the benchmark under a few minutes the
baseline is timed on ``n_baseline_pairs`` pairs and its all-pairs time extrapolated linearly
(every pair costs the same O(d^3)); the FDs of those pairs are compared with ours (max relative
difference printed). For reference the same baseline pairs are also timed with a single BLAS
thread (``*_1blas`` fields), since on a loaded machine that can be the faster baseline; the load
average before and after is printed because other jobs share the machine.

Run: ``python tests/benchmarks/bench_frechet.py [n_datasets] [dim] [n_baseline_pairs]``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import linalg
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness  # noqa: E402

from skinmap.analysis.frechet import GaussianStats, pairwise_frechet  # noqa: E402


def make_moments(n_datasets: int, dim: int, seed: int = 0):
    """Well-conditioned full-rank covariances (condition number 100) with random eigenbases."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_datasets):
        q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        spectrum = np.geomspace(1.0, 1e-2, dim) * rng.uniform(0.5, 2.0) / dim
        out.append((0.05 * rng.standard_normal(dim), (q * spectrum) @ q.T))
    return out


def ours(moments):
    cpu = time.process_time()
    stats = [GaussianStats.from_moments(m, s) for m, s in moments]
    return pairwise_frechet(stats), time.process_time() - cpu


def sqrtm_pairs(moments, pairs):
    cpu = time.process_time()
    out = []
    for i, j in pairs:
        (ma, sa), (mb, sb) = moments[i], moments[j]
        covmean = linalg.sqrtm(sa @ sb)
        if np.iscomplexobj(covmean):
            covmean = covmean.real
        out.append(float(np.sum((ma - mb) ** 2) + np.trace(sa) + np.trace(sb) - 2 * np.trace(covmean)))
    return out, time.process_time() - cpu


def sqrtm_pairs_1blas(moments, pairs):
    with threadpool_limits(1):
        return sqrtm_pairs(moments, pairs)


def main(n_datasets: int = 29, dim: int = 1024, n_baseline_pairs: int = 6) -> str:
    moments = make_moments(n_datasets, dim)
    all_pairs = [(i, j) for i in range(n_datasets) for j in range(i + 1, n_datasets)]
    rng = np.random.default_rng(1)
    timed = [all_pairs[p] for p in rng.choice(len(all_pairs), min(n_baseline_pairs, len(all_pairs)), replace=False)]
    load_before = os.getloadavg()[0]
    a = _harness.measure(ours, moments)
    b = _harness.measure(sqrtm_pairs, moments, timed)
    b1 = _harness.measure(sqrtm_pairs_1blas, moments, timed)
    scale = len(all_pairs) / len(timed)
    b_all = (b[0] * scale, b[1], b[2])
    (fd, cpu_a), (ref_fd, cpu_b), (_, cpu_b1) = a[2], b[2], b1[2]
    rel = max(abs(fd[i, j] - ref) / abs(ref) for (i, j), ref in zip(timed, ref_fd))
    # CPU seconds (all threads of the child) are less sensitive to other load on a shared machine
    # than wall time, though a loaded machine also inflates the CPU time of spinning BLAS threads.
    return _harness.report("frechet_all_pairs", a, b_all, datasets=n_datasets, d=dim, pairs=len(all_pairs),
                           baseline_pairs_timed=len(timed), baseline_measured_s=f"{b[0]:.2f}",
                           baseline_extrapolated=True, cpu_ours=f"{cpu_a:.1f}s",
                           cpu_baseline_extrapolated=f"{cpu_b * scale:.1f}s",
                           cpu_speedup=f"{cpu_b * scale / cpu_a:.1f}x",
                           speedup_vs_1blas=f"{b1[0] * scale / a[0]:.1f}x",
                           cpu_speedup_vs_1blas=f"{cpu_b1 * scale / cpu_a:.1f}x", max_rel_diff=f"{rel:.1e}",
                           load=f"{load_before:.1f}->{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main(*(int(x) for x in sys.argv[1:]))
