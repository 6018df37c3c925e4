"""Bad input names itself (issue 14): each broken table, image or ``dataset.yml`` is reported with
its dataset, file and (where it has one) row, and the catalog is built from the other datasets; input
that leaves nothing to build stops with a :class:`DataInputError` saying what to change.

Every fixture is written by hand into ``tmp_path``; expectations are read off the fixture.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinmap.data.catalog import build_catalog
from skinmap.data.images import MAX_IMAGE_PIXELS, probe_image
from skinmap.data.issues import DataInputError
from skinmap.data.loaders.base import FileIndex
from skinmap.data.loaders.generic import DatasetEntryError, read_entry

GOOD_TABLE = "image_id,diagnosis,age\na,nevus,40\nb,melanoma,55\n"


def _dataset(root: Path, name: str, table: str | bytes | None = GOOD_TABLE, *, yml: str | None = None,
             images=("a", "b")) -> Path:
    """A generic dataset folder: dataset.yml, metadata.csv (text or raw bytes), small JPEGs."""
    folder = root / name
    (folder / "images").mkdir(parents=True)
    (folder / "dataset.yml").write_text(yml if yml is not None else f"name: {name}\nrelease_year: 2020\n"
                                        "modality: clinical\n", encoding="utf-8")
    if table is not None:
        data = table.encode("utf-8") if isinstance(table, str) else table
        (folder / "metadata.csv").write_bytes(data)
    for image_id in images:
        Image.fromarray(np.full((12, 16, 3), 90, np.uint8)).save(folder / "images" / f"{image_id}.jpg")
    return folder


def _issues(report, kind: str) -> pd.DataFrame:
    return report.issues[report.issues["kind"] == kind].reset_index(drop=True)


def _png_header_only_bomb(path: Path, width: int, height: int) -> int:
    """A valid 1-bit greyscale PNG of ``width`` x ``height`` black pixels; returns its size in bytes.

    All-zero scanlines deflate ~1000:1, so 20,000 x 20,000 pixels fit in about 48 KB."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    path.write_bytes(data)
    return len(data)


# ---------------------------------------------------------------- tables
def test_missing_column_names_dataset_file_and_column_and_the_rest_builds(tmp_path):
    _dataset(tmp_path, "Good")
    _dataset(tmp_path, "Renamed", GOOD_TABLE.replace("image_id", "img"))
    cat, report = build_catalog(tmp_path)
    assert set(cat["dataset"]) == {"Good"} and len(cat) == 2
    (miss,) = _issues(report, "missing_column").itertuples()
    assert miss.dataset == "Renamed" and miss.column == "image_id"
    assert miss.file == str(tmp_path / "Renamed" / "metadata.csv")
    assert "'img'" in miss.message  # the columns that are there


def test_official_table_missing_a_required_column(tmp_path):
    _dataset(tmp_path, "Good")
    (tmp_path / "HAM10000_metadata.csv").write_text("lesion_id,image_id,diagnosis\nL1,ISIC_1,nv\n")
    cat, report = build_catalog(tmp_path)
    assert set(cat["dataset"]) == {"Good"}
    (miss,) = _issues(report, "missing_column").itertuples()
    assert (miss.dataset, miss.column) == ("HAM10000", "dx") and miss.file.endswith("HAM10000_metadata.csv")


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_wrong_delimiter_is_named(tmp_path, delimiter):
    _dataset(tmp_path, "Good")
    _dataset(tmp_path, "Semi", GOOD_TABLE.replace(",", delimiter))
    cat, report = build_catalog(tmp_path)
    assert set(cat["dataset"]) == {"Good"}
    (miss,) = _issues(report, "missing_column").itertuples()
    assert miss.dataset == "Semi" and miss.file.endswith("Semi/metadata.csv")
    assert f"looks {delimiter!r}-separated" in miss.message


def test_latin1_table_names_the_row_of_the_first_non_utf8_byte(tmp_path):
    _dataset(tmp_path, "Good")
    text = "image_id,diagnosis\na,nevus\nb,n\u00e6vus\n"  # the "æ" on file line 3 = data row 2
    _dataset(tmp_path, "Latin", text.encode("latin-1"))
    cat, report = build_catalog(tmp_path)
    assert set(cat["dataset"]) == {"Good"}
    (bad,) = _issues(report, "unreadable_table").itertuples()
    assert bad.dataset == "Latin" and bad.file.endswith("Latin/metadata.csv") and bad.row == 2
    assert "not UTF-8" in bad.message and "line 3" in bad.message and "0xe6" in bad.message


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_tables_with_a_byte_order_mark_are_read(tmp_path, encoding):
    _dataset(tmp_path, "Marked", "image_id,diagnosis\na,n\u00e6vus\nb,melanoma\n".encode(encoding))
    cat, report = build_catalog(tmp_path)
    assert cat.set_index("image_id")["diagnosis"].to_dict() == {"a": "n\u00e6vus", "b": "melanoma"}
    assert _issues(report, "unreadable_table").empty and _issues(report, "missing_column").empty


