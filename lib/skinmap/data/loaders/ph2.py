"""PH2 (Mendonca et al. 2013): the ``||``-delimited ``PH2_dataset.txt`` (CRLF) and ``IMDxxx`` images.

The table as distributed: a header line and one line per case, fields separated by ``||`` (the
dermoscopic criteria share one ``||`` field, separated by single ``|``), then legends. The
diagnosis is the *Clinical Diagnosis* decoded with the file's own legend (0 common nevus, 1
atypical nevus, 2 melanoma). Images: official layout
``PH2 Dataset images/IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp`` or a flat ``IMDxxx.jpg`` folder,
searched below the table's folder (masks ``IMDxxx_lesion``/``_roi`` are ignored by name).
"""

from __future__ import annotations

import re

import pandas as pd

from skinmap.data.issues import IssueLog
from skinmap.data.loaders.base import FileIndex, attach_images, finish, image_lookup, prepare
from skinmap.data.schema import empty_catalog

DATASET = "PH2"
TABLES = ("PH2_dataset.txt",)
DEFAULT_LEGEND = {"0": "common nevus", "1": "atypical nevus", "2": "melanoma"}
_LEGEND_ITEM = re.compile(r"^\s*(\d+)\s*-\s*(.+?)[;.]?\s*$")


def find(index: FileIndex) -> bool:
    return index.first(*TABLES) is not None


def parse_ph2_table(text: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Cases (columns from the header, plus ``source_row``) and the clinical-diagnosis legend."""
    lines = text.splitlines()  # handles CRLF and LF
    rows, header, legend, in_legend = [], None, {}, False
    for line in lines:
        if line.strip().startswith("||"):
            fields = [f.strip() for f in line.strip().strip("|").split("||")]
            if header is None:
                header = fields
            else:
                rows.append(fields)
        elif line.strip().lower().startswith("legends for clinical diagnosis"):
            in_legend = True
        elif in_legend:
            m = _LEGEND_ITEM.match(line)
            if m:
                legend[m.group(1)] = m.group(2).strip().lower()
            elif not line.strip() and legend:
                in_legend = False
    if header is None:
        raise ValueError("no '||'-delimited header line found")
    df = pd.DataFrame([r + [""] * (len(header) - len(r)) for r in rows], columns=header).replace("", pd.NA)
    df["source_row"] = range(1, len(df) + 1)
    return df, legend or DEFAULT_LEGEND


def load(root, issues: IssueLog | None = None, index: FileIndex | None = None, *, probe: bool = True,
         decode: bool = False) -> pd.DataFrame:
    index, issues = prepare(root, issues, index)
    table = index.first(*TABLES)
    if table is None:
        issues.add("missing_file", DATASET, str(index.root), message=f"{DATASET}: PH2_dataset.txt not found")
        return empty_catalog()
    try:
        df, legend = parse_ph2_table(table.read_text(encoding="utf-8", errors="replace"))
    except ValueError as exc:
        issues.add("unreadable_table", DATASET, str(table), message=f"{DATASET}: {table.name}: {exc}")
        return empty_catalog()
    for col in ("Name", "Clinical Diagnosis"):
        if col not in df.columns:
            issues.add("missing_column", DATASET, str(table), column=col,
                       message=f"{DATASET}: column {col!r} not in {table.name} (header {list(df.columns)})")
            return empty_catalog()
    raw = pd.DataFrame({
        "image_id": df["Name"],
        "diagnosis": [legend.get(str(v).strip(), v) if pd.notna(v) else pd.NA for v in df["Clinical Diagnosis"]],
        "source_file": str(table.resolve()), "source_row": df["source_row"]})
    raw = attach_images(raw, image_lookup(index, [table.parent]))
    return finish(raw, DATASET, issues, probe=probe, decode=decode)
