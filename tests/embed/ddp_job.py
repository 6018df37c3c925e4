"""Helper script of test_ddp.py (not a test): run a tiny MAE training or an extraction with
Lightning on ``devices`` CPU processes (DDP, gloo) or one process, and save the result.

    python ddp_job.py train <devices> <image_dir> <out.pt>
    python ddp_job.py extract <devices> <image_dir> <checkpoint.pt> <cache_dir> <out.npy>
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)


def main() -> None:
    mode, devices, image_dir = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    paths = sorted(str(p) for p in image_dir.glob("*.png"))
    trainer_kwargs = {"accelerator": "cpu", "devices": devices}
    if devices > 1:
        trainer_kwargs["strategy"] = "ddp"
    if mode == "train":
        from skinmap.embed.members.common import OptimConfig, train_member
        from skinmap.embed.members.mae import MAEConfig

        global_batch = 8
        cfg = MAEConfig(image_size=16, patch_size=8, embed_dim=32, depth=1, decoder_dim=16,
                        optim=OptimConfig(lr=1e-2, batch_size=global_batch // devices, max_steps=3))
        train_member("mae", "mae_ddp", cfg, paths, sys.argv[4],
                     trainer_kwargs={**trainer_kwargs, "deterministic_order": True})
    elif mode == "extract":
        from skinmap.embed.extract import extract_vectors
        from skinmap.embed.members.common import TrainedImageEncoder

        enc = TrainedImageEncoder.load(sys.argv[4])
        res = extract_vectors(paths, enc, sys.argv[5], batch_size=3, progress=False,
                              trainer_kwargs={**trainer_kwargs, "enable_progress_bar": False}, engine="lightning")
        import os

        # every rank returns the full result; rank 0 writes it

        if int(os.environ.get("LOCAL_RANK", "0")) == 0:
            np.save(sys.argv[6], res.vectors)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
