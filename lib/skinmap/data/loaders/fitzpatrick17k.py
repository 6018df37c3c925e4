"""Fitzpatrick 17k (Groh et al. 2021): ``fitzpatrick17k.csv``; images named ``<md5hash>.jpg``.

Columns as distributed: ``md5hash, fitzpatrick_scale, fitzpatrick_centaur, label,
nine_partition_label, three_partition_label, qc, url, url_alphanum``. ``image_id`` is the
``md5hash``; ``fst`` the ``fitzpatrick_scale`` (``-1`` = unknown -> NA). The images are distributed
as URLs only; downloaded copies are looked up below the table's folder and in folders named
``finalfitz17k`` / ``fitzpatrick17k`` / ``Fitzpatrick17k_images``. A repeated md5hash (the same
picture listed twice) is kept once and reported as ``duplicate_id``.
"""

from __future__ import annotations

import pandas as pd

from skinmap.data.issues import IssueLog
from skinmap.data.loaders.base import FileIndex, attach_images, finish, image_lookup, open_table, prepare
from skinmap.data.schema import empty_catalog

DATASET = "Fitzpatrick17k"
TABLES = ("fitzpatrick17k.csv",)
IMAGE_DIRS = ("finalfitz17k", "fitzpatrick17k", "Fitzpatrick17k_images")


def find(index: FileIndex) -> bool:
    return index.first(*TABLES) is not None


def load(root, issues: IssueLog | None = None, index: FileIndex | None = None, *, probe: bool = True,
         decode: bool = False) -> pd.DataFrame:
    index, issues = prepare(root, issues, index)
    table = index.first(*TABLES)
    df = open_table(table, index, issues, DATASET, "fitzpatrick17k.csv not found",
                    required=("md5hash", "label"), optional=("fitzpatrick_scale",))
    if df is None:
        return empty_catalog()
    raw = pd.DataFrame({"image_id": df["md5hash"], "diagnosis": df["label"], "fst": df["fitzpatrick_scale"],
                        "source_file": df["source_file"], "source_row": df["source_row"]})
    lookup = image_lookup(index, [table.parent, *index.dirs_named(*IMAGE_DIRS)])
    raw = attach_images(raw, lookup)
    return finish(raw, DATASET, issues, probe=probe, decode=decode, report_absent=bool(raw["path"].notna().any()))
