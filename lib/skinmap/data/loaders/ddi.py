"""DDI, Diverse Dermatology Images (Daneshjou et al. 2022): ``ddi_metadata.csv`` + PNG images.

Columns as distributed: an unnamed index column, ``DDI_ID, DDI_file, skin_tone, malignant,
disease``. ``skin_tone`` is a Fitzpatrick *group* (``12`` = I-II, ``34`` = III-IV, ``56`` = V-VI):
it fills ``fst_group`` while ``fst`` stays NA (the single type is not known). ``disease`` is kept
verbatim (hyphenated, e.g. ``melanoma-in-situ``). Images (``000001.png``...) sit next to the table
in ``ddidiversedermatologyimages/``.
"""

from __future__ import annotations

import pandas as pd

from skinmap.data.issues import IssueLog
from skinmap.data.loaders.base import FileIndex, attach_images, finish, image_lookup, open_table, prepare
from skinmap.data.schema import empty_catalog

DATASET = "DDI"
TABLES = ("ddi_metadata.csv",)
SKIN_TONE_GROUP = {"12": "I-II", "34": "III-IV", "56": "V-VI"}


def find(index: FileIndex) -> bool:
    return index.first(*TABLES) is not None


def load(root, issues: IssueLog | None = None, index: FileIndex | None = None, *, probe: bool = True,
         decode: bool = False) -> pd.DataFrame:
    index, issues = prepare(root, issues, index)
    table = index.first(*TABLES)
    df = open_table(table, index, issues, DATASET, "ddi_metadata.csv not found",
                    required=("DDI_file", "disease"), optional=("skin_tone", "malignant"))
    if df is None:
        return empty_catalog()
    tone = df["skin_tone"].astype("string").str.strip().str.replace(r"\.0$", "", regex=True)
    bad = tone.notna() & ~tone.isin(list(SKIN_TONE_GROUP))
    if bad.any():
        issues.add_rows("unparsed_fst", DATASET, df[bad], column="skin_tone", values=df.loc[bad, "skin_tone"])
    raw = pd.DataFrame({
        "image_id": df["DDI_file"].str.replace(r"\.(png|jpg|jpeg)$", "", regex=True, case=False),
        "diagnosis": df["disease"], "fst_group": tone.map(SKIN_TONE_GROUP),
        "source_file": df["source_file"], "source_row": df["source_row"]})
    raw = attach_images(raw, image_lookup(index, [table.parent]))
    return finish(raw, DATASET, issues, probe=probe, decode=decode, report_absent=bool(raw["path"].notna().any()))
