"""Fixtures for the embedding tests: tiny images written to disk, and a transparent fake encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(1)


class MeanColourEncoder:
    """Independent reference encoder: per-channel mean and std of the decoded pixels.

    A pixel (0, 0) of pure magenta yields a NaN vector and pure black a constant vector, so that the
    extraction's vector checks can be exercised deterministically.
    """

    name = "meancolour"
    image_size = 16
    dim = 6
    identity = "meancolour-v1"

    def __init__(self, fail_on_call: int | None = None):
        self.calls = 0
        self.fail_on_call = fail_on_call

    def encode_uint8(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.fail_on_call is not None and self.calls == self.fail_on_call:
            raise RuntimeError("simulated crash")
        x = batch.astype(np.float64)
        out = np.concatenate([x.mean(axis=(1, 2)), x.std(axis=(1, 2))], axis=1)
        for i, img in enumerate(batch):
            if tuple(img[0, 0]) == (255, 0, 255):
                out[i] = np.nan
            elif tuple(img[0, 0]) == (0, 0, 0):
                out[i] = 7.0
        return out.astype(np.float32)


def expected_meancolour(pixels: np.ndarray) -> np.ndarray:
    x = pixels.astype(np.float64)
    v = np.concatenate([x.mean(axis=(0, 1)), x.std(axis=(0, 1))])
    return (v / np.linalg.norm(v)).astype(np.float32)


@pytest.fixture
def image_dir(tmp_path, rng):
    """24 random RGB PNGs of 16 px (so decoding is identity) and their pixel arrays."""
    paths, pixels = [], []
    for i in range(24):
        arr = rng.integers(1, 255, (16, 16, 3), dtype=np.uint8)
        arr[0, 0] = (10, 20, 30)
        p = tmp_path / f"img_{i:02d}.png"
        Image.fromarray(arr).save(p)
        paths.append(str(p))
        pixels.append(arr)
    return paths, pixels


@pytest.fixture
def encoder_cls():
    return MeanColourEncoder


@pytest.fixture
def expected_vector():
    return expected_meancolour
