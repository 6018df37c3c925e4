"""The paper-scale vector atlas generator (issue 19): counts, file format, determinism, bounded
chunks, and the planted answers checked by direct numpy computation at small n."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import linalg

from skinmap.data.synthetic import scale
from skinmap.data.synthetic.scale import (
    DATASET_SIZES,
    RELEASE_YEARS,
    allocate_rows,
    load_scale_atlas,
    write_scale_atlas,
)

N, DIM = 30_000, 64


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    out = tmp_path_factory.mktemp("scale")
    write_scale_atlas(out, N, DIM, seed=3, chunk_rows=4096)
    vectors, rows, planted = load_scale_atlas(out)
    z = np.asarray(vectors, dtype=np.float64)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    return out, vectors, rows, planted, z


def test_allocation_is_proportional_and_exact():
    total = sum(DATASET_SIZES.values())
    assert len(DATASET_SIZES) == 29 and total == 1_136_045
    assert allocate_rows(total) == DATASET_SIZES
    for n in (100_000, 300_000, 1_135_082, 12_345):
        counts = allocate_rows(n)
        assert sum(counts.values()) == n
        for name, size in DATASET_SIZES.items():
            assert abs(counts[name] - size * n / total) < 1.0
    small = allocate_rows(1_000, min_rows=2)
    assert sum(small.values()) == 1_000 and min(small.values()) == 2
    with pytest.raises(ValueError):
        allocate_rows(50, min_rows=2)


def test_files_shapes_counts_and_years(atlas):
    out, vectors, rows, planted, _ = atlas
    assert isinstance(vectors, np.memmap) and vectors.shape == (N, DIM) and vectors.dtype == np.float32
    assert len(rows) == N and (rows["row"].to_numpy() == np.arange(N)).all()
    assert rows["uid"].is_unique
    counts = rows["dataset"].value_counts()
    assert {k: int(counts[k]) for k in DATASET_SIZES} == allocate_rows(N)
    years = rows.groupby("dataset", observed=True)["release_year"].agg(["min", "max"])
    for name, year in RELEASE_YEARS.items():
        assert years.loc[name, "min"] == years.loc[name, "max"] == year
    # rows in release order (the novelty history of a year is a prefix)
    assert (np.diff(rows["release_year"].to_numpy()) >= 0).all()
    assert json.loads((out / "planted.json").read_text())["counts"] == allocate_rows(N)
    assert rows["lesion_id"].notna().all() and rows["diagnosis"].notna().all()


def test_deterministic_by_seed(tmp_path):
    a = write_scale_atlas(tmp_path / "a", 3_000, DIM, seed=5, chunk_rows=700)
    b = write_scale_atlas(tmp_path / "b", 3_000, DIM, seed=5, chunk_rows=700)
    c = write_scale_atlas(tmp_path / "c", 3_000, DIM, seed=6, chunk_rows=700)
    assert a.vectors.read_bytes() == b.vectors.read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(a.rows), pd.read_parquet(b.rows))
    assert a.vectors.read_bytes() != c.vectors.read_bytes()


class _Recorder:
    """Wraps the output memmap and records the row count of every write."""

    def __init__(self, inner, sizes):
        self.inner, self.sizes = inner, sizes

    def __setitem__(self, key, value):
        self.sizes.append(len(np.asarray(value)))
        self.inner[key] = value

    def __getitem__(self, key):
        return self.inner[key]

    def flush(self):
        self.inner.flush()


def test_chunk_rows_bound_every_write(tmp_path, monkeypatch):
    sizes: list[int] = []
    real = np.lib.format.open_memmap
    monkeypatch.setattr(scale.np.lib.format, "open_memmap", lambda *a, **k: _Recorder(real(*a, **k), sizes))
    write_scale_atlas(tmp_path, 5_000, DIM, seed=0, chunk_rows=300)
    assert sum(sizes) == 5_000 and max(sizes) <= 300


def _frechet(x, y):
    mx, my = x.mean(0), y.mean(0)
    sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = linalg.sqrtm(sx @ sy).real
    return float(((mx - my) ** 2).sum() + np.trace(sx + sy - 2 * root))


def test_near_copy_pair_has_the_smallest_fd(atlas):
    _, _, rows, planted, z = atlas
    ds = rows["dataset"].astype(str).to_numpy()
    names = [k for k in DATASET_SIZES if (ds == k).sum() > 30]  # covariances need some rows
    assert set(planted["near_copy_pair"]["datasets"]) <= set(names)
    fd = {(a, b): _frechet(z[ds == a], z[ds == b]) for i, a in enumerate(names) for b in names[i + 1:]}
    best = min(fd, key=fd.get)
    assert set(best) == set(planted["near_copy_pair"]["datasets"])
    second = sorted(fd.values())[1]
    assert fd[best] < 0.5 * second


def _mean_knn_distance(queries, base, k, exclude_self=False):
    sims = queries @ base.T
    if exclude_self:
        sims[np.arange(len(queries)), np.arange(len(queries))] = -np.inf
    top = -np.partition(-sims, k - 1, axis=1)[:, :k]
    return float((1 - top).mean())


def _ratio(z, years, year, rng, k=10, max_points=1500):
    hist = np.flatnonzero(years < year)
    new = np.flatnonzero(years == year)
    new = rng.choice(new, size=min(max_points, len(new)), replace=False)
    nu = _mean_knn_distance(z[new], z[hist], k)
    # the null's expectation: the mean leave-self-out k-NN distance of history points
    sample = rng.choice(hist, size=min(max_points, len(hist)), replace=False)
    others = np.concatenate([sample, np.setdiff1d(hist, sample)])
    null = _mean_knn_distance(z[sample], z[others], k, exclude_self=True)
    return nu / null


def test_planted_novelty_years(atlas):
    _, _, rows, planted, z = atlas
    years = rows["release_year"].to_numpy()
    rng = np.random.default_rng(0)
    resampled = _ratio(z, years, planted["resampled_year"]["year"], rng)
    novel = _ratio(z, years, planted["novel_year"]["year"], rng)
    assert 0.9 < resampled < 1.1
    assert novel > 1.5


def test_planted_hole_loop_around_an_empty_centre(atlas):
    out, _, rows, planted, z = atlas
    hole = planted["hole"]
    geo = np.load(out / "planted_geometry.npz")
    centre = geo["hole_centre"].astype(np.float64)
    centre /= np.linalg.norm(centre)
    ring = np.arange(hole["row_start"], hole["row_stop"])
    assert (rows["dataset"].astype(str).to_numpy()[ring] == hole["dataset"]).all()
    assert (rows["diagnosis"].astype(str).to_numpy()[ring] == hole["diagnosis"]).all()
    dist = np.linalg.norm(z - centre, axis=1)
    r = hole["radius_normalised"]
    assert np.allclose(dist[ring], r, rtol=0.1)
    assert dist.min() > 0.8 * r  # the disc inside the loop is empty
    # the loop goes all the way round in its plane
    angles = np.arctan2(z[ring] @ geo["hole_plane"][1], z[ring] @ geo["hole_plane"][0])
    assert np.histogram(angles, bins=12, range=(-np.pi, np.pi))[0].min() > 0
