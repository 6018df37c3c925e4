"""The run-directory module: registry, round trips, joins by uid that refuse to lose rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from skinmap import runs

CHAPTERS = {"data", "quality", "embedding", "imputation", "demographics", "novelty", "similarity", "holes", "atlas", "claims",
            "robustness"}


def _catalog(uids):
    return pd.DataFrame({
        "uid": uids,
        "dataset": [u.split("/")[0] for u in uids],
        "image_id": [u.split("/")[1] for u in uids],
        "diagnosis": [f"dx-{u}" for u in uids],
        "fst": pd.array(range(1, len(uids) + 1), dtype="Int64"),
    })


def _run(tmp_path, catalog_uids, fused_uids, d=3, rng=None):
    """A tiny run directory: catalog, fused vectors (row i encodes fused_uids[i]) and their ids."""
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    (tmp_path / "embedding").mkdir(parents=True, exist_ok=True)
    _catalog(catalog_uids).to_parquet(tmp_path / "data" / "catalog.parquet", index=False)
    vectors = np.arange(len(fused_uids) * d, dtype=np.float32).reshape(len(fused_uids), d)
    np.save(tmp_path / "embedding" / "fused.npy", vectors)
    ids = pd.DataFrame({"uid": fused_uids, "dataset": [u.split("/")[0] for u in fused_uids],
                        "image_id": [u.split("/")[1] for u in fused_uids]})
    ids.to_parquet(tmp_path / "embedding" / "fused_ids.parquet", index=False)
    return vectors


# ------------------------------------------------------------------------------------ registry


def test_every_export_lives_in_its_chapter_folder():
    for key, template in runs.EXPORTS.items():
        chapter = key.split(".")[0]
        folder = template.split("/")[0]
        assert folder in CHAPTERS, key
        assert folder == ("atlas" if chapter == "assess" else chapter), (key, template)
    # one file per key: no two keys share a template
    assert len(set(runs.EXPORTS.values())) == len(runs.EXPORTS)


def test_export_path_fills_placeholders_and_checks_them(tmp_path):
    assert runs.export_path(tmp_path, "embedding.member", member="dino") == tmp_path / "embedding" / "members" / "dino.npy"
    assert runs.export_path(tmp_path, "holes.terms", rank=2) == tmp_path / "holes" / "hole-2-terms.parquet"
    assert runs.chapter_export_path(tmp_path / "embedding", "embedding.model", member="mae") == \
        tmp_path / "embedding" / "models" / "mae.pt"
    assert runs.export_name("assess.per_image") == "per_image.csv"
    assert runs.folder_path(tmp_path, "atlas.assess", cohort="X") == tmp_path / "atlas" / "assess" / "X"
    assert runs.run_file(tmp_path, "state", chapter="novelty") == tmp_path / "_state" / "novelty.json"
    with pytest.raises(TypeError, match="member"):
        runs.export_path(tmp_path, "embedding.member")
    with pytest.raises(TypeError, match="rank"):
        runs.export_path(tmp_path, "data.catalog", rank=1)
    with pytest.raises(KeyError, match="no.such"):
        runs.export_path(tmp_path, "no.such")


def test_chapter_dir_is_created(tmp_path):
    path = runs.chapter_dir(tmp_path / "run", "novelty")
    assert path == tmp_path / "run" / "novelty" and path.is_dir()


# ---------------------------------------------------------------------------------- round trips


def test_write_and_read_round_trip_every_format(tmp_path):
    table = pd.DataFrame({"year": [2019, 2020], "nu": [0.5, np.nan], "name": ["a", "b"]})
    runs.write_export(tmp_path, "novelty.yearly", table)
    text = (tmp_path / "novelty" / "yearly_novelty.csv").read_text()
    assert text.splitlines() == ["year,nu,name", "2019,0.5,a", "2020,,b"]  # no index column
    pd.testing.assert_frame_equal(runs.read_export(tmp_path, "novelty.yearly"), table)

    runs.write_export(tmp_path, "holes.terms", table, rank=3)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "holes" / "hole-3-terms.parquet"), table)
    pd.testing.assert_frame_equal(runs.read_export(tmp_path, "holes.terms", rank=3), table)

    record = {"holes": [{"rank": 1, "cycle": [0, 1, 2]}], "r": np.float64(0.25), "bad": float("nan")}
    runs.write_export(tmp_path, "holes.holes", record)
    assert json.loads((tmp_path / "holes" / "holes.json").read_text()) == {
        "holes": [{"rank": 1, "cycle": [0, 1, 2]}], "r": 0.25, "bad": None}

    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    runs.write_export(tmp_path, "embedding.member", array, member="m")
    back = runs.read_export(tmp_path, "embedding.member", member="m")
    assert back.dtype == np.float32 and np.array_equal(back, array)

    runs.write_export(tmp_path, "holes.explorer", "<html>é</html>")
    assert (tmp_path / "holes" / "hole_explorer.html").read_text(encoding="utf-8") == "<html>é</html>"
    assert runs.read_export(tmp_path, "holes.explorer") == "<html>é</html>"
    # atomic writes leave no temporary file behind
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]


def test_missing_export_names_file_and_chapter(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"catalog\.parquet.*'data' chapter"):
        runs.load_catalog(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"density\.parquet.*'holes' chapter"):
        runs.load_density(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"fused\.npy.*'embedding'"):
        runs.load_embedding(tmp_path)
    assert runs.load_ground_truth(tmp_path) is None
    assert runs.load_synthetic_latent(tmp_path) is None
    assert runs.load_imputed(tmp_path, missing_ok=True) is None
    assert runs.load_holes(tmp_path, missing_ok=True) is None
    assert runs.load_density(tmp_path, missing_ok=True) is None
    assert runs.load_map2d(tmp_path, missing_ok=True) is None


def test_load_holes_returns_the_hole_records(tmp_path):
    runs.write_export(tmp_path, "holes.holes", {"n_landmarks": 5, "holes": [{"rank": 1}, "junk", {"rank": 2}]})
    assert runs.load_holes(tmp_path) == [{"rank": 1}, {"rank": 2}]


def test_load_catalog_restores_schema_dtypes(tmp_path):
    (tmp_path / "data").mkdir()
    pd.DataFrame({"uid": ["d/a"], "dataset": ["d"], "image_id": ["a"], "fst": [3.0]}).to_parquet(
        tmp_path / "data" / "catalog.parquet")
    catalog = runs.load_catalog(tmp_path)
    assert str(catalog["fst"].dtype) == "Int64" and catalog["fst"].iloc[0] == 3


# ----------------------------------------------------------------------------------------- atlas


def test_load_atlas_joins_each_vector_with_its_own_catalog_row(tmp_path):
    catalog_uids = ["a/1", "a/2", "b/1", "b/2", "c/9"]
    fused_uids = ["b/2", "a/1", "b/1", "a/2"]  # another order, and c/9 has no pixels
    vectors = _run(tmp_path, catalog_uids, fused_uids)
    atlas = runs.load_atlas(tmp_path)
    assert isinstance(atlas, runs.Atlas) and len(atlas) == 4
    np.testing.assert_array_equal(atlas.vectors, vectors)
    assert atlas.samples["uid"].tolist() == fused_uids
    assert atlas.samples["diagnosis"].tolist() == [f"dx-{u}" for u in fused_uids]
    assert atlas.samples["fst"].tolist() == [catalog_uids.index(u) + 1 for u in fused_uids]
    assert list(atlas.samples.columns[:3]) == ["uid", "dataset", "image_id"]
    with pytest.raises(Exception):  # frozen
        atlas.vectors = None


def test_load_atlas_refuses_an_embedding_older_than_the_catalog(tmp_path):
    _run(tmp_path, ["a/1", "a/2"], ["a/1", "a/2", "a/gone"])
    with pytest.raises(ValueError, match=r"1 of 3 rows of .*fused_ids\.parquet have no row in .*catalog\.parquet"):
        runs.load_atlas(tmp_path)


def test_load_atlas_refuses_duplicated_catalog_rows(tmp_path):
    _run(tmp_path, ["a/1", "a/2", "a/2"], ["a/1", "a/2"])
    with pytest.raises(ValueError, match=r"catalog\.parquet has 1 duplicated uid"):
        runs.load_atlas(tmp_path)


def test_vectors_and_ids_of_different_lengths_are_an_error(tmp_path):
    _run(tmp_path, ["a/1", "a/2"], ["a/1", "a/2"])
    np.save(tmp_path / "embedding" / "fused.npy", np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="3 rows but .* has 2"):
        runs.load_atlas(tmp_path)


def test_load_atlas_of_a_member(tmp_path):
    _run(tmp_path, ["a/1", "a/2"], ["a/1", "a/2"])
    ids = pd.DataFrame({"uid": ["a/2", "a/1"], "dataset": "a", "image_id": ["2", "1"]})
    runs.write_export(tmp_path, "embedding.member", np.eye(2, dtype=np.float32), member="m")
    runs.write_export(tmp_path, "embedding.member_ids", ids, member="m")
    atlas = runs.load_atlas(tmp_path, source="m")
    assert atlas.samples["diagnosis"].tolist() == ["dx-a/2", "dx-a/1"]
    with pytest.raises(FileNotFoundError, match=r"available: \['fused', 'm'\]"):
        runs.load_atlas(tmp_path, source="nomember")


def test_load_map2d_aligns_to_uids_and_refuses_missing_ones(tmp_path):
    runs.write_export(tmp_path, "embedding.map2d", pd.DataFrame({"uid": ["a", "b", "c"], "x": [1.0, 2.0, 3.0],
                                                                 "y": [4.0, 5.0, 6.0]}))
    xy = runs.load_map2d(tmp_path, ["c", "a"])
    assert xy["x"].tolist() == [3.0, 1.0] and xy["y"].tolist() == [6.0, 4.0]
    with pytest.raises(ValueError, match="1 of 2 rows have no position"):
        runs.load_map2d(tmp_path, ["a", "zz"])


def test_load_members_aligns_by_uid(tmp_path, rng):
    folder = tmp_path / "embedding" / "members"
    folder.mkdir(parents=True)
    uids = [f"d/{i}" for i in range(6)]
    vec = rng.normal(size=(6, 3))
    order = [5, 3, 1, 0, 2, 4]
    np.save(folder / "m.npy", vec[order])
    pd.DataFrame({"uid": [uids[i] for i in order]}).to_parquet(folder / "m_ids.parquet")
    np.save(folder / "short.npy", vec[:2])
    pd.DataFrame({"uid": uids[:2]}).to_parquet(folder / "short_ids.parquet")
    members, notes = runs.load_members(tmp_path, uids)
    np.testing.assert_array_equal(members["m"], vec)
    assert "short" not in members and "short" in notes[0]


def test_load_vectors_drops_stale_rows(tmp_path):
    emb = tmp_path / "embedding"
    (emb / "members").mkdir(parents=True)
    np.save(emb / "fused.npy", np.eye(3, dtype=np.float32))
    pd.DataFrame({"uid": ["d/a", "d/b", "d/gone"], "dataset": "d", "image_id": ["a", "b", "gone"]}).to_parquet(emb / "fused_ids.parquet")
    cat = pd.DataFrame({"uid": ["d/a", "d/b"], "path": [None, None]})
    x, ids, stale = runs.load_vectors(tmp_path, "fused", cat)
    assert x.shape == (2, 3) and stale == 1 and list(ids["uid"]) == ["d/a", "d/b"]
    with pytest.raises(FileNotFoundError, match="available"):
        runs.load_vectors(tmp_path, "nomember", cat)
    assert runs.embedding_sources(tmp_path) == ["fused"]


def test_load_atlas_with_map_positions(tmp_path):
    _run(tmp_path, ["a/1", "a/2"], ["a/2", "a/1"])
    runs.write_export(tmp_path, "embedding.map2d", pd.DataFrame({"uid": ["a/1", "a/2"], "x": [1.0, 2.0], "y": [3.0, 4.0]}))
    samples = runs.load_atlas(tmp_path, with_map=True).samples
    assert samples["uid"].tolist() == ["a/2", "a/1"] and samples["x"].tolist() == [2.0, 1.0]
    runs.write_export(tmp_path, "embedding.map2d", pd.DataFrame({"uid": ["a/1"], "x": [1.0], "y": [3.0]}))
    with pytest.raises(ValueError, match="1 of 2 rows have no position"):
        runs.load_atlas(tmp_path, with_map=True)


def test_load_duplicate_clusters_maps_each_uid(tmp_path):
    import pandas as pd

    runs.write_export(tmp_path, "quality.clusters", pd.DataFrame(
        {"cluster": [0, 1], "size": [2, 3], "uids": ["a/1;b/2", "a/3;a/4;c/9"]}))
    got = runs.load_duplicate_clusters(tmp_path, ["a/1", "a/3", "x/0", "c/9", "b/2"])
    assert got.tolist() == [0, 1, pd.NA, 1, 0]
    assert runs.load_duplicate_clusters(tmp_path / "nope", ["a/1"], missing_ok=True) is None


def test_load_groups_joins_split_groups_and_quality_clusters(tmp_path):
    # rows u0-u1 share a split group (one lesion); u2-u3 are a quality-chapter cluster found later;
    # u4 is alone. Order of the uids asked for differs from the file's.
    roles = pd.DataFrame({"uid": [f"u{i}" for i in range(5)], "dataset": ["A", "A", "A", "B", "B"],
                          "image_id": list("abcde"), "group": [0, 0, 1, 2, 3],
                          "role": ["train"] * 5})
    runs.write_export(tmp_path, "embedding.roles", roles)
    asked = ["u4", "u3", "u2", "u1", "u0"]
    g = runs.load_groups(tmp_path, asked)
    assert g[3] == g[4] and len({g[0], g[1], g[3]}) == 3 and g[1] != g[2]  # no clusters yet
    runs.write_export(tmp_path, "quality.clusters", pd.DataFrame({"cluster": [7], "uids": ["u2;u3"]}))
    g = runs.load_groups(tmp_path, asked)
    assert g[3] == g[4] and g[1] == g[2] and len({g[0], g[1], g[3]}) == 3
