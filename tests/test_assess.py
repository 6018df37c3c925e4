"""Acquisition steering: novelty against brute force, FD against sqrtm, holes, duplicates, CLI, bad input."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import linalg

sys.path.insert(0, str(Path(__file__).parent / "atlas"))
import _fake_run  # noqa: E402

from skinmap.atlas import assess as assess_mod  # noqa: E402
from skinmap.atlas.cohort import load_cohort  # noqa: E402
from skinmap.cli import main as cli_main  # noqa: E402
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
                            vectors=cohort, n_neighbors=5, n_bootstrap=300, fd_covariance="empirical")
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
    rep = assess_mod.assess(pd.DataFrame({"uid": meta.uid[beta].tolist()}), run, vectors=cohort, n_neighbors=5,
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
        rep = assess_mod.assess(pd.DataFrame({"uid": meta.uid[gamma]}), run, vectors=atlas[gamma], n_neighbors=3,
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
                                 vectors=atlas[gamma] * 1.0, n_neighbors=3, n_bootstrap=50)
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
    rep = assess_mod.assess(folder, run, embed_fn=_fake_run.colour_embed_fn(), n_neighbors=3, n_bootstrap=50)
    assert rep.per_image["cohort_id"].tolist() == [f"sub/{i}.png" for i in range(4)]
    assert rep.per_image["nearest_diagnosis"].tolist() == _fake_run.DIAGNOSES
    assert rep.frechet.empty  # 4 images < fd_min_images: no FD row


def test_cli_main(run, tmp_path, capsys):
    atlas = np.load(run / "embedding" / "fused.npy")
    np.save(tmp_path / "cohort.npy", atlas[:20])
    out = tmp_path / "out"
    code = cli_main(["assess", str(tmp_path / "cohort.npy"), "--run-dir", str(run), "--k", "4",
                     "--bootstrap-b", "50", "--out", str(out)])
    assert code == 0
    assert (out / "summary.json").is_file()
    assert "Assessment of cohort" in capsys.readouterr().out
    assert cli_main(["assess", str(tmp_path / "missing"), "--run-dir", str(run)]) == 2


def test_load_cohort_table_with_relative_paths(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(_fake_run.png_bytes((1, 2, 3)))
    pd.DataFrame({"uid": ["x1", "x2"], "path": ["imgs/a.png", "/abs/b.png"], "diagnosis": ["mel", "nev"]}).to_csv(
        tmp_path / "cohort.csv", index=False)
    cohort = load_cohort(tmp_path / "cohort.csv")
    assert cohort["cohort_id"].tolist() == ["x1", "x2"]
    assert cohort["path"].tolist() == [str((tmp_path / "imgs" / "a.png").resolve()), "/abs/b.png"]
    assert cohort["diagnosis"].tolist() == ["mel", "nev"]
    with pytest.raises(ValueError, match="expected a folder"):
        (tmp_path / "c.xlsx").write_text("x")
        load_cohort(tmp_path / "c.xlsx")
    with pytest.raises(ValueError, match="no image files"):
        (tmp_path / "empty").mkdir()
        load_cohort(tmp_path / "empty")


# ---------------------------------------------------------------------------- bad input (issue 14)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros(16, dtype=np.float32), r"expected a 2-D array.*shape \(16,\).*\(1, d\)"),
        (np.float32(3.0), r"expected a 2-D array.*shape \(\)"),
        (np.zeros((2, 3, 16), dtype=np.float32), r"expected a 2-D array.*shape \(2, 3, 16\)"),
        (np.zeros((0, 16), dtype=np.float32), r"empty"),
        (np.array([["a"] * 16] * 3), r"expected numbers"),
    ],
)
def test_npy_cohort_that_is_not_one_row_per_image_is_refused(run, tmp_path, capsys, array, message):
    path = tmp_path / "cohort.npy"
    np.save(path, array)
    with pytest.raises(ValueError, match=message):
        assess_mod.assess(path, run, n_bootstrap=20)
    assert cli_main(["assess", str(path), "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(path) in err and "Traceback" not in err
    assert not (run / "assess").exists()


def test_text_file_named_npy_is_refused_without_unpickling(run, tmp_path, capsys):
    path = tmp_path / "cohort.npy"
    path.write_text("id,path\n1,a.png\n")
    with pytest.raises(ValueError, match="not a NumPy .npy array file"):
        assess_mod.assess(path, run)
    vectors = tmp_path / "vectors.npy"
    vectors.write_bytes(b"\x80\x04K\x01.")  # a pickle: never loaded
    assert cli_main(["assess", str(tmp_path), "--vectors", str(vectors), "--run-dir", str(run)]) == 2
    assert "not a NumPy .npy array file" in capsys.readouterr().err


def test_decompression_bomb_in_a_cohort_folder_is_left_out_by_name(run, tmp_path):
    folder = tmp_path / "cohort"
    folder.mkdir()
    for i, c in enumerate(_fake_run.COLOURS):
        (folder / f"{i}.png").write_bytes(_fake_run.png_bytes(c))
    (folder / "bomb.png").write_bytes(_fake_run.png_with_header_size(20_000, 20_000))  # 400 Mpx, < 1 KB
    calls = []

    def embed(paths):
        calls.extend(paths)
        return _fake_run.colour_embed_fn()(paths)

    rep = assess_mod.assess(folder, run, embed_fn=embed, n_neighbors=3, n_bootstrap=20)
    assert rep.per_image["cohort_id"].tolist() == [f"{i}.png" for i in range(4)]
    assert not any(p.endswith("bomb.png") for p in calls)  # never handed to the decoder
    (note,) = [n for n in rep.notes if "bomb.png" in n]
    assert "400,000,000" in note and "left out" in note
    only_bomb = tmp_path / "only-bomb"
    only_bomb.mkdir()
    (only_bomb / "bomb.png").write_bytes(_fake_run.png_with_header_size(20_000, 20_000))
    with pytest.raises(ValueError, match="no usable cohort image.*bomb.png"):
        assess_mod.assess(only_bomb, run, embed_fn=embed)


def test_cohort_path_dotdot_writes_its_report_under_assess_not_the_run_root(run, tmp_path, monkeypatch):
    parent = tmp_path / "my cohort"
    (parent / "child").mkdir(parents=True)
    atlas = np.load(run / "embedding" / "fused.npy")
    for i, c in enumerate(_fake_run.COLOURS):
        (parent / f"{i}.png").write_bytes(_fake_run.png_bytes(c))
    monkeypatch.chdir(parent / "child")
    before = {p.name for p in run.iterdir()}
    monkeypatch.setattr("skinmap.atlas.assess._embed_cohort", lambda paths, run_dir, fn, **kw: atlas[: len(paths)])
    assert cli_main(["assess", "..", "--run-dir", str(run), "--n-bootstrap", "20"]) == 0
    assert {p.name for p in run.iterdir()} - before <= {"assess"}  # nothing new in the run root
    out = run / "assess" / "my_cohort"
    assert (out / "summary.json").is_file()
    assert json.loads((out / "summary.json").read_text())["cohort"] == "my cohort"
    shutil.rmtree(run / "assess")


def test_report_files_follow_the_process_umask(run, tmp_path):
    old = os.umask(0o022)
    try:
        rep = assess_mod.assess(pd.DataFrame({"uid": ["a", "b"]}), run,
                                vectors=np.load(run / "embedding" / "fused.npy")[:2], n_bootstrap=20)
        out = rep.write(tmp_path / "report")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    # seven files since the HTML report (issue 18): all of them group- and world-readable under umask 022
    assert len(modes) == 7 and "report.html" in modes and set(modes.values()) == {0o644}, modes


def test_deprecated_flag_names_the_new_one_and_new_flags_work(run, tmp_path, capsys):
    np.save(tmp_path / "c.npy", np.load(run / "embedding" / "fused.npy")[:12])
    args = ["assess", str(tmp_path / "c.npy"), "--run-dir", str(run), "--out"]
    assert cli_main([*args, str(tmp_path / "old"), "--bootstrap-b", "30", "--k", "3"]) == 0
    err = capsys.readouterr().err
    assert "--bootstrap-b is deprecated; use --n-bootstrap" in err and "--k is deprecated; use --n-neighbors" in err
    assert cli_main([*args, str(tmp_path / "new"), "--n-bootstrap", "30", "--n-neighbors", "3"]) == 0
    assert "deprecated" not in capsys.readouterr().err
    old = json.loads((tmp_path / "old" / "summary.json").read_text())
    new = json.loads((tmp_path / "new" / "summary.json").read_text())
    assert old == new and new["novelty"]["n_bootstrap"] == 30 and new["params"]["n_neighbors"] == 3


# ---------------------------------------------------------------------------- issue 18: a report a user can act on


@pytest.fixture(scope="module")
def named_run(tmp_path_factory):
    run = _fake_run.make_fake_run(tmp_path_factory.mktemp("named-run"), n=160)
    return _fake_run.add_quality_exports(run, profile="demo", synthetic=True)


def _image_cohort(folder, colours):
    folder.mkdir(parents=True, exist_ok=True)
    for i, c in enumerate(colours):
        (folder / f"{i}.png").write_bytes(_fake_run.png_bytes(c))
    return folder


def test_progress_bars_for_embedding_and_each_measure_go_to_stderr(named_run, tmp_path, capsys):
    cohort = _image_cohort(tmp_path / "c", list(_fake_run.COLOURS) * 3)
    assess_mod.assess(cohort, named_run, embed_fn=_fake_run.colour_embed_fn(), n_bootstrap=20, progress=True)
    captured = capsys.readouterr()
    assert "embedding" in captured.err and "12/12" in captured.err  # one bar over the images
    assert "assess" in captured.err and "5/5" in captured.err       # one step per measure
    assert captured.out == ""
    assess_mod.assess(cohort, named_run, embed_fn=_fake_run.colour_embed_fn(), n_bootstrap=20, progress=False)
    assert capsys.readouterr().err == ""


def test_terminal_summary_is_plain_text_naming_the_profile_and_warning_when_synthetic(named_run, run, tmp_path):
    z = np.load(named_run / "embedding" / "fused.npy")
    rep = assess_mod.assess(pd.DataFrame({"uid": [f"q{i}" for i in range(20)]}), named_run, vectors=z[:20],
                            n_bootstrap=20)
    text = rep.to_text()
    first, second = text.splitlines()[:2]
    assert first.startswith("Assessment of cohort") and "atlas profile 'demo'" in second and "SYNTHETIC" in second
    assert "Warning: this atlas is synthetic" in text
    for markup in ("**", "`", "# ", "- Note"):
        assert markup not in text
    real = assess_mod.assess(pd.DataFrame({"uid": [f"q{i}" for i in range(20)]}), run,
                             vectors=np.load(run / "embedding" / "fused.npy")[:20], n_bootstrap=20)
    assert "synthetic" not in real.to_text().lower()  # no ground truth: not called synthetic


def test_html_report_names_the_profile_and_has_every_section(named_run, tmp_path):
    from html.parser import HTMLParser

    z = np.load(named_run / "embedding" / "fused.npy")
    cohort = pd.DataFrame({"uid": [f"q{i}" for i in range(40)]})
    rep = assess_mod.assess(cohort, named_run, vectors=z[:40], n_bootstrap=20, name="<script>x</script>")
    out = rep.write(tmp_path / "r")
    page = (out / "report.html").read_text()

    class Collect(HTMLParser):
        def __init__(self):
            super().__init__()
            self.h2, self.tags, self.profile, self._in = [], [], "", None

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self._in = tag if tag == "h2" else ("profile" if dict(attrs).get("id") == "atlas-profile" else self._in)

        def handle_endtag(self, tag):
            if tag in ("h2", "p"):
                self._in = None

        def handle_data(self, data):
            if self._in == "h2":
                self.h2.append(data)
            elif self._in == "profile":
                self.profile += data

    parsed = Collect()
    parsed.feed(page)
    assert "atlas profile 'demo' (SYNTHETIC atlas)" in parsed.profile
    assert "callout-warning" in page and "script" not in parsed.tags  # the cohort's name is escaped
    assert parsed.h2[:6] == ["What this cohort adds", "The cohort on the atlas map", "Novelty against the null band",
                             "Fréchet distance to every dataset", "Holes and sparse regions entered", "Near duplicates"]
    assert page.count("data:image/png;base64,") == 3  # map, novelty, Fréchet figures
    for dataset in _fake_run.DATASETS:
        assert f"<td class=\"\">{dataset}</td>" in page  # FD to every dataset
    summary = json.loads((out / "summary.json").read_text())
    assert summary["atlas"] == {"profile": "demo", "synthetic": True, "n_images": 160}


def test_cohort_map_position_is_the_weighted_mean_of_its_nearest_atlas_cases(named_run):
    z = unit(np.load(named_run / "embedding" / "fused.npy").astype(np.float64))
    xy = pd.read_parquet(named_run / "embedding" / "map2d.parquet")[["x", "y"]].to_numpy()
    rng = np.random.default_rng(3)
    q = unit(z[:6] + 0.3 * rng.normal(size=(6, z.shape[1])))
    rep = assess_mod.assess(pd.DataFrame({"uid": [f"q{i}" for i in range(6)]}), named_run, vectors=q,
                            n_bootstrap=20, n_neighbors=4)
    for i in range(6):
        sims = z @ q[i]
        top = np.argsort(-sims)[:4]
        want = (xy[top] * sims[top, None]).sum(0) / sims[top].sum()
        got = rep.per_image.loc[i, ["map_x", "map_y"]].to_numpy(dtype=float)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_what_the_cohort_adds_is_ranked_and_counted_independently(named_run):
    z = np.load(named_run / "embedding" / "fused.npy")
    rng = np.random.default_rng(5)
    new_region = unit(rng.normal(size=(15, z.shape[1])))  # far from every planted cluster
    cohort = pd.DataFrame({"uid": [f"q{i}" for i in range(25)],
                           "diagnosis": ["lichen planus"] * 7 + ["melanoma"] * 18})
    rep = assess_mod.assess(cohort, named_run, vectors=np.vstack([new_region, z[:10]]), n_bootstrap=50)
    adds = rep.additions()
    assert adds["n_images"].tolist() == sorted(adds["n_images"], reverse=True)
    high = rep.novelty["ci_high"]
    novel = adds[adds["finding"].str.startswith("images more novel")]
    assert int(novel["n_images"].iloc[0]) == int((rep.per_image["novelty"] > high).sum()) >= 15
    new_dx = adds[adds["finding"] == "diagnosis new to the atlas: lichen planus"]
    assert int(new_dx["n_images"].iloc[0]) == 7
    assert not adds["finding"].str.contains("melanoma").any()  # the atlas has melanoma


def test_near_duplicate_thumbnails_only_when_allowed(named_run, tmp_path):
    cohort = _image_cohort(tmp_path / "dups", [_fake_run.COLOURS[0]] * 12)
    atlas = np.load(named_run / "embedding" / "fused.npy")
    rep = assess_mod.assess(cohort, named_run, vectors=atlas[:12], n_bootstrap=20)  # exact copies of atlas rows
    assert rep.per_image["near_duplicate"].all()
    page = rep.to_html()
    assert page.count("data:image/jpeg;base64,") == 24  # cohort and atlas thumbnail of each pair
    off = assess_mod.assess(cohort, named_run, vectors=atlas[:12], n_bootstrap=20, thumbnails=False)
    assert "data:image/jpeg" not in off.to_html() and "not allowed" in off.to_html()


def test_cli_prints_a_plain_summary_and_points_to_the_html(named_run, tmp_path, capsys):
    np.save(tmp_path / "c.npy", np.load(named_run / "embedding" / "fused.npy")[:15])
    out = tmp_path / "out"
    assert cli_main(["assess", str(tmp_path / "c.npy"), "--run-dir", str(named_run), "--n-bootstrap", "20",
                     "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "atlas profile 'demo'" in printed.out and "report.html" in printed.out
    assert "**" not in printed.out and printed.err == ""
    assert (out / "report.html").stat().st_size > 1000
