"""Captions from structured metadata: the paper's template, with an optional rewrite hook.

The template (methods.md Sec. 1) names the modality, the condition, the body site and the
patient's sex and age group, e.g. "This dermoscopic image shows melanoma on the back for a male
patient in his 60s." Fields that are missing are left out rather than guessed.

A *rewrite hook* (e.g. an instruction-tuned LLM compressing to at most 77 tokens) can be passed as
any callable ``hook(template: str, row: dict) -> str``. It is off by default (no model ships with
the project); if it raises or returns an empty/non-string result the template is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd

__all__ = ["template_caption", "template_captions", "rewrite_captions", "RewriteHook"]

RewriteHook = Callable[[str, Mapping], str]

_MODALITY_PHRASE = {
    "dermoscopy": "This dermoscopic image shows",
    "clinical": "This clinical photograph shows",
    "TBP": "This total body photograph tile shows",
}


def _present(value) -> bool:
    return value is not None and value is not pd.NA and not (isinstance(value, float) and value != value)


def _age_phrase(age_group: str, sex: str | None) -> str:
    pronoun = {"male": "his", "female": "her"}.get(sex or "", "their")
    if age_group.endswith("+"):
        return f"aged {age_group[:-1]} or over"
    lo = int(age_group.split("-")[0])
    if lo == 0:
        return "aged under 10"
    return f"in {pronoun} {lo}s"


def template_caption(row: Mapping) -> str:
    """The paper's template caption for one catalog row (a mapping of catalog fields)."""
    modality = row.get("modality")
    head = _MODALITY_PHRASE.get(modality if _present(modality) else "", "This image shows")
    diagnosis = row.get("condition", row.get("diagnosis"))
    condition = str(diagnosis) if _present(diagnosis) else "a skin lesion of unrecorded diagnosis"
    text = f"{head} {condition}"
    site = row.get("body_site")
    if _present(site):
        text += f" on the {site}"
    sex, group = row.get("sex"), row.get("age_group")
    sex = sex if _present(sex) else None
    if sex or _present(group):
        who = f"a {sex} patient" if sex else "a patient"
        text += f" for {who}"
        if _present(group):
            text += f" {_age_phrase(str(group), sex)}"
    fst = row.get("fst")
    if _present(fst):
        text += f", Fitzpatrick skin type {int(fst)}"
    return text + "."


def template_captions(catalog: pd.DataFrame) -> pd.Series:
    """Template caption for every row of a catalog frame (string dtype); source labels are shown
    by their readable condition name (``nv`` -> ``melanocytic nevus``, ``tables/icd10_labels.csv``)."""
    from skinmap.data.icd10 import condition_names

    frame = catalog.astype(object).copy()
    if "diagnosis" in catalog.columns:
        datasets = catalog["dataset"] if "dataset" in catalog.columns else pd.Series("*", index=catalog.index)
        condition = pd.Series(pd.NA, index=catalog.index, dtype="string")
        for name, idx in catalog.groupby(datasets, sort=False).groups.items():
            condition.loc[idx] = condition_names(catalog.loc[idx, "diagnosis"], str(name))
        frame["condition"] = condition.astype(object)
    cols = [c for c in ("modality", "condition", "body_site", "sex", "age_group", "fst") if c in frame.columns]
    cache: dict[tuple, str] = {}  # many rows share the same fields: build each caption once
    out = []
    for values in zip(*(frame[c] for c in cols)):
        key = tuple(None if v is None or v is pd.NA or v != v else v for v in values)
        if key not in cache:
            cache[key] = template_caption(dict(zip(cols, key)))
        out.append(cache[key])
    return pd.Series(out, index=catalog.index, dtype="string")


def rewrite_captions(
    catalog: pd.DataFrame, hook: RewriteHook | None = None, *, max_words: int | None = None
) -> tuple[pd.Series, int]:
    """Apply ``hook`` to each template caption; returns (captions, number of fallbacks).

    With ``hook=None`` (the default) the template captions are returned unchanged. A hook that
    raises, returns a non-string, an empty string or (when ``max_words`` is set) a longer text
    falls back to the template for that row.
    """
    templates = template_captions(catalog)
    if hook is None:
        return templates, 0
    records = catalog.astype(object).where(catalog.notna(), None).to_dict("records")
    out, fallbacks = [], 0
    for template, record in zip(templates, records, strict=True):
        try:
            text = hook(template, record)
            ok = isinstance(text, str) and text.strip() and (max_words is None or len(text.split()) <= max_words)
        except Exception:  # noqa: BLE001 - any hook failure falls back to the template by design
            ok, text = False, None
        if ok:
            out.append(text.strip())
        else:
            out.append(template)
            fallbacks += 1
    return pd.Series(out, index=catalog.index, dtype="string"), fallbacks
