"""SCIN (Ward et al. 2024): ``scin_cases.csv`` + ``scin_labels.csv`` + ``images/``.

Columns used as distributed: cases ``case_id, age_group (AGE_18_TO_29 ...), sex_at_birth,
fitzpatrick_skin_type (FST1-FST6, NONE_IDENTIFIED), body_parts_* (YES when affected),
image_1_path, image_2_path, image_3_path``; labels ``case_id, weighted_skin_condition_label``
(a dict of condition -> weight), ``dermatologist_skin_condition_on_label_name`` (a list) and
``dermatologist_fitzpatrick_skin_type_label_1``. One catalog row per image (up to three per case,
``patient_id = case_id``). Diagnosis: the highest-weighted condition (else the first listed).
FST: self-reported, else the first dermatologist label. Age: the group's midpoint (a documented
approximation; ``age_group`` is the decade of the midpoint; open-ended groups keep age NA). Body
site: set only when exactly one body part is marked. Origin: United States (registry).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pandas as pd

from skinmap.data.issues import IssueLog
from skinmap.data.loaders.base import FileIndex, finish, image_lookup, prepare, read_table
from skinmap.data.schema import empty_catalog

DATASET = "SCIN"
CASES = ("scin_cases.csv", "dataset_scin_cases.csv")
LABELS = ("scin_labels.csv", "dataset_scin_labels.csv")
_AGE = re.compile(r"^AGE_(\d+)_TO_(\d+)$")


def find(index: FileIndex) -> bool:
    return index.first(*CASES) is not None


def scin_age(value) -> float | None:
    """Midpoint of ``AGE_<lo>_TO_<hi>`` in years; None for unknown or open-ended groups."""
    m = _AGE.match(str(value).strip().upper())
    return (int(m.group(1)) + int(m.group(2))) / 2.0 if m else None


def _top_condition(weighted, listed) -> str | None:
    for text, pick in ((weighted, "dict"), (listed, "list")):
        if not isinstance(text, str) or not text.strip():
            continue
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            continue
        if pick == "dict" and isinstance(value, dict) and value:
            return max(value.items(), key=lambda kv: kv[1])[0]
        if pick == "list" and isinstance(value, (list, tuple)) and value:
            return str(value[0])
    return None


def load(root, issues: IssueLog | None = None, index: FileIndex | None = None, *, probe: bool = True,
         decode: bool = False) -> pd.DataFrame:
    index, issues = prepare(root, issues, index)
    cases_file = index.first(*CASES)
    if cases_file is None:
        issues.add("missing_file", DATASET, str(index.root), message=f"{DATASET}: scin_cases.csv not found")
        return empty_catalog()
    cases = read_table(cases_file, DATASET, issues, required=("case_id",),
                       optional=("age_group", "sex_at_birth", "fitzpatrick_skin_type", "image_1_path"))
    if cases is None:
        return empty_catalog()
    labels_file = index.first(*LABELS)
    if labels_file is not None:
        labels = read_table(labels_file, DATASET, issues, required=("case_id",),
                            optional=("weighted_skin_condition_label", "dermatologist_skin_condition_on_label_name",
                                      "dermatologist_fitzpatrick_skin_type_label_1"))
        if labels is not None:
            labels = labels.drop(columns=["source_file", "source_row"]).drop_duplicates("case_id")
            cases = cases.merge(labels, on="case_id", how="left")
    else:
        issues.add("missing_file", DATASET, str(cases_file.parent / LABELS[0]),
                   message=f"{DATASET}: scin_labels.csv not found; diagnoses left NA")
    for col in ("weighted_skin_condition_label", "dermatologist_skin_condition_on_label_name",
                "dermatologist_fitzpatrick_skin_type_label_1"):
        if col not in cases.columns:
            cases[col] = pd.NA
    body_cols = [c for c in cases.columns if c.startswith("body_parts_")]
    marked = cases[body_cols].apply(lambda s: s.astype("string").str.upper().eq("YES").fillna(False)) if body_cols else None
    sites = []
    for i in range(len(cases)):
        hit = [c.removeprefix("body_parts_") for c in body_cols if marked.iloc[i][c]] if marked is not None else []
        sites.append(hit[0] if len(hit) == 1 else None)
    cases["_site"] = sites
    cases["_diagnosis"] = [_top_condition(w, l) for w, l in zip(cases["weighted_skin_condition_label"],
                                                                 cases["dermatologist_skin_condition_on_label_name"])]
    cases["_fst"] = cases["fitzpatrick_skin_type"].where(
        ~cases["fitzpatrick_skin_type"].astype("string").str.upper().isin(["NONE_IDENTIFIED"]).fillna(False),
        pd.NA).fillna(cases["dermatologist_fitzpatrick_skin_type_label_1"])
    lookup = image_lookup(index, [cases_file.parent])
    frames = []
    for k in (1, 2, 3):
        col = f"image_{k}_path"
        if col not in cases.columns:
            continue
        sub = cases[cases[col].notna()]
        stems = [Path(str(p)).stem for p in sub[col]]
        frames.append(pd.DataFrame({
            "image_id": stems, "patient_id": sub["case_id"].to_numpy(), "diagnosis": sub["_diagnosis"].to_numpy(),
            "fst": sub["_fst"].to_numpy(), "age": [scin_age(a) for a in sub["age_group"]],
            "sex": sub["sex_at_birth"].to_numpy(), "body_site": sub["_site"].to_numpy(),
            "path": [lookup.get(s, pd.NA) for s in stems], "_listed_file": sub[col].to_numpy(),
            "source_file": sub["source_file"].to_numpy(), "source_row": sub["source_row"].to_numpy()}))
    if not frames:
        return empty_catalog()
    raw = pd.concat(frames, ignore_index=True)
    return finish(raw, DATASET, issues, probe=probe, decode=decode, report_absent=bool(raw["path"].notna().any()))