def test_utf16_without_byte_order_mark_is_named(tmp_path):
    _dataset(tmp_path, "Good")
    _dataset(tmp_path, "U16", "image_id,diagnosis\na,n\u00e6vus\n".encode("utf-16-le"))
    _, report = build_catalog(tmp_path)
    (bad,) = _issues(report, "unreadable_table").itertuples()
    assert bad.dataset == "U16" and "UTF-16 without a byte-order mark" in bad.message


@pytest.mark.parametrize("table, says", [("", "is empty"), ("  \n", "is empty"),
                                         ("image_id,diagnosis\n", "no data rows")])
def test_empty_table_is_named_and_the_rest_builds(tmp_path, table, says):
    _dataset(tmp_path, "Good")
    _dataset(tmp_path, "Empty", table)
    cat, report = build_catalog(tmp_path)
    assert set(cat["dataset"]) == {"Good"}
    (bad,) = _issues(report, "unreadable_table").itertuples()
    assert bad.dataset == "Empty" and bad.file.endswith("Empty/metadata.csv") and says in bad.message


def test_a_lone_empty_table_stops_with_its_problem_not_an_empty_catalog(tmp_path):
    _dataset(tmp_path, "Empty", "image_id,diagnosis\n")
    with pytest.raises(DataInputError, match=r"no catalog row could be loaded .*Empty: metadata.csv has a header "
                                             r"but no data rows"):
        build_catalog(tmp_path)


def test_empty_folder_stops_with_a_message(tmp_path):
    (tmp_path / "nothing here").mkdir()
    with pytest.raises(DataInputError, match=r"no dataset found under .*HAM10000.*dataset\.yml"):
        build_catalog(tmp_path)


def test_a_dataset_whose_rows_cannot_be_harmonised_is_skipped_with_its_reason(tmp_path):
    _dataset(tmp_path, "Good")
    _dataset(tmp_path, "Odd", "image_id,modality\na,photo\nb,clinical\n")
    cat, report = build_catalog(tmp_path)
    assert set(cat["dataset"]) == {"Good"}
    bad = report.issues[report.issues["dataset"] == "Odd"]
    assert bad["kind"].tolist() == ["unreadable_table"]  # nothing half-loaded is reported for it
    assert "modality 'photo'" in bad["message"].iloc[0] and "row 1" in bad["message"].iloc[0]


# ---------------------------------------------------------------- images
def test_decompression_bomb_is_a_named_bad_image_and_the_catalog_goes_on(tmp_path):
    folder = _dataset(tmp_path, "Bombed", "image_id,diagnosis\na,nevus\nbomb,nevus\nb,nevus\n")
    size = _png_header_only_bomb(folder / "images" / "bomb.png", 20_000, 20_000)
    assert size < 64_000  # 400 megapixels in a few tens of KB
    cat, report = build_catalog(tmp_path)
    assert len(cat) == 3
    paths = cat.set_index("image_id")["path"]
    assert pd.isna(paths["bomb"]) and paths[["a", "b"]].notna().all()
    (bad,) = _issues(report, "unreadable_image").itertuples()
    assert bad.dataset == "Bombed" and bad.row == 2 and bad.value.endswith("bomb.png")
    assert "bomb.png" in bad.message and "400,000,000 pixels" in bad.message and "decompression-bomb" in bad.message


def test_pixel_cap_is_checked_on_the_header(tmp_path):
    # 12,000 x 9,000 = 1.08e8 pixels: over our cap, under Pillow's own error threshold (1.79e8)
    path = tmp_path / "big.png"
    _png_header_only_bomb(path, 12_000, 9_000)
    assert 12_000 * 9_000 > MAX_IMAGE_PIXELS
    width, height, problem, reason = probe_image(path)
    assert (width, height, problem) == (12_000, 9_000, "unreadable_image") and "12000 x 9000" in reason
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(small)
    assert probe_image(small)[:3] == (40, 30, None)
    assert probe_image(small, max_pixels=40 * 30)[2] is None  # the cap itself is allowed
    assert probe_image(small, max_pixels=40 * 30 - 1)[2] == "unreadable_image"


