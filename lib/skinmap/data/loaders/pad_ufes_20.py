"""PAD-UFES-20 (Pacheco et al. 2020): ``metadata.csv`` + ``images/imgs_part_{1,2,3}/PAT_*.png``.

Columns as distributed (26): ``patient_id, lesion_id, smoke, drink, background_father,
background_mother, age, pesticide, gender, skin_cancer_history, cancer_history, has_piped_water,
has_sewage_system, fitspatrick, region, diameter_1, diameter_2, diagnostic, itch, grew, hurt,
changed, bleed, elevation, img_id, biopsed`` (note the provider's spelling ``fitspatrick``). The
table is named ``metadata.csv`` by the provider (``PAD-UFES-20_metadata.csv`` in the mini-atlas); a
``metadata.csv`` is recognised as PAD-UFES-20 by its header. ``image_id`` is ``img_id`` without
its file suffix. Origin: Brazil (registry).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from skinmap.data.issues import IssueLog
from skinmap.data.loaders.base import FileIndex, attach_images, finish, image_lookup, open_table, prepare, table_with_header
from skinmap.data.schema import empty_catalog

DATASET = "PAD-UFES-20"
IMAGE_DIRS = ("imgs_part_1", "imgs_part_2", "imgs_part_3")
SIGNATURE = ("img_id", "fitspatrick", "diagnostic")


def _table(index: FileIndex) -> Path | None:
    named = index.first("PAD-UFES-20_metadata.csv", "pad_ufes_20_metadata.csv")
    if named is not None:
        return named
    # a generic-layout dataset's metadata.csv is not PAD-UFES-20's
    return table_with_header(index, ["metadata.csv"], SIGNATURE, skip_generic=True)


def find(index: FileIndex) -> bool:
    return _table(index) is not None


def load(root, issues: IssueLog | None = None, index: FileIndex | None = None, *, probe: bool = True,
         decode: bool = False) -> pd.DataFrame:
    index, issues = prepare(root, issues, index)
    table = _table(index)
    df = open_table(table, index, issues, DATASET, "no PAD-UFES-20 metadata table found",
                    required=("img_id", "diagnostic"),
                    optional=("patient_id", "lesion_id", "age", "gender", "fitspatrick", "region", "biopsed"))
    if df is None:
        return empty_catalog()
    raw = pd.DataFrame({
        "image_id": df["img_id"].str.replace(r"\.(png|jpg|jpeg)$", "", regex=True, case=False),
        "patient_id": df["patient_id"], "lesion_id": df["lesion_id"], "age": df["age"], "sex": df["gender"],
        "fst": df["fitspatrick"], "body_site": df["region"], "diagnosis": df["diagnostic"],
        "source_file": df["source_file"], "source_row": df["source_row"]})
    dirs = index.dirs_named(*IMAGE_DIRS) + [d for d in index.dirs_named("images") if d.parent == table.parent]
    raw = attach_images(raw, image_lookup(index, dirs))
    return finish(raw, DATASET, issues, probe=probe, decode=decode, report_absent=bool(raw["path"].notna().any()))
