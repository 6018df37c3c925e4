"""Benchmark: registered pixel verification, coarse-to-fine (ours) versus exhaustive full-size search.

Both run :func:`skinmap.analysis.quality.registration.registered_similarity` on every pair of the
held-out copy-detection set (:func:`skinmap.data.synthetic.copy_detection_set`: 88 images, 3,828
pairs). Ours: the defaults, i.e. crop hypotheses searched on half-size thumbnails, then locally at
full size, and refined only for pairs whose coarse crop score reaches the gate. Baseline: every
direction, mirror and crop fraction searched at full size (``coarse_factor=1``) and every pair
refined (``refine_gate=-1``). Besides time and memory, the line reports the largest score difference
on the planted copies and how many planted copies each accepts at 0.95 with the ratio test.

Run: ``python tests/benchmarks/bench_registration.py`` (``--gate``: only the rotation-gate comparison,
:func:`rotation_gate`).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness  # noqa: E402

from skinmap.analysis.quality import duplicates, registration, thumbnails  # noqa: E402
from skinmap.analysis.quality.verification import CopyVerificationConfig  # noqa: E402
from skinmap.data.synthetic import copy_detection_set  # noqa: E402


def score(fine, i, j, **kwargs):
    config = CopyVerificationConfig(min_crop=0.85, crop_step=0.025, **kwargs)
    return registration.registered_similarity(thumbnails.reduce_thumbnails(fine), i, j, config, fine_thumbnails=fine,
                                              progress=False)


def accepted(scores, i, j, truth) -> int:
    pairs = duplicates.rescored_pairs(pd.DataFrame({"i": i, "j": j, "similarity": 1.0}), scores)
    found = duplicates.distinct_pairs(pairs, 0.95, floor=0.65, ratio=0.7)
    return len(set(zip(found["i"], found["j"])) & set(truth))


def heldout_thumbnails() -> tuple[np.ndarray, dict]:
    """The held-out copy-detection set as (n, 128, 128) luminance thumbnails, and its planted pairs."""
    images, truth = copy_detection_set()
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for k, im in enumerate(images):
            paths.append(Path(tmp) / f"{k}.png")
            im.save(paths[-1])
        fine, _ = thumbnails.luminance_thumbnails(paths, 128)
    return fine, truth


def main() -> str:
    fine, truth = heldout_thumbnails()
    i, j = np.triu_indices(len(fine), 1)
    load_before = os.getloadavg()[0]
    a = _harness.measure(score, fine, i, j)
    b = _harness.measure(score, fine, i, j, coarse_factor=1, refine_gate=-1.0)
    planted = np.array([(x, y) in truth for x, y in zip(i, j)])
    diff = float(np.abs(a[2][planted] - b[2][planted]).max())
    return _harness.report("registration_pairs", a, b, pairs=len(i), planted=len(truth),
                           max_planted_score_diff=f"{diff:.3f}",
                           planted_found_ours=accepted(a[2], i, j, truth),
                           planted_found_baseline=accepted(b[2], i, j, truth),
                           load=f"{load_before:.1f}->{os.getloadavg()[0]:.1f}")


def orientations() -> str:
    """Cost of searching every orientation (the defaults: 8 right-angle orientations and tilts up to
    10 degrees) against the upright search (identity and mirror only), per 1,000 candidate pairs."""
    fine, _ = heldout_thumbnails()
    i, j = np.triu_indices(len(fine), 1)
    i, j = i[:1000], j[:1000]
    a = _harness.measure(score, fine, i, j)
    b = _harness.measure(score, fine, i, j, all_right_angles=False, max_tilt=0.0)
    return _harness.report("registration_orientations_per_1000_pairs", a, b, pairs=len(i),
                           note="ours=all orientations, baseline=upright+mirror")


def rotation_gate() -> str:
    """The rotation gate at the descriptor's candidate rank (``rotation_rank`` 5) against no gate
    (0: every pair searched in every orientation); the descriptor part of the gate only (no embedding here) on every pair of the held-out set: time ratio, and the planted copies each
    accepts at 0.95 with the ratio test (recall must not change)."""
    fine, truth = heldout_thumbnails()
    i, j = np.triu_indices(len(fine), 1)
    a = _harness.measure(score, fine, i, j, rotation_rank=5)
    b = _harness.measure(score, fine, i, j, rotation_rank=0)
    planted = np.array([(x, y) in truth for x, y in zip(i, j)])
    return _harness.report("registration_rotation_gate", a, b, pairs=len(i), planted=len(truth),
                           planted_found_gated=accepted(a[2], i, j, truth),
                           planted_found_ungated=accepted(b[2], i, j, truth),
                           max_planted_score_diff=f"{float(np.abs(a[2][planted] - b[2][planted]).max()):.3f}",
                           note="ours=gated (rotation_rank 5, the default), baseline=every pair in every orientation")


if __name__ == "__main__":
    if sys.argv[1:] == ["--gate"]:
        rotation_gate()
    else:
        main()
        orientations()
        rotation_gate()
