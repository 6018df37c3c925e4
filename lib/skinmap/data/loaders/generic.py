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

``dataset.yml`` is checked key by key (:func:`read_entry`): an unknown key, a ``release_year``
that is not a year or a ``modality`` other than the catalog's three is an error naming the file
and the key. :func:`find_generic` records such a folder as bad input and goes on with
the others; two folders claiming one dataset name are refused.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pandas as pd
import yaml

from skinmap.data.issues import DataInputError, IssueLog
from skinmap.data.loaders.base import FileIndex, finish, image_lookup, read_table
from skinmap.data.schema import MODALITIES

__all__ = ["find_generic", "load", "read_entry", "DatasetEntryError", "OPTIONAL_COLUMNS", "ENTRY_KEYS"]

OPTIONAL_COLUMNS = ("file", "diagnosis", "lesion_id", "patient_id", "split", "fst", "fst_group", "age", "sex",
                    "body_site", "origin_country", "origin_continent", "modality", "release_year")
ENTRY_KEYS = ("name", "release_year", "modality", "origin_country", "origin_continent", "origin_note",
              "license", "citation", "id_namespace")
#: Release years accepted in ``dataset.yml`` (the first dermatology image collections are from the 1990s).
RELEASE_YEARS = range(1900, 2101)


class DatasetEntryError(ValueError):
    """A ``dataset.yml`` that cannot be used; ``file`` and ``key`` say where (``key`` None: the whole file)."""

    def __init__(self, file: Path, key: str | None, problem: str):
        where = f"{file}" if key is None else f"{file}: key {key!r}"
        super().__init__(f"{where}: {problem}")
        self.file, self.key = file, key


def find_generic(index: FileIndex, issues: IssueLog | None = None) -> dict[str, Path]:
    """Dataset name -> folder for every ``dataset.yml`` + ``metadata.csv`` folder under the root.

    A ``dataset.yml`` that :func:`read_entry` rejects is recorded in ``issues`` as an
    ``unreadable_table`` of the dataset named after its folder (file and key in the message) and
    that folder is skipped; without ``issues`` the error is raised. Two folders declaring the same
    dataset name raise :class:`~skinmap.data.issues.DataInputError` naming both.
    """
    out: dict[str, Path] = {}
    for spec in index.named("dataset.yml"):
        if not (spec.parent / "metadata.csv").is_file():
            continue
        try:
            name = read_entry(spec.parent)["dataset"]
        except DatasetEntryError as exc:
            if issues is None:
                raise
            issues.add("unreadable_table", spec.parent.name, str(spec), column=exc.key,
                       message=f"{spec.parent.name}: {exc}; dataset skipped")
            continue
        if name in out:
            raise DataInputError(f"two dataset folders are both named {name!r}: {out[name]} and {spec.parent}; "
                                 f"give one of them another `name` in its dataset.yml")
        out[name] = spec.parent
    return out


def _release_year(value: object, file: Path) -> int | None:
    if value is None:
        return None
    text = str(value).strip()
    year = int(text) if text.isdigit() else None
    if isinstance(value, bool) or year is None or year not in RELEASE_YEARS:
        raise DatasetEntryError(file, "release_year", f"must be a year such as 2020, got {value!r}")
    return year


def read_entry(folder: str | Path) -> dict:
    """The registry entry of a generic dataset folder (``dataset.yml``).

    Raises
    ------
    DatasetEntryError
        Naming the file (and the line) when it is not a YAML mapping, and the key when a key is
        unknown (with the closest allowed key), ``release_year`` is not a year in
        :data:`RELEASE_YEARS`, ``modality`` is not one of the catalog's modalities or ``name`` is empty.
    """
    folder = Path(folder)
    file = folder / "dataset.yml"
    try:
        spec = yaml.safe_load(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DatasetEntryError(file, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise DatasetEntryError(file, None, f"not valid YAML{where}: {problem}") from None
    spec = spec if spec is not None else {}
    if not isinstance(spec, dict):
        raise DatasetEntryError(file, None, f"must be a mapping of keys {ENTRY_KEYS}, got a {type(spec).__name__}")
    for key in spec:
        if key not in ENTRY_KEYS:
            close = difflib.get_close_matches(str(key), ENTRY_KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DatasetEntryError(file, str(key), f"unknown key{hint} Allowed keys: {', '.join(ENTRY_KEYS)}")
    entry = {k: spec.get(k) for k in ENTRY_KEYS}
    entry["release_year"] = _release_year(entry["release_year"], file)
    if entry["modality"] is not None and entry["modality"] not in MODALITIES:
        raise DatasetEntryError(file, "modality", f"must be one of {MODALITIES}, got {entry['modality']!r}")
    name = entry.pop("name")
    if name is not None and not str(name).strip():
        raise DatasetEntryError(file, "name", "is empty")
    entry["dataset"] = str(name).strip() if name is not None else folder.name
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
