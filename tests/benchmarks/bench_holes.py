"""Benchmark: corrected effective resistance + H1 persistence with cycles (issue 6).

For n landmarks (default 2,000 / 5,000 / 10,000) on a noisy circle in 64 dimensions:

ours      k-NN graph -> in-place Cholesky inverse of L + J/n -> degree correction (eq. 11)
          -> Ripser on a greedy-permutation subsample -> representative cycles of the top bars
baseline  the same pipeline with a plain dense Moore-Penrose pseudoinverse (``np.linalg.pinv``,
          SVD) and the textbook broadcast formulas for eqs. 10-11

Also reported per size: the spectral approximation (leading eigenvectors of the normalised
Laplacian) against the exact corrected resistance — relative error and the top bar's
persistence under both.

    python tests/benchmarks/bench_holes.py                    # ours at 2k/5k/10k, baseline at 2k/5k
    python tests/benchmarks/bench_holes.py --baseline-max 10000   # also the (slow) 10k baseline
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness  # noqa: E402

from skinmap.analysis.topology.graph import symmetric_knn_graph  # noqa: E402
from skinmap.analysis.topology.holes import representative_cycle  # noqa: E402
from skinmap.analysis.topology.persistence import h1_persistence  # noqa: E402
from skinmap.analysis.topology.resistance import (  # noqa: E402
    corrected_resistance,
    spectral_corrected_resistance,
)

K = 15


def noisy_circle(n: int, dim: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi, n)
    x = np.zeros((n, dim))
    x[:, 0], x[:, 1], x[:, 2] = np.cos(t), np.sin(t), 3.0
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return x @ q.T + rng.normal(0, 0.05, x.shape), t


def _winding(angles: np.ndarray) -> float:
    return float(np.angle(np.exp(1j * (np.roll(angles, -1) - angles))).sum() / (2 * np.pi))


def _persistence_and_cycles(dist: np.ndarray, t: np.ndarray, rips_points: int, n_cycles: int = 3):
    dgm = h1_persistence(dist, max_points=rips_points)
    cycles = [
        dgm.points[representative_cycle(dgm.distance, dgm.births[r], dgm.cocycles[r])]
        for r in range(min(n_cycles, len(dgm)))
    ]
    return {
        "top_persistence": float(dgm.persistence[0]),
        "ratio": float(dgm.persistence[0] / dgm.persistence[1]),
        "winding": _winding(t[cycles[0]]),
        "r_cover": dgm.r_cover,
    }


def ours(n: int, rips_points: int, seed: int = 0):
    x, t = noisy_circle(n, seed=seed)
    dist = corrected_resistance(symmetric_knn_graph(x, K))
    return _persistence_and_cycles(dist, t, rips_points)


def baseline(n: int, rips_points: int, seed: int = 0):
    x, t = noisy_circle(n, seed=seed)
    a = symmetric_knn_graph(x, K).toarray()
    deg = a.sum(axis=1)
    pinv = np.linalg.pinv(np.diag(deg) - a)
    r = np.diag(pinv)[:, None] + np.diag(pinv)[None, :] - 2 * pinv
    r = r - 1 / deg[:, None] - 1 / deg[None, :] + 2 * a / np.outer(deg, deg)
    np.fill_diagonal(r, 0)
    return _persistence_and_cycles(np.maximum(r, 0), t, rips_points)


def resistance_only(n: int, seed: int = 0):
    x, _ = noisy_circle(n, seed=seed)
    corrected_resistance(symmetric_knn_graph(x, K))
    return None


def spectral_error(n: int, m: int, rips_points: int, seed: int = 0):
    x, t = noisy_circle(n, seed=seed)
    a = symmetric_knn_graph(x, K)
    exact = corrected_resistance(a)
    approx = spectral_corrected_resistance(a, m, dense_below=0, seed=seed)
    off = ~np.eye(n, dtype=bool)
    rel = np.abs(approx - exact)[off] / exact[off].mean()
    pe = _persistence_and_cycles(exact, t, rips_points)
    pa = _persistence_and_cycles(approx, t, rips_points)
    return {
        "max_rel_err": float(rel.max()),
        "mean_rel_err": float(rel.mean()),
        "top_pers_exact": pe["top_persistence"],
        "top_pers_spectral": pa["top_persistence"],
        "spectral_winding": pa["winding"],
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 10000])
    ap.add_argument("--baseline-max", type=int, default=5000, help="skip the pinv baseline above this n")
    ap.add_argument("--rips-points", type=int, default=800, help="greedy subsample Ripser runs on")
    ap.add_argument("--eigenvectors", type=int, nargs="+", default=[100, 300])
    ap.add_argument("--spectral-max", type=int, default=5000, help="largest n for the spectral error check")
    args = ap.parse_args(argv)
    for n in args.sizes:
        res_only = _harness.measure(resistance_only, n)
        mine = _harness.measure(ours, n, args.rips_points)
        base = (
            _harness.measure(baseline, n, args.rips_points)
            if n <= args.baseline_max
            else (float("nan"), float("nan"), None)
        )
        _harness.report(
            f"holes_n{n}", mine, base,
            resistance_s=f"{res_only[0]:.2f}", resistance_peak_MiB=f"{res_only[1]:.0f}",
            rips_points=args.rips_points, top_persistence=f"{mine[2]['top_persistence']:.4g}",
            ratio_to_next=f"{mine[2]['ratio']:.1f}", winding=f"{mine[2]['winding']:.0f}",
            baseline_kind="skipped" if base[2] is None else "np.linalg.pinv",
        )
        if n <= args.spectral_max:
            for m in args.eigenvectors:
                secs, peak, err = _harness.measure(spectral_error, n, m, args.rips_points)
                print(
                    f"SPECTRAL n={n} m={m}: max_rel_err={err['max_rel_err']:.3f} "
                    f"mean_rel_err={err['mean_rel_err']:.4f} top_persistence exact={err['top_pers_exact']:.4g} "
                    f"spectral={err['top_pers_spectral']:.4g} winding={err['spectral_winding']:.0f} "
                    f"({secs:.1f}s incl. exact, peak {peak:.0f}MiB)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
