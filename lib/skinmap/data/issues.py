"""Bad-input bookkeeping: every odd row is named (dataset, file, row) and counted, never silently fixed.

Loaders and the catalog builder record problems in an :class:`IssueLog` instead of raising, so that
one broken table or image never stops the rest of the catalog from building. Kinds are a closed
vocabulary (``ISSUE_KINDS``) so that the data chapter can count them.

Only input that leaves nothing sensible to build raises :class:`DataInputError`: a request for no
dataset or for datasets that are not there, two datasets claiming one name, or a root from which no
row at all could be loaded. Its message names the root, the key or the files, and the problems found.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

__all__ = ["ISSUE_KINDS", "IssueLog", "DataInputError"]

# kind -> what it means and what the catalog does about it
ISSUE_KINDS: dict[str, str] = {
    "missing_file": "an expected table is absent; the dataset (or that part of it) is skipped",
    "missing_column": "a required column is absent (renamed?); the table is skipped",
    "missing_optional_column": "an optional column is absent; the field is NA for the whole table",
    "unreadable_table": "a table could not be parsed; it is skipped",
    "image_absent": "the table lists an image whose file is not on disk; metadata-only row (path NA)",
    "unreadable_image": "the image file cannot be opened; path set to NA",
    "truncated_image": "the image file ends early (no end marker); path set to NA",
    "unknown_label": "diagnosis label not in the ICD-10 table; ICD fields NA, label kept",
    "unknown_body_site": "body site not in the controlled vocabulary; body_site NA",
    "age_range": "age given as a range; age set to the midpoint (documented approximation)",
    "unparsed_age": "age not understood or out of range; age NA",
    "unparsed_fst": "Fitzpatrick type not understood; fst NA",
    "unparsed_sex": "sex not understood; sex NA",
    "duplicate_id": "an image id repeats inside one dataset; only the first row is kept",
}


class DataInputError(ValueError):
    """Input the catalog cannot be built from at all; the message says which and what to change."""


@dataclass
class IssueLog:
    """Collects bad-input records; ``to_frame()`` gives one row per problem."""

    records: list[dict] = field(default_factory=list)

    def add(
        self,
        kind: str,
        dataset: str,
        file: str | None,
        row: int | None = None,
        *,
        column: str | None = None,
        value: object = None,
        message: str = "",
    ) -> None:
        if kind not in ISSUE_KINDS:
            raise ValueError(f"unknown issue kind {kind!r}; known: {sorted(ISSUE_KINDS)}")
        self.records.append(
            {
                "kind": kind,
                "dataset": dataset,
                "file": None if file is None else str(file),
                "row": None if row is None else int(row),
                "column": column,
                "value": None if value is None else str(value),
                "message": message or ISSUE_KINDS[kind],
            }
        )

    def add_rows(
        self, kind: str, dataset: str, rows: pd.DataFrame, *, column: str | None, values, message: str = ""
    ) -> None:
        """Record one issue per row of ``rows`` (which carries ``source_file``/``source_row``)."""
        for file, row, value in zip(rows["source_file"], rows["source_row"], values, strict=True):
            self.add(kind, dataset, file, None if pd.isna(row) else int(row), column=column,
                     value=value, message=message)

    def extend(self, other: IssueLog) -> None:
        self.records.extend(other.records)

    def __len__(self) -> int:
        return len(self.records)

    def to_frame(self) -> pd.DataFrame:
        cols = ["kind", "dataset", "file", "row", "column", "value", "message"]
        df = pd.DataFrame(self.records, columns=cols)
        df["row"] = df["row"].astype("Int64")
        for col in ("kind", "dataset", "file", "column", "value", "message"):
            df[col] = df[col].astype("string")
        return df

    def counts(self) -> pd.DataFrame:
        """Rows per (dataset, kind), zeros omitted."""
        df = self.to_frame()
        if df.empty:
            return pd.DataFrame({"dataset": pd.Series(dtype="string"), "kind": pd.Series(dtype="string"),
                                 "rows": pd.Series(dtype="int64")})
        return df.groupby(["dataset", "kind"]).size().rename("rows").reset_index()
