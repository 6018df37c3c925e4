"""HAM10000 (Tschandl et al. 2018): ``HAM10000_metadata.csv`` + ``HAM10000_images_part_1/2``.

Columns as distributed: ``lesion_id, image_id, dx, dx_type, age, sex, localization`` (later
Dataverse versions add ``dataset``). ``dx`` is kept verbatim (``mel``, ``nv``...). Images are found
in folders named ``HAM10000_images_part_1``, ``HAM10000_images_part_2``, ``HAM10000_images`` or
``ISIC2018_Task3_Training_Input`` anywhere under the root; rows whose image is absent stay as
metadata-only rows.
"""

from __future__ import annotations

import pandas as pd

from skinmap.data.issues import IssueLog
from skinmap.data.loaders.base import FileIndex, attach_images, finish, first_line, image_lookup, open_table, prepare
from skinmap.data.schema import empty_catalog

DATASET = "HAM10000"
TABLES = ("HAM10000_metadata.csv", "HAM10000_metadata", "HAM10000_metadata.tab")
IMAGE_DIRS = ("HAM10000_images_part_1", "HAM10000_images_part_2", "HAM10000_images", "ISIC2018_Task3_Training_Input")
REQUIRED = ("image_id", "dx")
OPTIONAL = ("lesion_id", "dx_type", "age", "sex", "localization")


def find(index: FileIndex) -> bool:
    return index.first(*TABLES) is not None


def load(root, issues: IssueLog | None = None, index: FileIndex | None = None, *, probe: bool = True,
         decode: bool = False) -> pd.DataFrame:
    index, issues = prepare(root, issues, index)
    table = index.first(*TABLES)
    # HAM10000's metadata has been distributed both comma- and tab-separated.
    with_tabs = table is not None and "\t" in first_line(table)
    sep = "\t" if with_tabs else ","
    df = open_table(table, index, issues, DATASET, f"none of {TABLES} found",
                    required=REQUIRED, optional=OPTIONAL, sep=sep)
    if df is None:
        return empty_catalog()
    raw = pd.DataFrame({
        "image_id": df["image_id"], "lesion_id": df["lesion_id"], "diagnosis": df["dx"], "age": df["age"],
        "sex": df["sex"], "body_site": df["localization"], "source_file": df["source_file"],
        "source_row": df["source_row"],
    })
    raw = attach_images(raw, image_lookup(index, index.dirs_named(*IMAGE_DIRS)))
    return finish(raw, DATASET, issues, probe=probe, decode=decode)