# ---------------------------------------------------------------- dataset.yml
@pytest.mark.parametrize("yml, key, says", [
    ("name: Bad\nrelease_year: [2020\n", None, "not valid YAML at line"),
    ("name: Bad\nrelease_year: next year\n", "release_year", "must be a year"),
    ("name: Bad\nrelease_year: 1492\n", "release_year", "must be a year"),
    ("name: Bad\nrelease_year: true\n", "release_year", "must be a year"),
    ("name: Bad\nrelease_yr: 2020\n", "release_yr", "did you mean 'release_year'"),
    ("name: Bad\nmodality: photo\n", "modality", "must be one of"),
    ("- name\n- Bad\n", None, "must be a mapping"),
])
def test_bad_dataset_yml_names_file_and_key_and_other_datasets_load(tmp_path, yml, key, says):
    _dataset(tmp_path, "Good")
    folder = _dataset(tmp_path, "Bad", yml=yml)
    with pytest.raises(DatasetEntryError, match=says) as caught:
        read_entry(folder)
    assert caught.value.key == key and caught.value.file == folder / "dataset.yml"
    cat, report = build_catalog(tmp_path)
    assert set(cat["dataset"]) == {"Good"} and report.datasets_found == ["Good"]
    (bad,) = _issues(report, "unreadable_table").itertuples()
    assert bad.dataset == "Bad" and bad.file == str(folder / "dataset.yml") and says in bad.message
    assert (pd.isna(bad.column) if key is None else bad.column == key)


def test_quoted_release_year_is_a_year(tmp_path):
    folder = _dataset(tmp_path, "Quoted", yml="name: Quoted\nrelease_year: '2019'\n")
    assert read_entry(folder)["release_year"] == 2019


# ---------------------------------------------------------------- names
def test_generic_dataset_named_like_an_official_one_is_refused(tmp_path):
    _dataset(tmp_path, "HAM10000")
    (tmp_path / "official").mkdir()
    (tmp_path / "official" / "HAM10000_metadata.csv").write_text(
        "lesion_id,image_id,dx,dx_type,age,sex,localization\nL1,ISIC_1,nv,histo,40,male,back\n")
    with pytest.raises(DataInputError, match=r"named 'HAM10000' like the official dataset .*another `name`"):
        build_catalog(tmp_path)


def test_generic_dataset_may_take_a_registered_name_when_the_official_one_is_absent(tmp_path):
    _dataset(tmp_path, "HAM10000")
    cat, _ = build_catalog(tmp_path)
    assert set(cat["dataset"]) == {"HAM10000"} and len(cat) == 2


def test_two_folders_with_one_dataset_name_are_refused(tmp_path):
    _dataset(tmp_path, "A", yml="name: Same\nrelease_year: 2020\n")
    _dataset(tmp_path, "B", yml="name: Same\nrelease_year: 2021\n")
    with pytest.raises(DataInputError, match=r"two dataset folders are both named 'Same'"):
        build_catalog(tmp_path)


# ---------------------------------------------------------------- symbolic links
def test_dataset_folders_behind_symbolic_links_are_found_and_loops_end(tmp_path):
    store, root = tmp_path / "store", tmp_path / "root"
    _dataset(store, "Linked")
    root.mkdir()
    (root / "Linked").symlink_to(store / "Linked", target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)  # a link back to the root
    (root / "Linked-again").symlink_to(store / "Linked", target_is_directory=True)  # the same folder twice
    (root / "dangling").symlink_to(tmp_path / "gone", target_is_directory=True)
    index = FileIndex(root)
    assert len(index.named("dataset.yml")) == 1
    cat, report = build_catalog(root)
    assert report.datasets_found == ["Linked"] and len(cat) == 2
    assert cat["path"].notna().all()
    assert all(Path(p).resolve().parent == (store / "Linked" / "images").resolve() for p in cat["path"])


# ---------------------------------------------------------------- the datasets parameter
def test_empty_datasets_list_is_an_error_naming_the_key(tmp_path):
    _dataset(tmp_path, "Good")
    with pytest.raises(DataInputError, match=r"parameter 'datasets' is an empty list"):
        build_catalog(tmp_path, [])


def test_unknown_dataset_names_are_an_error_with_a_suggestion(tmp_path):
    _dataset(tmp_path, "Good")
    with pytest.raises(DataInputError, match=r"parameter 'datasets': none of \['Godo', 'HAM1000'\] is found.*"
                                             r"'Godo' -> did you mean 'Good'\?.*'HAM1000' -> did you mean 'HAM10000'"):
        build_catalog(tmp_path, ["Godo", "HAM1000"])


def test_one_unknown_name_among_found_ones_is_reported_not_fatal(tmp_path):
    _dataset(tmp_path, "Good")
    cat, report = build_catalog(tmp_path, ["Good", "Godo"])
    assert set(cat["dataset"]) == {"Good"} and report.datasets_missing == ["Godo"]
    (miss,) = _issues(report, "missing_file").itertuples()
    assert miss.dataset == "Godo" and "did you mean 'Good'" in miss.message


def test_data_chapter_params_refuse_an_empty_datasets_list():
    from skinmap.book.schemas.data import Params

    with pytest.raises(ValueError, match="datasets"):
        Params(datasets=[])
    assert Params(datasets=["HAM10000"]).datasets == ["HAM10000"]
