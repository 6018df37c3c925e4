"""Per-rank sharding by content hash, the merge of a vector cache's parts, and an interrupted
two-process (Lightning DDP, gloo) extraction that a rerun completes.

Every expectation is computed independently of the code under test: hashes with ``hashlib`` on
the file bytes, owners from the hash's leading 60 bits read as bytes, vectors from the
mean-colour formula of ``conftest.py``, the parts' contents read with ``np.load``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from skinmap.embed.extract import VectorCache, extract_vectors
from skinmap.embed.shards import CacheMergeError, clean_parts, merge_vectors, owner_ranks, rank_positions

JOB = Path(__file__).with_name("ddp_job.py")


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _owner(h: str, world: int) -> int:
    # the leading 60 bits of the digest, from its bytes (not from the hex prefix the code parses)
    return (int.from_bytes(bytes.fromhex(h)[:8], "big") >> 4) % world


def _parts(root: Path) -> dict[str, list[str]]:
    out = {}
    for part in sorted(root.glob("part-*.npz")):
        with np.load(part) as z:
            out[part.name] = [str(h) for h in z["hashes"]]
    return out


def test_owner_ranks_partition_the_list_by_content(rng):
    n = 2000
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)] + [None]
    for world in (1, 2, 3, 8):
        owners = owner_ranks(hashes, world)
        np.testing.assert_array_equal(owners[:-1], [_owner(h, world) for h in hashes[:-1]])
        assert owners[-1] == -1
        slices = [rank_positions(hashes, r, world) for r in range(world)]
        assert sorted(np.concatenate(slices).tolist()) == list(range(n))  # each image exactly once
        sd = np.sqrt(n / world * (1 - 1 / world))  # binomial counts: balanced within 5 sd
        assert all(abs(len(s) - n / world) <= 5 * sd for s in slices)
    # a fixed slice of the content: reordering the list moves no image to another rank
    order = rng.permutation(n)
    np.testing.assert_array_equal(owner_ranks([hashes[i] for i in order], 4), owner_ranks(hashes[:-1], 4)[order])
    with pytest.raises(ValueError):
        rank_positions(hashes, 2, 2)


def _planted_cache(tmp_path, rng, n=9, dim=4):
    hashes = [hashlib.sha256(f"img{i}".encode()).hexdigest() for i in range(n)]
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    cache = VectorCache(tmp_path / "cache", "planted", "m")
    order = rng.permutation(n)  # parts hold the images in an order unrelated to the list
    for k, chunk in enumerate(np.array_split(order, 3)):
        cache.write([hashes[i] for i in chunk], vectors[chunk], ["ok"] * len(chunk), tag=f"r{k % 2}-w2-")
    return cache, hashes, vectors


def test_merge_assembles_in_list_order_and_names_what_is_wrong(tmp_path, rng):
    cache, hashes, vectors = _planted_cache(tmp_path, rng)
    listed = [hashes[5], None, hashes[0], hashes[5], *hashes[1:5], *hashes[6:]]
    expected = np.stack([vectors[5], np.full(4, np.nan), vectors[0], vectors[5], *vectors[1:5], *vectors[6:]])
    out, status, report = merge_vectors(cache.root, listed)
    np.testing.assert_array_equal(out, expected)
    assert status[1] == "skipped:missing" and status.count("ok") == len(listed) - 1
    assert (report.n_vectors, report.n_parts, report.bad_parts, report.world_sizes) == (9, 3, [], [2])
    # streamed into an .npy memmap: the same rows
    out_file = tmp_path / "merged.npy"
    merge_vectors(cache.root, listed, out=out_file)
    np.testing.assert_array_equal(np.load(out_file), expected)

    # an image without a vector: named by path, with the rank that owns it
    lost = hashlib.sha256(b"never embedded").hexdigest()
    paths = [f"/data/img{i}.png" for i in range(9)] + ["/data/lost.png"]
    with pytest.raises(CacheMergeError, match=rf"1 image\(s\) have no vector.*rank\(s\) {_owner(lost, 2)}.*/data/lost.png"):
        merge_vectors(cache.root, hashes + [lost], paths=paths)

    # the same image stored twice: identical bytes are harmless, different ones name both parts
    cache.write([hashes[2]], vectors[[2]], ["ok"], tag="r0-w2-")
    assert merge_vectors(cache.root, hashes)[2].n_identical_duplicates == 1
    cache.write([hashes[3]], vectors[[3]] + 1e-6, ["ok"], tag="r1-w2-")
    holders = [name for name, hs in _parts(cache.root).items() if hashes[3] in hs]
    assert len(holders) == 2
    with pytest.raises(CacheMergeError, match="different vectors") as err:
        merge_vectors(cache.root, hashes, paths=paths[:9])
    assert "/data/img3.png" in str(err.value) and all(name in str(err.value) for name in holders)


def test_half_written_and_unreadable_parts_are_ignored_then_cleaned(tmp_path, rng):
    cache, hashes, vectors = _planted_cache(tmp_path, rng)
    good = sorted(cache.root.glob("part-*.npz"))
    lost = _parts(cache.root)[good[0].name]
    # a writer killed mid-write leaves its temporary file; a part truncated outside our writer
    stale = cache.root / ".part-r1-w2-dead.0123456789ab.tmp.npz"
    stale.write_bytes(b"PK\x03\x04 half a zip")
    os.utime(stale, (time.time() - 3600,) * 2)
    fresh = cache.root / ".part-r0-w2-live.0123456789ab.tmp.npz"  # a concurrent writer's: left alone
    fresh.write_bytes(b"PK\x03\x04")
    truncated = cache.root / "part-r1-w2-truncated.npz"
    truncated.write_bytes(good[0].read_bytes()[:-30])
    good[0].unlink()  # its images now exist only in the truncated copy
    with pytest.raises(CacheMergeError, match=f"unreadable parts: {truncated.name}"):
        merge_vectors(cache.root, hashes)
    # the cache's reader skips both too: an extraction would re-embed exactly the lost images
    assert set(cache.load()) == set(hashes) - set(lost)
    cache.write(lost, vectors[[hashes.index(h) for h in lost]], ["ok"] * len(lost), tag="r1-w2-")
    out, _, report = merge_vectors(cache.root, hashes)
    np.testing.assert_array_equal(out, vectors)
    assert [name for name, _ in report.bad_parts] == [truncated.name]
    done = clean_parts(cache.root, bad_parts=[truncated.name])
    assert sorted(done) == sorted([stale.name, truncated.name])
    assert not stale.exists() and fresh.exists() and (cache.root / (truncated.name + ".bad")).exists()
    assert merge_vectors(cache.root, hashes)[2].bad_parts == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _job(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "OMP_NUM_THREADS": "1",
           "PL_DISABLE_FORK": "1"}
    return subprocess.run([sys.executable, str(JOB), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


@pytest.mark.slow
def test_interrupted_rank_is_resumed_and_the_merge_equals_inline(tmp_path, image_dir, encoder_cls, expected_vector):
    paths, pixels = image_dir
    shutil.copy(paths[0], tmp_path / "img_24.png")  # same content twice: one vector, two rows
    (tmp_path / "img_25.png").write_bytes(b"not an image")  # cached as skipped:unreadable
    paths = sorted(str(p) for p in tmp_path.glob("*.png"))  # the job's list
    hashes = [_sha(p) for p in paths]
    owners = np.array([_owner(h, 2) for h in hashes])
    assert (owners == 1).sum() >= 6  # rank 1 has more than the two batches it finishes
    cache = tmp_path / "cache"

    # run 1: rank 1 raises on its third batch (batches and parts of 2 images: two parts are on disk)
    first = _job("shards", "2", str(tmp_path), str(cache), str(tmp_path / "out1.npz"), "1", "3", cwd=tmp_path)
    assert first.returncode != 0 and "simulated crash" in first.stderr
    (root,) = (cache / "vectors").iterdir()
    after_crash = _parts(root)
    by_rank = {r: {h for name, hs in after_crash.items() if name.startswith(f"part-r{r}-w2-") for h in hs}
               for r in (0, 1)}
    assert all(owners[hashes.index(h)] == 0 for h in by_rank[0])  # each rank wrote only its own slice
    assert all(owners[hashes.index(h)] == 1 for h in by_rank[1]) and len(by_rank[1]) == 4
    cached = by_rank[0] | by_rank[1]
    missing = set(hashes) - cached
    assert missing  # rank 1's slice is incomplete

    # run 2: the same job without the failure embeds exactly the missing images
    second = _job("shards", "2", str(tmp_path), str(cache), str(tmp_path / "out2.npz"), "-1", "-1", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    result = np.load(tmp_path / "out2.npz")
    assert int(result["world_size"]) == 2
    assert int(result["n_computed"]) == len(missing) and int(result["n_cached"]) == len(paths) - sum(
        h in missing for h in hashes)
    new_parts = {name: hs for name, hs in _parts(root).items() if name not in after_crash}
    new_hashes = [h for hs in new_parts.values() for h in hs]
    assert sorted(new_hashes) == sorted(missing)  # each missing image once, nothing recomputed
    assert all(name.startswith(f"part-r{owners[hashes.index(h)]}-w2-") for name, hs in new_parts.items() for h in hs)

    # the merged vectors equal a single-process inline extraction, bit for bit, and the formula
    inline = extract_vectors(paths, encoder_cls(), tmp_path / "inline", engine="inline", batch_size=5, progress=False)
    np.testing.assert_array_equal(result["vectors"], inline.vectors)
    assert result["status"].tolist() == inline.status
    assert inline.status[-1] == "skipped:unreadable" and inline.status.count("ok") == len(paths) - 1
    np.testing.assert_allclose(result["vectors"][:24], np.stack([expected_vector(p) for p in pixels]), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(result["vectors"][24], result["vectors"][0])
