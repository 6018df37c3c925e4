"""Catalog build: schema, identifier de-duplication arithmetic and bad-input handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinmap.data.catalog import build_catalog, dedup_by_identifier
from skinmap.data.schema import CATALOG_COLUMNS, conform, read_catalog, validate_catalog


def _rows(spec):
    return conform(pd.DataFrame(spec))


def test_dedup_arithmetic_and_canonical_choice():
    cat = _rows({
        "uid": ["A/x1", "A/x2", "B/x1", "B/x3", "C/x1", "C/x2"],
        "dataset": ["A", "A", "B", "B", "C", "C"],
        "image_id": ["x1", "x2", "x1", "x3", "x1", "x2"],
        "path": [None, "/a/x2.jpg", "/b/x1.jpg", None, None, None],
        "release_year": [2016, 2016, 2019, 2019, 2017, 2017],
        "diagnosis": [None, "nevus", "NV", "MEL", "melanoma", None],
        "sex": ["male", None, None, None, None, "female"],
        "body_site": [None, None, "back", None, None, None],
    })
    # A and B share a namespace; C is its own (same ids there are different images)
    out, table = dedup_by_identifier(cat, {"A": "ISIC", "B": "ISIC"})
    assert len(out) == 5 and out["uid"].is_unique
    t = table.set_index("dataset")
    assert t.loc["A", "removed_as_duplicate"] == 1 and t.loc["B", "removed_as_duplicate"] == 0
    assert t["rows_loaded"].sum() - t["removed_as_duplicate"].sum() == len(out) == t["rows_kept"].sum()
    row = out.set_index("uid").loc["B/x1"]  # has pixels: canonical over the older metadata-only A/x1
    assert row["also_in"] == "A/x1"
    assert row["release_year"] == 2016  # first public release of the identifier
    assert row["sex"] == "male" and row["body_site"] == "back" and row["diagnosis"] == "NV"
    assert pd.isna(out.set_index("uid").loc["C/x1", "also_in"])
    validate_catalog(out)


def _write_generic(root: Path, name: str, meta: pd.DataFrame, images: dict[str, bytes]) -> Path:
    folder = root / name
    (folder / "images").mkdir(parents=True)
    (folder / "dataset.yml").write_text(f"name: {name}\nrelease_year: 2020\nmodality: clinical\n")
    meta.to_csv(folder / "metadata.csv", index=False)
    for fname, data in images.items():
        (folder / "images" / fname).write_bytes(data)
    return folder


def _jpeg(tmp_path, size=(80, 40)) -> bytes:
    p = tmp_path / "x.jpg"
    noise = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(noise).save(p)
    return p.read_bytes()


def test_bad_inputs_are_named_counted_and_the_rest_builds(tmp_path):
    good = _jpeg(tmp_path)
    root = tmp_path / "root"
    meta = pd.DataFrame({
        "image_id": ["a", "b", "c", "d", "e", "f", "g"],
        "diagnosis": ["melanoma", "nevus", "weird thing", "nevus", "nevus", "nevus", "nevus"],
        "age": ["45-50", "unknown", "30", "old", "20", "20", "20"],
        "body_site": ["back", "elbow pit", None, "face", "face", "face", "face"],
        "sex": ["male", "female", "M", "x", None, None, None],
    })
    _write_generic(root, "Good", meta, {"a.jpg": good, "b.jpg": good[: len(good) // 2], "c.jpg": b"not an image",
                                        "d.jpg": good, "f.jpg": good, "g.jpg": good})  # e.jpg absent
    # a dataset whose id column was renamed: reported, skipped, the rest still builds
    _write_generic(root, "Renamed", meta.rename(columns={"image_id": "img"}), {"a.jpg": good})
    cat, report = build_catalog(root, ["Good", "Renamed", "Nowhere"])
    assert set(cat["dataset"]) == {"Good"} and len(cat) == 7
    counts = report.issues.groupby("kind").size().to_dict()
    assert counts == {"age_range": 1, "unparsed_age": 1, "unknown_body_site": 1, "unknown_label": 1,
                      "unparsed_sex": 1, "truncated_image": 1, "unreadable_image": 1, "image_absent": 1,
                      "missing_column": 1, "missing_file": 1}
    miss = report.issues[report.issues["kind"] == "missing_column"].iloc[0]
    assert miss["dataset"] == "Renamed" and miss["column"] == "image_id" and "metadata.csv" in miss["file"]
    assert report.datasets_missing == ["Nowhere"]
    age = report.issues[report.issues["kind"] == "age_range"].iloc[0]
    assert age["row"] == 1 and age["value"] == "45-50" and age["file"].endswith("Good/metadata.csv")
    c = cat.set_index("image_id")
    assert c.loc["a", "age"] == 47.5 and pd.isna(c.loc["b", "age"]) and pd.isna(c.loc["d", "age"])
    assert c["path"].notna().sum() == 4  # a, d, f, g
    assert c.loc["a", "width"] == 80 and c.loc["a", "height"] == 40
    assert c.loc["c", "diagnosis"] == "weird thing" and pd.isna(c.loc["c", "icd10_code"])
    assert report.unmapped_labels.to_dict("records") == [{"dataset": "Good", "diagnosis": "weird thing", "rows": 1}]


def test_catalog_schema_roundtrip(small_catalog, tmp_path):
    cat, report = small_catalog
    assert tuple(cat.columns) == CATALOG_COLUMNS
    validate_catalog(cat)
    cat.to_parquet(tmp_path / "c.parquet")
    back = read_catalog(tmp_path / "c.parquet")
    pd.testing.assert_frame_equal(back, cat)
    assert back["path"].isna().sum() == int(report.summary["metadata_only"].sum())
    s = report.summary
    assert (s["rows"] == s["images"] + s["metadata_only"]).all()
    assert s["rows"].sum() == len(cat)


def test_unknown_data_root_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_catalog(tmp_path / "nope")


def test_describe_tables_by_hand():
    from skinmap.data import describe

    cat = _rows({
        "uid": ["A/1", "A/2", "B/1", "B/2"], "dataset": ["A", "A", "B", "B"], "image_id": ["1", "2", "1", "2"],
        "release_year": [2016, 2016, 2020, 2020], "fst": [1, None, None, None], "sex": ["male", "female", None, "male"],
        "icd10_chapter": ["XII Diseases of the skin", "II Neoplasms", None, "IX Circulatory"],
    })
    cov = describe.coverage_table(cat, ("fst", "sex"))
    assert cov.loc["A", "fst"] == 0.5 and cov.loc["B", "sex"] == 0.5 and cov.loc["all", "sex"] == 0.75
    comp = describe.icd_chapter_by_year(cat)
    assert list(comp.columns) == ["II Neoplasms", "IX Circulatory", "XII Diseases of the skin", "no ICD code"]
    assert comp.loc[2020].tolist() == [0, 1, 0, 1]
