"""The copy-verification config: ranges and joint constraints declared once, built from params, used whole."""

from __future__ import annotations

import dataclasses
from functools import partial

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinmap.analysis.quality import registration
from skinmap.analysis.quality.verification import CopyVerificationConfig, accepted_pairs, knob_bounds


def test_defaults_are_the_demo_profile_and_frozen():
    config = CopyVerificationConfig()
    assert (config.n_candidates, config.candidate_floor, config.size, config.min_crop, config.crop_step, config.sigma,
            config.subtract_mean, config.refine, config.refine_gate, config.coarse_factor, config.blocks,
            config.ratio_floor, config.ratio, config.threads) == (5, 0.5, 64, 0.85, 0.025, 1.0, True, True, 0.45, 2, 4,
                                                                  0.65, 0.7, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.size = 32


@pytest.mark.parametrize(("name", "value"), [
    ("n_candidates", 0), ("n_candidates", 101), ("candidate_floor", 0.0), ("candidate_floor", 1.01),
    ("size", 15), ("size", 257), ("min_crop", 0.0), ("min_crop", 1.2), ("crop_step", 0.0), ("crop_step", 0.51),
    ("sigma", -0.1), ("sigma", 16.5), ("refine_gate", -1.1), ("refine_gate", 1.1), ("coarse_factor", 0),
    ("coarse_factor", 9), ("blocks", 0), ("blocks", 17), ("ratio_floor", 1.1), ("ratio", -0.1), ("ratio", 1.5),
    ("threads", 0), ("threads", 65),
    ("n_candidates", True), ("size", 64.0), ("refine", 1), ("ratio", "0.7"),  # wrong types, bool is not a count
])
def test_out_of_range_or_mistyped_knobs_are_rejected(name, value):
    with pytest.raises(ValueError, match=name):
        CopyVerificationConfig(**{name: value})


def test_bounds_are_the_declared_ones():
    assert knob_bounds(CopyVerificationConfig, "size") == {
        "default": 64, "description": "side (px) of the luminance thumbnails registered", "ge": 16, "le": 256}
    assert knob_bounds(CopyVerificationConfig, "refine")["default"] is True
    with pytest.raises(KeyError, match="no field 'k'"):
        knob_bounds(CopyVerificationConfig, "k")
    # every bound is accepted at its limit (where the joint constraints allow)
    assert CopyVerificationConfig(n_candidates=100, candidate_floor=1.0, min_crop=1.0, crop_step=0.5, sigma=16,
                                  refine_gate=-1, ratio_floor=-1, ratio=0, threads=64).threads == 64
    assert CopyVerificationConfig(size=16, coarse_factor=8, blocks=8).blocks == 8
    assert CopyVerificationConfig(size=256, coarse_factor=1, blocks=16).size == 256


def test_joint_constraints_name_the_parameters():
    with pytest.raises(ValueError, match="coarse_factor 3 must divide size 64"):
        CopyVerificationConfig(coarse_factor=3)
    with pytest.raises(ValueError, match="blocks 16 leaves tiles under 2 px of size 16"):
        CopyVerificationConfig(size=16, blocks=16, coarse_factor=1)
    with pytest.raises(ValueError, match="verify_coarse_factor 3 must divide verify_size 64"):
        CopyVerificationConfig.from_params({"verify_size": 64, "verify_coarse_factor": 3})
    with pytest.raises(ValueError, match="verify_ratio = 1.5 violates le 1"):
        CopyVerificationConfig.from_params({"verify_ratio": 1.5})


def test_from_params_reads_the_prefixed_keys_only():
    params = {"verify_n_candidates": 4, "verify_size": 96, "verify_blocks": 3, "verify_pairs": True,
              "n_neighbors": 20, "size": 7}
    assert CopyVerificationConfig.from_params(params) == CopyVerificationConfig(n_candidates=4, size=96, blocks=3)
    assert CopyVerificationConfig.from_params({"copy_size": 32}, prefix="copy_").size == 32


def test_accepted_pairs_apply_the_configs_floor_ratio_and_saturation():
    # hand-made scores: (0, 1) strong; (2, 3) at 0.80, whose best competitor (2, 4) is 0.30:
    # 1 - 0.80 = 0.20 <= 0.7 * (1 - 0.30) = 0.49 -> accepted by the ratio test; (5, 6) at 0.60 is under the floor
    pairs = pd.DataFrame({"i": [0, 2, 2, 5], "j": [1, 3, 4, 6], "similarity": [0.99, 0.80, 0.30, 0.60]})
    config = CopyVerificationConfig(n_candidates=1)
    got = accepted_pairs(pairs, 0.95, config)
    assert got[["i", "j"]].values.tolist() == [[0, 1], [2, 3]]
    assert got["accepted_by"].tolist() == ["threshold", "ratio"]
    assert got.attrs["saturated"] == 4  # images 0, 1, 2, 3 each have >= 1 accepted pair: their lists may be short
    strict = accepted_pairs(pairs, 0.95, CopyVerificationConfig(ratio=0.2))  # 0.20 > 0.2 * 0.70: rejected
    assert strict[["i", "j"]].values.tolist() == [[0, 1]]
    rule = partial(accepted_pairs, pairs, config=config)  # the rule as a function of the threshold
    assert rule(0.75)[["i", "j"]].values.tolist() == [[0, 1], [2, 3]]


def test_registered_candidates_verify_the_embedding_neighbours(tmp_path, rng):
    base = rng.random((64, 64))
    files = []
    for name, arr in (("source", base), ("mirror", base[:, ::-1]), ("other", rng.random((64, 64)))):
        files.append(str(tmp_path / f"{name}.png"))
        Image.fromarray((arr * 255).astype(np.uint8), "L").convert("RGB").save(files[-1])
    files.append(str(tmp_path / "missing.png"))
    vectors = np.array([[1.0, 0.0], [0.99, 0.1], [0.9, 0.3], [0.0, 1.0]], np.float32)  # 3 is nobody's candidate
    candidates, scored, readable = registration.registered_candidates(
        vectors, files, CopyVerificationConfig(n_candidates=2, candidate_floor=0.5, size=32), progress=False)
    assert readable.tolist() == [True, True, True, False]
    assert set(zip(candidates["i"], candidates["j"])) == {(0, 1), (0, 2), (1, 2)}
    s = scored.set_index(["i", "j"])["similarity"]
    assert s[(0, 1)] > 0.99 and abs(s[(0, 2)]) < 0.3 and abs(s[(1, 2)]) < 0.3  # the mirror copy, found on pixels
    assert scored.set_index(["i", "j"])["embedding_similarity"][(0, 1)] == pytest.approx(
        float(vectors[0] @ vectors[1] / np.linalg.norm(vectors[1])), abs=1e-5)
    with pytest.raises(ValueError, match="4 vectors but 3 paths"):
        registration.registered_candidates(vectors, files[:3])
