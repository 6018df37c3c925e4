"""Acquisition steering: novelty against brute force, FD against sqrtm, holes, duplicates, CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import linalg

sys.path.insert(0, str(Path(__file__).parent / "atlas"))
import _fake_run  # noqa: E402

from skinmap import assess as assess_mod  # noqa: E402
from skinmap.io import write_json  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return _fake_run.make_fake_run(tmp_path_factory.mktemp("run"), n=160)


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def fd_sqrtm(a, b):
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


def test_novelty_matches_brute_force_and_flags_a_new_region(run, rng):
    atlas = np.load(run / "embedding" / "fused.npy").astype(np.float64)
    new_dir = unit(rng.normal(size=(1, 16)))
    cohort = unit(new_dir + 0.1 * rng.normal(size=(25, 16)))
    rep = assess_mod.assess(pd.DataFrame({"uid": [f"c{i}" for i in range(25)]}), run,
                            vectors=cohort, k=5, n_bootstrap=300, fd_covariance="empirical")
    sims = unit(cohort) @ atlas.T
    top = -np.sort(-sims, axis=1)[:, :5]
    brute_d = (1 - top).mean(axis=1)
    np.testing.assert_allclose(rep.per_image["novelty"], brute_d, atol=1e-5)
    assert rep.novelty["nu"] == pytest.approx(brute_d.mean(), abs=1e-5)
    self_sims = atlas @ atlas.T
    np.fill_diagonal(self_sims, -np.inf)
    loo = (1 - (-np.sort(-self_sims, axis=1)[:, :5])).mean(axis=1)
    assert rep.novelty["nu_null"] == pytest.approx(loo.mean(), abs=3 * loo.std() / np.sqrt(25))
    assert rep.novelty["nu"] > rep.novelty["ci_high"] and rep.novelty["ratio"] > 1.5
    # nearest neighbours by brute force
    assert rep.per_image["nearest_similarity"].to_numpy() == pytest.approx(top[:, 0], abs=1e-5)
    # FD to every dataset against scipy's sqrtm
    meta = pd.read_parquet(run / "embedding" / "fused_ids.parquet")
    for row in rep.frechet.itertuples():
        want = fd_sqrtm(unit(cohort), atlas[(meta.dataset == row.dataset).to_numpy()])
        assert row.fd == pytest.approx(want, rel=1e-5, abs=1e-8)
    assert rep.frechet["fd"].is_monotonic_increasing
    assert rep.nearly_duplicated_datasets == []


def test_resampled_cohort_is_a_near_duplicate_and_within_the_null(run, rng):
    atlas = np.load(run / "embedding" / "fused.npy")
    meta = pd.read_parquet(run / "embedding" / "fused_ids.parquet")
    beta = np.flatnonzero(meta.dataset == "beta")[:30]
    cohort = unit(atlas[beta] + 1e-4 * rng.normal(size=(30, 16)))
    rep = assess_mod.assess(pd.DataFrame({"uid": meta.uid[beta].tolist()}), run, vectors=cohort, k=5,
                            n_bootstrap=200, near_duplicate_similarity=0.99)
    assert rep.nearly_duplicated_datasets == ["beta"]
    row = rep.near_duplicates.set_index("dataset").loc["beta"]
    assert row.n_cohort_matched == 30 and row.share_of_dataset == pytest.approx(30 / (meta.dataset == "beta").sum())
    assert rep.novelty["nu"] < rep.novelty["nu_null"]  # duplicates are closer than the atlas to itself


def test_exclude_dataset_holes_and_sparse_regions(run, tmp_path):
    atlas = np.load(run / "embedding" / "fused.npy").astype(np.float64)
    meta = pd.read_parquet(run / "embedding" / "fused_ids.parquet")
    gamma = np.flatnonzero(meta.dataset == "gamma")
    # A hole centred on gamma's first image with a radius that holds exactly its 3 closest gamma images.
    d = np.linalg.norm(atlas[gamma] - atlas[gamma[0]], axis=1)
    radius = float(np.sort(d)[2] + np.sort(d)[3]) / 2
    write_json({"holes": [{"rank": 1, "persistence": 0.5, "center": atlas[gamma[0]].tolist(), "radius": radius},
                          {"rank": 2, "cycle": [0, 1, 2, 3]}]}, run / "holes" / "holes.json")
    region = np.where(np.isin(np.arange(len(atlas)), gamma[:10]), "sparse", "typical")
    pd.DataFrame({"row": np.arange(len(atlas)), "log_density": 0.0, "region": region}).to_parquet(
        run / "holes" / "density.parquet")
    try:
        rep = assess_mod.assess(pd.DataFrame({"uid": meta.uid[gamma]}), run, vectors=atlas[gamma], k=3,
                                n_bootstrap=50, exclude_datasets=["gamma"])
        assert "gamma" not in rep.frechet["dataset"].tolist() and len(rep.frechet) == 2
        assert rep.holes.set_index("rank").loc[1, "n_inside"] == 3
        # hole 2 has only a cycle: centre = mean of its points, radius = their median distance (eqs. 15-16)
        cyc = atlas[[0, 1, 2, 3]]
        c = cyc.mean(axis=0)
        r = np.median(np.linalg.norm(cyc - c, axis=1))
        assert rep.holes.set_index("rank").loc[2, "radius"] == pytest.approx(r)
        assert rep.holes.set_index("rank").loc[2, "n_inside"] == int((np.linalg.norm(atlas[gamma] - c, axis=1) < r).sum())
        # gamma is excluded from the atlas, so its sparse rows cannot be anyone's nearest neighbour
        assert rep.sparse["n_in_sparse"] == 0
        rep2 = assess_mod.assess(pd.DataFrame({"uid": meta.uid[gamma]}), run,
                                 vectors=atlas[gamma] * 1.0, k=3, n_bootstrap=50)
        assert rep2.sparse["n_in_sparse"] == 10  # each gamma image's nearest is itself
        out = rep2.write(tmp_path / "report")
        assert {p.name for p in out.iterdir()} >= {"summary.json", "per_image.csv", "frechet.csv", "report.md"}
        assert "Nearly duplicates: gamma" in (out / "report.md").read_text()
    finally:
        (run / "holes" / "holes.json").unlink()
        (run / "holes" / "density.parquet").unlink()


def test_folder_cohort_embedded_with_injected_embedder(run, tmp_path):
    folder = tmp_path / "cohort"
    (folder / "sub").mkdir(parents=True)
    for i, c in enumerate(_fake_run.COLOURS):
        (folder / "sub" / f"{i}.png").write_bytes(_fake_run.png_bytes(c))
    (folder / "notes.txt").write_text("not an image")
    rep = assess_mod.assess(folder, run, embed_fn=_fake_run.colour_embed_fn(), k=3, n_bootstrap=50)
    assert rep.per_image["cohort_id"].tolist() == [f"sub/{i}.png" for i in range(4)]
    assert rep.per_image["nearest_diagnosis"].tolist() == _fake_run.DIAGNOSES
    assert rep.frechet.empty  # 4 images < fd_min_images: no FD row


def test_cli_main(run, tmp_path, capsys):
    atlas = np.load(run / "embedding" / "fused.npy")
    np.save(tmp_path / "cohort.npy", atlas[:20])
    out = tmp_path / "out"
    code = assess_mod.main([str(tmp_path / "cohort.npy"), "--run-dir", str(run), "--k", "4",
                            "--bootstrap-b", "50", "--out", str(out)])
    assert code == 0
    assert (out / "summary.json").is_file()
    assert "Assessment of cohort" in capsys.readouterr().out
    assert assess_mod.main([str(tmp_path / "missing"), "--run-dir", str(run)]) == 2


def test_load_cohort_table_with_relative_paths(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(_fake_run.png_bytes((1, 2, 3)))
    pd.DataFrame({"uid": ["x1", "x2"], "path": ["imgs/a.png", "/abs/b.png"], "diagnosis": ["mel", "nev"]}).to_csv(
        tmp_path / "cohort.csv", index=False)
    cohort = assess_mod.load_cohort(tmp_path / "cohort.csv")
    assert cohort["cohort_id"].tolist() == ["x1", "x2"]
    assert cohort["path"].tolist() == [str((tmp_path / "imgs" / "a.png").resolve()), "/abs/b.png"]
    assert cohort["diagnosis"].tolist() == ["mel", "nev"]
    with pytest.raises(ValueError, match="expected a folder"):
        (tmp_path / "c.xlsx").write_text("x")
        assess_mod.load_cohort(tmp_path / "c.xlsx")
    with pytest.raises(ValueError, match="no image files"):
        (tmp_path / "empty").mkdir()
        assess_mod.load_cohort(tmp_path / "empty")
