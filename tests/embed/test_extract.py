"""Extraction: vectors equal a direct computation; cache, resume and bad input behave."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from skinmap.embed.extract import extract_vectors, validate_vectors


def test_vectors_match_direct_computation(image_dir, encoder_cls, tmp_path, expected_vector):
    paths, pixels = image_dir
    res = extract_vectors(paths, encoder_cls(), tmp_path / "cache", batch_size=5, progress=False)
    assert res.counts() == {"ok": len(paths)}
    expected = np.stack([expected_vector(p) for p in pixels])
    np.testing.assert_allclose(res.vectors, expected, rtol=1e-5, atol=1e-6)


def test_cache_reuses_content_not_names(image_dir, encoder_cls, tmp_path):
    paths, _ = image_dir
    cache = tmp_path / "cache"
    first = extract_vectors(paths[:10], encoder_cls(), cache, batch_size=4, progress=False)
    renamed = tmp_path / "renamed.png"
    shutil.copy(paths[0], renamed)  # same bytes under a new name: a cache hit
    enc = encoder_cls()
    second = extract_vectors(paths + [str(renamed)], enc, cache, batch_size=4, progress=False)
    assert first.n_computed == 10
    assert second.n_cached == 11 and second.n_computed == len(paths) - 10
    np.testing.assert_array_equal(second.vectors[-1], second.vectors[0])
    # a different encoder identity never reuses these vectors
    other = encoder_cls()
    other.identity = "meancolour-v2"
    assert extract_vectors(paths[:3], other, cache, progress=False).n_computed == 3


def test_resume_after_crash(image_dir, encoder_cls, tmp_path, expected_vector):
    paths, pixels = image_dir
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="simulated crash"):
        extract_vectors(paths, encoder_cls(fail_on_call=4), cache, batch_size=4, shard_size=4, progress=False)
    res = extract_vectors(paths, encoder_cls(), cache, batch_size=4, shard_size=4, progress=False)
    assert res.n_cached == 12 and res.n_computed == 12  # three full shards survived the crash
    np.testing.assert_allclose(res.vectors, np.stack([expected_vector(p) for p in pixels]), rtol=1e-5, atol=1e-6)


def test_bad_inputs_are_counted_never_silent(image_dir, encoder_cls, tmp_path, expected_vector):
    paths, pixels = image_dir
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "truncated.jpg").write_bytes(open(paths[0], "rb").read()[:60])
    (bad / "text.png").write_bytes(b"not an image at all")
    gray = np.full((16, 16), 90, np.uint8)
    Image.fromarray(gray, mode="L").save(bad / "gray.png")
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[..., 1] = 60
    rgba[0, 0] = (5, 6, 7, 255)
    Image.fromarray(rgba, mode="RGBA").save(bad / "rgba.png")
    Image.fromarray(np.full((16, 16), 40000, np.uint16)).save(bad / "deep.png")
    nan_img = np.full((16, 16, 3), 50, np.uint8)
    nan_img[0, 0] = (255, 0, 255)
    Image.fromarray(nan_img).save(bad / "nan.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(bad / "black.png")
    names = ["truncated.jpg", "text.png", "gray.png", "rgba.png", "deep.png", "nan.png", "black.png"]
    all_paths = paths[:3] + [str(bad / n) for n in names] + [str(bad / "missing.png"), None]
    res = extract_vectors(all_paths, encoder_cls(), tmp_path / "cache", batch_size=4, progress=False)
    assert res.status[3:] == ["skipped:truncated", "skipped:unreadable", "converted:grayscale", "converted:rgba",
                              "converted:16bit", "skipped:nan_vector", "skipped:constant_vector",
                              "skipped:missing", "skipped:missing"]
    assert np.isnan(res.vectors[~res.ok]).all() and np.isfinite(res.vectors[res.ok]).all()
    np.testing.assert_allclose(res.vectors[5], expected_vector(np.repeat(gray[..., None], 3, 2)), rtol=1e-5)
    deep = np.full((16, 16, 3), round(40000 * 255 / 65535), np.uint8)
    np.testing.assert_allclose(res.vectors[7], expected_vector(deep), rtol=1e-5)
    assert res.counts()["ok"] == 3 and sum(res.counts().values()) == len(all_paths)


def test_validate_vectors_direct():
    x = np.array([[3.0, 4.0, 0.0], [np.nan, 1, 1], [2.0, 2.0, 2.0], [0.0, 0.0, 0.0]], np.float32)
    out, status = validate_vectors(x)
    assert status == ["ok", "skipped:nan_vector", "skipped:constant_vector", "skipped:constant_vector"]
    np.testing.assert_allclose(out[0], [0.6, 0.8, 0.0])
    assert np.isnan(out[1:]).all()


def test_empty_input(encoder_cls, tmp_path):
    res = extract_vectors([], encoder_cls(), tmp_path / "cache", progress=False)
    assert res.vectors.shape == (0, 6) and res.counts() == {}


def test_lightning_engine_equals_inline(image_dir, encoder_cls, tmp_path):
    paths, _ = image_dir
    inline = extract_vectors(paths, encoder_cls(), tmp_path / "a", batch_size=5, engine="inline", progress=False)
    viaL = extract_vectors(paths, encoder_cls(), tmp_path / "b", batch_size=5, progress=False,
                           trainer_kwargs={"accelerator": "cpu", "devices": 1, "enable_progress_bar": False})
    assert viaL.n_computed == len(paths)
    np.testing.assert_array_equal(viaL.vectors, inline.vectors)


def test_cache_key_includes_the_decoding_recipe(image_dir, encoder_cls, tmp_path, monkeypatch):
    import skinmap.embed.extract as extract

    paths, _ = image_dir
    cache = tmp_path / "cache"
    first = extract_vectors(paths[:4], encoder_cls(), cache, progress=False)
    assert first.identity == f"{encoder_cls.identity}|{extract.PREPROCESSING}"
    monkeypatch.setattr(extract, "PREPROCESSING", "another-recipe")
    assert extract_vectors(paths[:4], encoder_cls(), cache, progress=False).n_computed == 4
    monkeypatch.undo()
    assert extract_vectors(paths[:4], encoder_cls(), cache, progress=False).n_cached == 4


def test_decode_ahead_keeps_order_and_reraises():
    from skinmap.embed.extract import decode_ahead

    assert list(decode_ahead(iter(range(50)), depth=3)) == list(range(50))
    assert list(decode_ahead([])) == []

    def broken():
        yield 1
        raise ValueError("bad batch")

    got = []
    with pytest.raises(ValueError, match="bad batch"):
        for x in decode_ahead(broken()):
            got.append(x)
    assert got == [1]


def test_decode_ahead_stops_its_thread_when_the_consumer_stops():
    import threading

    from skinmap.embed.extract import decode_ahead

    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    it = decode_ahead(endless(), depth=2)
    assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
    it.close()  # what leaving a for loop early (or an exception in its body) does
    assert not any(t.name == "decode-ahead" for t in threading.enumerate())
    assert len(produced) <= 5 + 2 + 1  # at most depth ahead, plus the one being put


def test_decode_thread_equals_worker_process(image_dir, encoder_cls, tmp_path):
    paths, _ = image_dir
    thread = extract_vectors(paths, encoder_cls(), tmp_path / "a", batch_size=5, num_workers=0, progress=False)
    worker = extract_vectors(paths, encoder_cls(), tmp_path / "b", batch_size=5, num_workers=1, progress=False)
    np.testing.assert_array_equal(thread.vectors, worker.vectors)
    assert thread.status == worker.status
