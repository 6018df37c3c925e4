"""The frozen EfficientNet-Lite0 member: concurrent sub-batch runs equal one run and eager
PyTorch; and its vectors under the reduced (half-scale DCT) JPEG decode stay close to those of
a full decode, on lesion-like synthetic photographs and on real dermoscopy images."""

from __future__ import annotations

import io
import pickle
import threading

import numpy as np
import pytest
from PIL import Image, ImageDraw

from skinmap.embed.images import DRAFT_MIN_RATIO, decode_image
from skinmap.embed.members.efficientnet_onnx import EfficientNetLite0


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("lite0_onnx")


@pytest.fixture(scope="module")
def batch():
    return np.random.default_rng(7).integers(0, 255, (7, 32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def one_run(onnx_cache, batch):
    """All 7 images in a single single-threaded session.run: the reference."""
    return EfficientNetLite0(onnx_cache, image_size=32, num_threads=1, chunk=64).encode_uint8(batch)


@pytest.mark.parametrize("threads,chunk", [(2, 2), (2, 4), (3, 1), (2, 64)])
def test_concurrent_sub_batches_equal_one_run(onnx_cache, batch, one_run, threads, chunk):
    member = EfficientNetLite0(onnx_cache, image_size=32, num_threads=threads, chunk=chunk)
    got = member.encode_uint8(batch)
    assert got.dtype == np.float32 and got.shape == (7, 1280)
    np.testing.assert_allclose(got, one_run, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(member.encode_uint8(batch[:1]), one_run[:1], rtol=1e-6, atol=1e-7)


def test_chunked_onnx_equals_eager_torch(onnx_cache, batch):
    onnx = EfficientNetLite0(onnx_cache, image_size=32, num_threads=2, chunk=2).encode_uint8(batch)
    eager = EfficientNetLite0(onnx_cache, image_size=32, backend="torch").encode_uint8(batch)
    np.testing.assert_allclose(onnx, eager, rtol=1e-3, atol=1e-4)


def test_callers_on_several_threads_get_their_own_rows(onnx_cache, batch, one_run):
    member = EfficientNetLite0(onnx_cache, image_size=32, num_threads=2, chunk=1)
    out: dict[int, np.ndarray] = {}

    def call(i: int) -> None:
        out[i] = member.encode_uint8(batch[i:i + 3])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        np.testing.assert_allclose(out[i], one_run[i:i + 3], rtol=1e-6, atol=1e-7)


def test_pickles_without_session_or_pool(onnx_cache, batch, one_run):
    member = EfficientNetLite0(onnx_cache, image_size=32, num_threads=2, chunk=2)
    member.encode_uint8(batch[:2])  # session and pool exist now
    clone = pickle.loads(pickle.dumps(member))
    assert "_session" not in clone.__dict__ and "_pool" not in clone.__dict__
    np.testing.assert_allclose(clone.encode_uint8(batch), one_run, rtol=1e-6, atol=1e-7)


def test_rejects_bad_settings(onnx_cache):
    with pytest.raises(ValueError, match="chunk"):
        EfficientNetLite0(onnx_cache, chunk=0)
    with pytest.raises(ValueError, match="num_threads"):
        EfficientNetLite0(onnx_cache, num_threads=0)


# --- the reduced JPEG decode, measured by the member's vectors ---------------------------------

SIZE = 224  # the member's real input size: the reduction only happens for sides >= 4 x 224


def _lesion_jpeg(rng: np.random.Generator, w: int = 1200, h: int = 900) -> bytes:
    """A dermoscopy-like photograph: irregular pigmented lesion with a fine network, skin
    texture at three scales, hairs; JPEG quality 90."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    k = w / 600
    cx, cy = rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h
    angle = np.arctan2(yy - cy, xx - cx)
    radius = k * rng.uniform(60, 140) * (1 + 0.15 * np.sin(3 * angle + rng.uniform(0, 6)) + 0.08 * np.sin(7 * angle))
    inside = 1 / (1 + np.exp((np.hypot(xx - cx, yy - cy) - radius) / (6 * k)))
    skin, brown = rng.uniform([200, 150, 120], [235, 185, 160]), rng.uniform([80, 40, 20], [140, 90, 60])
    img = skin * (1 - inside[..., None]) + brown * inside[..., None]
    img -= 25 * (inside * (0.5 + 0.5 * np.sin(xx / (3.1 * k)) * np.sin(yy / (2.7 * k))))[..., None]
    for step, amplitude in ((1, 6), (4, 5), (16, 8)):
        s = max(1, int(step * k))
        noise = rng.normal(0, 1, (h // s + 1, w // s + 1))
        img += amplitude * np.kron(noise, np.ones((s, s)))[:h, :w, None]
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(3, 12))):
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        end = (x0 + k * rng.uniform(-300, 300), y0 + k * rng.uniform(-300, 300))
        draw.line([(x0, y0), end], fill=(40, 30, 25), width=max(1, int(k * rng.integers(1, 3))))
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _cosines_reduced_vs_full(datas: list[bytes], cache) -> np.ndarray:
    for data in datas:  # every image must actually take the reduced path
        assert min(Image.open(io.BytesIO(data)).size) >= DRAFT_MIN_RATIO * SIZE
    reduced = np.stack([decode_image(d, SIZE).pixels for d in datas])
    full = np.stack([decode_image(d, SIZE, jpeg_draft=False).pixels for d in datas])
    assert not np.array_equal(reduced, full)
    member = EfficientNetLite0(cache, image_size=SIZE, backend="torch")  # same function as ONNX, no export
    a, b = member.encode_uint8(reduced).astype(np.float64), member.encode_uint8(full).astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_reduced_decode_vectors_close_to_full_decode_synthetic(onnx_cache):
    rng = np.random.default_rng(3)
    cos = _cosines_reduced_vs_full([_lesion_jpeg(rng) for _ in range(6)], onnx_cache)
    # Measured 0.9989-0.9997 (a reduction to just above the target size: 0.985-0.994).
    assert cos.min() > 0.997, cos


@pytest.mark.realdata
def test_reduced_decode_vectors_close_to_full_decode_real(onnx_cache, shared_data_root):
    files = sorted((shared_data_root / "images").rglob("*.jpg"))
    assert len(files) >= 100
    datas = []
    for path in files[:: len(files) // 8][:8]:  # the shared copies are small: enlarged to 1200x900
        buf = io.BytesIO()
        Image.open(path).convert("RGB").resize((1200, 900), Image.LANCZOS).save(buf, "JPEG", quality=90)
        datas.append(buf.getvalue())
    cos = _cosines_reduced_vs_full(datas, onnx_cache)
    # Measured 0.9979-0.9993 (a reduction to just above the target size: 0.991-0.997).
    assert cos.min() > 0.997, cos
