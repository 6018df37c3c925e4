"""The frozen member's vectors of mirrored images (the quality chapter's mirror-invariant descriptor)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from skinmap.embed import mirrored


def test_mirror_vectors_need_a_frozen_member():
    specs = [{"name": "dino", "kind": "dino"}]
    with pytest.raises(ValueError, match="not a frozen efficientnet_lite0"):
        mirrored.frozen_member_spec(specs, member="dino")
    with pytest.raises(ValueError, match="members: \\['dino'\\]"):
        mirrored.frozen_member_spec(specs, member="efficientnet_lite0")
    with pytest.raises(ValueError, match="not a frozen efficientnet_lite0"):
        mirrored.member_mirror_vectors(["x.png"], specs[0], "unused")


def test_encoder_cache_prefers_an_existing_graph_of_the_same_size(tmp_path):
    shared, own = tmp_path / "embedding_cache", tmp_path / "quality_cache"
    spec = {"name": "efficientnet_lite0", "kind": "efficientnet_lite0", "image_size": 32}
    assert mirrored.encoder_cache_dir(spec, shared, own) == own  # nothing exported yet
    (shared / "onnx").mkdir(parents=True)
    (shared / "onnx" / "efficientnet_lite0-abc-64px.onnx").write_bytes(b"")
    assert mirrored.encoder_cache_dir(spec, shared, own) == own  # another input size does not count
    (shared / "onnx" / "efficientnet_lite0-abc-32px.onnx").write_bytes(b"")
    assert mirrored.encoder_cache_dir(spec, shared, own) == shared


@pytest.mark.slow
def test_mirror_vectors_equal_vectors_of_mirrored_files(tmp_path, rng):
    pytest.importorskip("onnxruntime")
    from skinmap.embed.images import read_image
    from skinmap.embed.members.efficientnet_onnx import EfficientNetLite0

    spec = {"name": "efficientnet_lite0", "kind": "efficientnet_lite0", "image_size": 32, "threads": 1}
    paths, mirrored_files = [], []
    for k in range(3):
        img = Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
        img.save(tmp_path / f"{k}.png")
        img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / f"{k}_m.png")
        paths.append(str(tmp_path / f"{k}.png"))
        mirrored_files.append(str(tmp_path / f"{k}_m.png"))
    cache = mirrored.encoder_cache_dir(spec, tmp_path / "embedding" / "cache", tmp_path / "quality" / "cache")
    got, ok = mirrored.member_mirror_vectors(paths + [str(tmp_path / "missing.png")], spec, cache, progress=False)
    assert ok.tolist() == [True, True, True, False] and np.isnan(got[3]).all()
    assert (tmp_path / "quality" / "cache" / "onnx").is_dir()  # exported into the chapter's own folder
    enc = EfficientNetLite0(tmp_path / "quality" / "cache", image_size=32, num_threads=1)
    want = enc.encode_uint8(np.stack([read_image(p, 32)[0].pixels for p in mirrored_files]))
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    # PIL's resize of a mirror is the mirror of the resize up to pixel rounding
    assert (np.sum(got[:3] * want, axis=1) > 0.999).all()
