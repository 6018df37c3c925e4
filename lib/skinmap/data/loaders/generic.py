"""The "skinmap generic" layout: one folder per dataset, for the synthetic atlas and users' own data.

```
<root>/<DatasetName>/dataset.yml    # registry entry: name, release_year, modality, origin_country,
                                    #   origin_continent, license, citation, id_namespace
<root>/<DatasetName>/metadata.csv   # one row per image (columns below)
<root>/<DatasetName>/images/...     # the image files
```
``metadata.csv`` columns: ``image_id`` (required); optional ``file`` (path relative to the dataset
folder; default: ``images/<image_id>`` with any image suffix), ``diagnosis``, ``lesion_id``,
``patient_id``, ``split``, ``fst`` (1-6), ``fst_group``, ``age``, ``sex``, ``body_site``,
``origin_country``, ``origin_continent``, ``modality``, ``release_year``. Values are raw: they go
through the same harmonisation tables as any official dataset.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from skinmap.data.issues import IssueLog
from skinmap.data.loaders.base import FileIndex, finish, image_lookup, read_table

__all__ = ["find_generic", "load", "read_entry", "OPTIONAL_COLUMNS"]

OPTIONAL_COLUMNS = ("file", "diagnosis", "lesion_id", "patient_id", "split", "fst", "fst_group", "age", "sex",
                    "body_site", "origin_country", "origin_continent", "modality", "release_year")
ENTRY_KEYS = ("name", "release_year", "modality", "origin_country", "origin_continent", "origin_note",
              "license", "citation", "id_namespace")


def find_generic(index: FileIndex) -> dict[str, Path]:
    """Dataset name -> folder for every ``dataset.yml`` + ``metadata.csv`` folder under the root."""
    out: dict[str, Path] = {}
    for spec in index.named("dataset.yml"):
        if (spec.parent / "metadata.csv").is_file():
            out[read_entry(spec.parent)["dataset"]] = spec.parent
    return out


def read_entry(folder: str | Path) -> dict:
    """The registry entry of a generic dataset folder (``dataset.yml``)."""
    folder = Path(folder)
    spec = yaml.safe_load((folder / "dataset.yml").read_text(encoding="utf-8")) or {}
    unknown = set(spec) - set(ENTRY_KEYS)
    if unknown:
        raise ValueError(f"{folder / 'dataset.yml'}: unknown keys {sorted(unknown)}; allowed {ENTRY_KEYS}")
    entry = {k: spec.get(k) for k in ENTRY_KEYS}
    entry["dataset"] = str(entry.pop("name") or folder.name)
    entry["id_namespace"] = entry.get("id_namespace") or entry["dataset"]
    entry["loader"] = "generic"
    return entry


def load(folder: str | Path, issues: IssueLog | None = None, index: FileIndex | None = None,
         *, probe: bool = True, decode: bool = False) -> pd.DataFrame:
    """Load one generic dataset folder into catalog rows."""
    folder = Path(folder).resolve()
    issues = issues if issues is not None else IssueLog()
    entry = read_entry(folder)
    dataset = entry["dataset"]
    table = folder / "metadata.csv"
    if not table.is_file():
        issues.add("missing_file", dataset, str(table), message=f"{dataset}: {table} not found")
        from skinmap.data.schema import empty_catalog

        return empty_catalog()
    df = read_table(table, dataset, issues, required=["image_id"])
    if df is None:
        from skinmap.data.schema import empty_catalog

        return empty_catalog()
    for c in OPTIONAL_COLUMNS:
        if c not in df.columns:
            df[c] = pd.NA
    index = index if index is not None else FileIndex(folder)
    lookup = image_lookup(index, [folder / "images"]) if (folder / "images").is_dir() else {}
    paths, listed = [], []
    for image_id, rel in zip(df["image_id"], df["file"]):
        if isinstance(rel, str):
            p = (folder / rel).resolve()
            paths.append(p if p.is_file() else pd.NA)
            listed.append(rel)
        else:
            p = lookup.get(str(image_id))
            paths.append(p if p is not None else pd.NA)
            listed.append(f"images/{image_id}.*")
    df["path"] = paths
    df["_listed_file"] = listed
    return finish(df, dataset, issues, entry=entry, probe=probe, decode=decode)
