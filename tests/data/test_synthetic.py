"""The synthetic atlas: determinism and planted structure checked against its own pixels and
latents (independent of the code that planted it)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinmap.data.synthetic import (
    DIAGNOSIS_CENTRES,
    HOLE_CENTRE,
    HOLE_OTHER_AXES,
    HOLE_RADIUS,
    generate_synthetic_atlas,
    latent_for_catalog,
)

from .conftest import SMALL


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(small_atlas, tmp_path):
    again = generate_synthetic_atlas(tmp_path / "again", **SMALL)
    assert _digest(small_atlas.root) == _digest(again.root)
    other = generate_synthetic_atlas(tmp_path / "other", **{**SMALL, "seed": SMALL["seed"] + 1})
    a, b = _digest(small_atlas.root), _digest(other.root)
    assert sum(a.get(k) == v for k, v in b.items() if k.endswith(".jpg")) < 5


def test_generic_layout_on_disk(small_atlas):
    folders = [p for p in small_atlas.root.iterdir() if (p / "dataset.yml").exists()]
    assert len(folders) == 8
    for folder in folders:
        meta = pd.read_csv(folder / "metadata.csv")
        assert "image_id" in meta.columns and meta["image_id"].is_unique
        assert (folder / "images").is_dir()


def test_ground_truth_uids_exist_in_catalog(small_atlas, small_catalog):
    cat, _ = small_catalog
    gt = small_atlas.ground_truth
    uids = set(cat["uid"])
    with_pixels = set(cat.loc[cat["path"].notna(), "uid"])
    pair_uids = {u for p in gt["exact_duplicates"] for u in p}
    pair_uids |= {u for p in gt["near_duplicates"] for u in (p["a"], p["b"])}
    assert pair_uids <= with_pixels
    assert set(gt["off_topic"]) <= with_pixels
    assert set(gt["planted_hole"]["uids"]) <= with_pixels
    assert {u for p in gt["label_conflicts"] for u in p} <= uids
    assert set(gt.keys()) >= {"exact_duplicates", "near_duplicates", "label_conflicts", "subset_pairs", "off_topic",
                              "resample_year", "novel_year", "planted_hole"}


def test_exact_duplicates_are_byte_identical_and_near_ones_are_not(small_catalog, small_atlas):
    cat, _ = small_catalog
    path = cat.set_index("uid")["path"]
    gt = small_atlas.ground_truth
    for a, b in gt["exact_duplicates"]:
        assert a != b and Path(path[a]).read_bytes() == Path(path[b]).read_bytes()
    transforms = {p["transform"] for p in gt["near_duplicates"]}
    assert transforms == {"crop", "flip", "jitter"}
    for pair in gt["near_duplicates"]:
        a = np.asarray(Image.open(path[pair["a"]]).convert("RGB"), dtype=float)
        b = np.asarray(Image.open(path[pair["b"]]).convert("RGB"), dtype=float)
        assert Path(path[pair["a"]]).read_bytes() != Path(path[pair["b"]]).read_bytes()
        assert a.shape == b.shape
        if pair["transform"] == "flip":  # the mirror of a is (up to JPEG noise) b
            assert np.abs(a[:, ::-1] - b).mean() < 0.5 * np.abs(a - b).mean() + 4


def test_label_conflicts_are_duplicate_pairs_with_different_diagnoses(small_catalog, small_atlas):
    cat, _ = small_catalog
    diag = cat.set_index("uid")["diagnosis"]
    gt = small_atlas.ground_truth
    pairs = {tuple(p) for p in gt["exact_duplicates"]} | {(p["a"], p["b"]) for p in gt["near_duplicates"]}
    assert len(gt["label_conflicts"]) >= 1
    for a, b in gt["label_conflicts"]:
        assert (a, b) in pairs
        assert diag[a] != diag[b]


def test_subset_dataset_is_a_byte_copy_of_part_of_its_parent(small_catalog, small_atlas):
    cat, _ = small_catalog
    (pair,) = small_atlas.ground_truth["subset_pairs"]
    digest = {u: hashlib.sha256(Path(p).read_bytes()).hexdigest() for u, p in zip(cat["uid"], cat["path"])
              if isinstance(p, str)}
    parent = {digest[u] for u in cat.loc[cat["dataset"] == pair["parent"], "uid"] if u in digest}
    subset = [digest[u] for u in cat.loc[cat["dataset"] == pair["subset"], "uid"]]
    assert len(subset) > 0 and all(h in parent for h in subset)
    assert len(subset) < len(parent)


def test_years_resample_and_novel(small_catalog, small_atlas):
    cat, _ = small_catalog
    gt = small_atlas.ground_truth
    years = sorted(cat["release_year"].dropna().unique())
    assert len(years) >= 5 and gt["resample_year"] in years and gt["novel_year"] in years
    novel = set(cat.loc[cat["release_year"] == gt["novel_year"], "diagnosis"])
    earlier = set(cat.loc[cat["release_year"] < gt["novel_year"], "diagnosis"])
    assert novel and not (novel & earlier)
    resample = set(cat.loc[cat["release_year"] == gt["resample_year"], "diagnosis"])
    assert resample - {"dermatosis of unclear origin"} <= earlier


def test_latent_rows_align_and_the_hole_is_empty(small_catalog, small_atlas):
    cat, _ = small_catalog
    z = latent_for_catalog(cat, small_atlas.root)
    pix = cat[cat["path"].notna()].reset_index(drop=True)
    assert z.shape == (len(pix), 8) and np.isfinite(z).all()
    ring = pix["uid"].isin(small_atlas.ground_truth["planted_hole"]["uids"]).to_numpy()
    assert ring.sum() >= 24
    centre = np.array([*HOLE_CENTRE, *HOLE_OTHER_AXES])
    radial = np.linalg.norm(z[ring, :2] - np.array(HOLE_CENTRE), axis=1)
    assert np.allclose(radial, HOLE_RADIUS, atol=0.2)
    # no image (ring or not) lies within half the radius of the centre in the full latent space
    assert np.linalg.norm(z - centre, axis=1).min() > HOLE_RADIUS / 2
    # novel-year latents are far from every earlier diagnosis centre
    novel = (pix["release_year"] == small_atlas.ground_truth["novel_year"]).to_numpy()
    old_centres = np.array([c for d, c in DIAGNOSIS_CENTRES.items()
                            if d not in ("scabies", "impetigo", "atopic dermatitis")])
    d_novel = np.linalg.norm(z[novel][:, None, :] - old_centres[None], axis=2).min(axis=1)
    assert np.median(d_novel) > 3.0


def test_planted_bad_inputs_are_counted(small_catalog, small_atlas):
    cat, report = small_catalog
    counts = report.issues.groupby("kind").size()
    for kind, uids in small_atlas.ground_truth["bad_inputs"].items():
        assert counts.get(kind, 0) == len(uids), kind
    bad_paths = cat.set_index("uid").loc[small_atlas.ground_truth["bad_inputs"]["truncated_image"], "path"]
    assert bad_paths.isna().all()


def test_identifier_rereleases_are_merged(small_catalog, small_atlas):
    cat, report = small_catalog
    pairs = small_atlas.ground_truth["identifier_duplicates"]
    assert report.rows_loaded - report.rows_after_dedup == len(pairs)
    also = cat.set_index("uid")["also_in"]
    for canonical, removed in pairs:
        assert removed not in set(cat["uid"]) and also[canonical] == removed


def test_too_small_request_is_refused(tmp_path):
    with pytest.raises(ValueError, match="n_images"):
        generate_synthetic_atlas(tmp_path, n_images=50)


@pytest.mark.slow
def test_demo_atlas_generates_in_under_a_minute(tmp_path):
    start = time.perf_counter()
    atlas = generate_synthetic_atlas(tmp_path, seed=0, n_images=1500, image_size=64)
    assert time.perf_counter() - start < 60
    assert atlas.n_images > 1500


def test_near_duplicate_transforms_and_copy_detection_set():
    from skinmap.data.synthetic import copy_detection_set, near_duplicate

    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    assert near_duplicate(im, "crop", rng).size == (50, 40)
    np.testing.assert_array_equal(np.asarray(near_duplicate(im, "flip", rng)), np.asarray(im)[:, ::-1])
    with pytest.raises(ValueError, match="unknown transform"):
        near_duplicate(im, "rotate", rng)
    images, truth = copy_detection_set(n_sources=4, n_family=2, n_copies=3)
    assert len(images) == 9 and sorted(truth.values()) == ["crop", "flip", "jitter"]
    (flip_source, flip_copy), = [p for p, t in truth.items() if t == "flip"]
    mirrored = np.asarray(images[flip_source], float)[:, ::-1]
    assert np.abs(np.asarray(images[flip_copy], float) - mirrored).mean() < 4  # the mirror, up to one JPEG round
    with pytest.raises(ValueError):
        copy_detection_set(n_sources=2, n_copies=3)


def test_planted_lesions_and_patients_leak_exactly_as_recorded(small_catalog, small_atlas):
    """Lesion and patient ids in the catalog link exactly the planted groups, and the catalog's
    leakage per partition pair (counted by brute force here) is the recorded one."""
    cat, _ = small_catalog
    planted = small_atlas.ground_truth["lesion_groups"]
    assert set(planted) == {"SynDerm-Queensland", "SynPeds-Africa"}
    for name, entry in planted.items():
        sub = cat[cat["dataset"] == name]
        col = entry["group_by"]
        ids = sub.set_index("uid")[col]
        multi = {g: sorted(m) for g, m in entry["groups"].items()}
        assert multi and all(len(m) > 1 for m in multi.values())
        found = {g: sorted(s) for g, s in sub.dropna(subset=[col]).groupby(col)["uid"] if len(s) > 1}
        assert found == multi
        assert ids.loc[sub.loc[sub["split"].notna(), "uid"]].notna().all()  # every partitioned image has a group
        split = sub.set_index("uid")["split"]
        parts = [p for p in ("train", "val", "test") if (split == p).any()]
        leaking_any = 0
        for a_i, a in enumerate(parts):
            for b in parts[a_i + 1:]:
                groups = [m for m in multi.values() if (split.reindex(m) == a).any() and (split.reindex(m) == b).any()]
                na = sum(int((split.reindex(m) == a).sum()) for m in groups)
                nb = sum(int((split.reindex(m) == b).sum()) for m in groups)
                assert entry["leakage"][f"{a}|{b}"]["groups"] == len(groups)
                assert entry["leakage"][f"{a}|{b}"]["images"] == na + nb
        leaking_any = sum(split.reindex(m).dropna().nunique() > 1 for m in multi.values())
        assert entry["leakage"]["any"]["groups"] == leaking_any > 0
    assert set(cat.loc[cat["dataset"] == "SynDerm-Queensland", "split"].dropna()) == {"train", "val", "test"}


def test_lesion_step_leaves_every_image_unchanged(small_atlas, tmp_path, monkeypatch):
    """Step 10 draws from its own generator: without it every image file is byte-identical."""
    from skinmap.data.synthetic import atlas as atlas_module

    monkeypatch.setattr(atlas_module, "_lesions_and_patients", lambda d, seed: {})
    without = generate_synthetic_atlas(tmp_path / "without", **SMALL)
    a, b = _digest(small_atlas.root), _digest(without.root)
    jpgs = [k for k in a if k.endswith(".jpg")]
    assert jpgs and all(a[k] == b.get(k) for k in jpgs)


def test_leakage_table_recovers_the_planted_leakage_exactly(small_catalog, small_atlas):
    """What the quality chapter shows as "planted vs recovered": the library's leakage table on the
    catalog equals the generator's record, for every dataset and partition pair."""
    from skinmap.analysis.quality.leakage import leakage_table

    cat, _ = small_catalog
    table = leakage_table(cat).set_index(["dataset", "partitions"])
    for name, entry in small_atlas.ground_truth["lesion_groups"].items():
        assert (table.loc[name, "group_by"] == entry["group_by"]).all()
        for parts, want in entry["leakage"].items():
            got = table.loc[(name, parts)]
            assert (int(got["lesions"]), int(got["images"]), int(got["pairs"])) == (
                want["groups"], want["images"], want["pairs"]), (name, parts)
