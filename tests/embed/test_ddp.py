"""The distributed path: a tiny training and an extraction with two CPU processes (Lightning DDP,
gloo) give the single-process result.

Training: MAE with per-sample masks keyed by the dataset index and a global batch of 8 split as
2 x 4, so both runs see the same samples per step and DDP's averaged gradient equals the
single-process mean gradient; the weights must agree to float tolerance. Extraction: every image's
vector from the DDP run (two ranks writing their own cache shards) equals the inline run's.

Fusion: the projector's losses (InfoNCE, STRUCTURE JSD) are batch-level, so "equal where it should"
means: the DDP run computes the loss of the *global* batch (per-rank projections all-gathered with
gradients, the same seeded batch order on every rank, member-dropout draws keyed by row and step),
and then its weights and loss history equal the single-process run's to float tolerance -- for the
caption objective and for the member-dropout objective.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

JOB = Path(__file__).with_name("ddp_job.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*args: str, cwd: Path) -> None:
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "OMP_NUM_THREADS": "1",
           "PL_DISABLE_FORK": "1"}
    proc = subprocess.run([sys.executable, str(JOB), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_ddp_training_and_extraction_equal_single_process(tmp_path, rng):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(16):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(images / f"{i:02d}.png")
    _run("train", "1", str(images), str(tmp_path / "single.pt"), cwd=tmp_path)
    _run("train", "2", str(images), str(tmp_path / "ddp.pt"), cwd=tmp_path)
    single = torch.load(tmp_path / "single.pt", weights_only=False)["state_dict"]
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=False)["state_dict"]
    for key in single:
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-4, atol=1e-5, msg=f"parameter {key} differs")
    # the run really trained (weights moved from a fresh seeded init)
    from skinmap.embed.members.registry import build_module
    from skinmap.embed.members.mae import MAEConfig
    import lightning as L

    L.seed_everything(0, verbose=False)
    fresh = build_module("mae", "x", MAEConfig(image_size=16, patch_size=8, embed_dim=32, depth=1, decoder_dim=16)).state_dict()
    assert not torch.allclose(fresh["decoder_pred.weight"], single["decoder_pred.weight"])

    _run("extract", "1", str(images), str(tmp_path / "single.pt"), str(tmp_path / "cache1"), str(tmp_path / "v1.npy"), cwd=tmp_path)
    _run("extract", "2", str(images), str(tmp_path / "single.pt"), str(tmp_path / "cache2"), str(tmp_path / "v2.npy"), cwd=tmp_path)
    v1, v2 = np.load(tmp_path / "v1.npy"), np.load(tmp_path / "v2.npy")
    assert v1.shape == (16, 32) and np.isfinite(v1).all()
    np.testing.assert_allclose(v2, v1, rtol=1e-5, atol=1e-6)
    # both ranks wrote their own shards into the cache
    assert {p.name.split("-")[1] for p in (tmp_path / "cache2").glob("vectors/*/part-*.npz")} == {"r0", "r1"}


@pytest.mark.slow
def test_ddp_fusion_equals_single_process(tmp_path):
    _run("fusion", "1", "-", str(tmp_path / "single.pt"), cwd=tmp_path)
    _run("fusion", "2", "-", str(tmp_path / "ddp.pt"), cwd=tmp_path)
    single = torch.load(tmp_path / "single.pt", weights_only=False)
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=False)
    assert single["world_size"] == 1 and ddp["world_size"] == 2  # the second run really was distributed
    from skinmap.embed.fusion import FusionConfig, build_projector

    for variant in ("text", "dropout"):
        s, d = single[variant], ddp[variant]
        # 24 rows, global batch 8, 3 epochs -> 9 optimiser steps in both runs
        assert [r["step"] for r in s["history"]] == [r["step"] for r in d["history"]] == list(range(9))
        np.testing.assert_allclose([r["loss"] for r in d["history"]], [r["loss"] for r in s["history"]], rtol=1e-5)
        assert s["state_dict"].keys() == d["state_dict"].keys()
        for key in s["state_dict"]:
            torch.testing.assert_close(d["state_dict"][key], s["state_dict"][key], rtol=1e-4, atol=1e-5,
                                       msg=f"{variant}: parameter {key} differs")
    # the projector really trained: the image map moved away from its PCA initialisation
    rng = np.random.default_rng(7)  # the job's data (ddp_job.py, mode fusion)
    members = [rng.standard_normal((24, d)).astype(np.float32) for d in (8, 6)]
    members = [m / np.linalg.norm(m, axis=1, keepdims=True) for m in members]
    init = build_projector(members, FusionConfig(out_dim=4, seed=3)).state_dict()["image.weight"]
    assert (single["text"]["state_dict"]["image.weight"] - init).abs().max() > 1e-2
