"""MED-NODE (Giotis et al. 2015): ``complete_mednode_dataset/{melanoma,naevus}/*.jpg``, no table.

The dataset is distributed as two image folders named by diagnosis (70 melanoma, 100 naevus
clinical images from UMC Groningen). One catalog row per image; ``diagnosis`` is the folder name,
``source_file`` the folder. The pair of folders is recognised anywhere under the root.
"""

from __future__ import annotations

import pandas as pd

from skinmap.data.issues import IssueLog
from skinmap.data.loaders.base import FileIndex, finish, prepare
from skinmap.data.schema import empty_catalog

DATASET = "MED-NODE"
CLASSES = ("melanoma", "naevus")


def _folders(index: FileIndex):
    for naevus in index.dirs_named("naevus"):
        melanoma = naevus.parent / "melanoma"
        if melanoma.is_dir():
            return {"melanoma": melanoma, "naevus": naevus}
    return None


def find(index: FileIndex) -> bool:
    return _folders(index) is not None


def load(root, issues: IssueLog | None = None, index: FileIndex | None = None, *, probe: bool = True,
         decode: bool = False) -> pd.DataFrame:
    index, issues = prepare(root, issues, index)
    folders = _folders(index)
    if folders is None:
        issues.add("missing_file", DATASET, str(index.root), message=f"{DATASET}: melanoma/ + naevus/ folders not found")
        return empty_catalog()
    frames = []
    for label, folder in folders.items():
        files = sorted(index.files_under(folder))
        frames.append(pd.DataFrame({"image_id": [f"{label}_{f.stem}" for f in files], "path": files,
                                    "diagnosis": label, "source_file": str(folder)}))
    return finish(pd.concat(frames, ignore_index=True), DATASET, issues, probe=probe, decode=decode)
