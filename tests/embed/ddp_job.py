"""Helper script of test_ddp.py (not a test): run a tiny MAE training or an extraction with
Lightning on ``devices`` CPU processes (DDP, gloo) or one process, and save the result.

    python ddp_job.py train <devices> <image_dir> <out.pt>
    python ddp_job.py extract <devices> <image_dir> <checkpoint.pt> <cache_dir> <out.npy>
    python ddp_job.py fusion <devices> <unused> <out.pt>
    python ddp_job.py shards <devices> <image_dir> <cache_dir> <out.npz> <fail_rank> <fail_on_call>

``shards`` extracts with the transparent mean-colour encoder of ``conftest.py`` (batches of 2, a
part every 2 images); rank ``fail_rank`` raises on its ``fail_on_call``-th batch (-1: no failure).
Rank 0 saves the merged vectors, statuses, and its counts.

``fusion`` trains the fusion projector twice on fixed random member vectors (seeded here, the same
in every process): once against caption vectors, once with member-dropout views; the global batch
is 8 whatever the number of processes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)


def main() -> None:
    mode, devices, image_dir = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    paths = sorted(str(p) for p in image_dir.glob("*.png")) if image_dir.is_dir() else []
    trainer_kwargs = {"accelerator": "cpu", "devices": devices}
    if devices > 1:
        trainer_kwargs["strategy"] = "ddp"
    if mode == "train":
        from skinmap.embed.members.base import OptimConfig
        from skinmap.embed.members.training import train_member
        from skinmap.embed.members.mae import MAEConfig

        global_batch = 8
        cfg = MAEConfig(image_size=16, patch_size=8, embed_dim=32, depth=1, decoder_dim=16,
                        optim=OptimConfig(lr=1e-2, batch_size=global_batch // devices, max_steps=3))
        train_member("mae", "mae_ddp", cfg, paths, sys.argv[4],
                     trainer_kwargs={**trainer_kwargs, "deterministic_order": True})
    elif mode == "extract":
        from skinmap.embed.extract import extract_vectors
        from skinmap.embed.members.training import TrainedImageEncoder

        enc = TrainedImageEncoder.load(sys.argv[4])
        res = extract_vectors(paths, enc, sys.argv[5], batch_size=3, progress=False,
                              trainer_kwargs={**trainer_kwargs, "enable_progress_bar": False}, engine="lightning")
        import os

        # every rank returns the full result; rank 0 writes it

        if int(os.environ.get("LOCAL_RANK", "0")) == 0:
            np.save(sys.argv[6], res.vectors)
    elif mode == "fusion":
        import os

        from skinmap.embed.fusion import FusionConfig, fit_fusion

        rng = np.random.default_rng(7)
        members = [rng.standard_normal((24, d)).astype(np.float32) for d in (8, 6)]
        members = [m / np.linalg.norm(m, axis=1, keepdims=True) for m in members]
        text = rng.standard_normal((24, 5)).astype(np.float32)
        cfg = FusionConfig(out_dim=4, epochs=3, lr=5e-2, batch_size=8, structure_lambda=5.0, warmup_steps=4,
                           tau=0.2, member_dropout=0.5, seed=3)
        out = {}
        for variant, t in (("text", text), ("dropout", None)):
            res = fit_fusion(members, cfg, text=t, progress=False, trainer_kwargs=trainer_kwargs)
            out[variant] = {"state_dict": {k: v.detach().clone() for k, v in res.projector.state_dict().items()},
                            "history": res.history}
        import torch.distributed as dist

        out["world_size"] = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if int(os.environ.get("LOCAL_RANK", "0")) == 0:
            torch.save(out, sys.argv[4])
    elif mode == "shards":
        import os
        from datetime import timedelta

        from conftest import MeanColourEncoder
        from lightning.pytorch.strategies import DDPStrategy

        from skinmap.embed.extract import extract_vectors

        rank = int(os.environ.get("LOCAL_RANK", "0"))
        fail_rank, fail_on_call = int(sys.argv[6]), int(sys.argv[7])
        enc = MeanColourEncoder(fail_on_call=fail_on_call if rank == fail_rank else None)
        if devices > 1:  # a dead peer ends the barrier wait quickly instead of after 30 minutes
            trainer_kwargs["strategy"] = DDPStrategy(process_group_backend="gloo", timeout=timedelta(seconds=120))
        res = extract_vectors(paths, enc, sys.argv[4], batch_size=2, shard_size=2, progress=False, engine="lightning",
                              trainer_kwargs={**trainer_kwargs, "enable_progress_bar": False})
        if rank == 0:
            np.savez(sys.argv[5], vectors=res.vectors, status=np.asarray(res.status), n_cached=res.n_cached,
                     n_computed=res.n_computed, world_size=res.extra["world_size"], calls=enc.calls)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
