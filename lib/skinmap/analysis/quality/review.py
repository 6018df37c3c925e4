"""Human review of candidate duplicate pairs: the CSV a reviewer fills in, and its decisions applied.

A reviewer marks each candidate pair ``duplicate``, ``different`` or ``unclear``; the cleaning then
removes pairs marked different and adds pairs marked duplicate that the search missed
(methods.md section 10). Unresolved pairs stay candidates: the cleaning is conservative.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["REVIEW_DECISIONS", "review_template", "read_review", "apply_review"]

REVIEW_DECISIONS = ("duplicate", "different", "unclear")


def review_template(pairs: pd.DataFrame) -> pd.DataFrame:
    """The CSV a reviewer fills in: ``image_a, image_b, similarity, decision, note`` with an empty
    decision (one of :data:`REVIEW_DECISIONS`) and pairs ordered by decreasing similarity."""
    out = pairs[["image_a", "image_b", "similarity"]].copy()
    out = out.sort_values("similarity", ascending=False, kind="stable").reset_index(drop=True)
    out["decision"] = ""
    out["note"] = ""
    return out


def read_review(path: str | Path) -> pd.DataFrame:
    """Read a filled review CSV; blank decisions are dropped, unknown decisions are an error."""
    df = pd.read_csv(path, dtype={"image_a": "string", "image_b": "string", "decision": "string"})
    missing = {"image_a", "image_b", "decision"} - set(df.columns)
    if missing:
        raise ValueError(f"review file {path} lacks column(s) {sorted(missing)}")
    df["decision"] = df["decision"].str.strip().str.lower()
    df = df[df["decision"].notna() & (df["decision"] != "")]
    bad = sorted(set(df["decision"]) - set(REVIEW_DECISIONS))
    if bad:
        raise ValueError(f"review file {path}: unknown decision(s) {bad}; allowed {REVIEW_DECISIONS}")
    return df.reset_index(drop=True)


def apply_review(pairs: pd.DataFrame, review: pd.DataFrame | None) -> pd.DataFrame:
    """Apply reviewer decisions to candidate pairs (columns ``image_a, image_b, similarity``).

    "different" removes the pair; "duplicate" keeps it, or adds it when the search missed it
    (similarity NaN); "unclear" and unreviewed pairs stay candidates (the cleaning is
    conservative: an unresolved pair may still cost an image). The last decision on a pair wins.
    A ``review`` column records the decision ("" when none).
    """
    out = pairs.copy()
    out["review"] = ""
    if review is None or len(review) == 0:
        return out
    key = lambda a, b: tuple(sorted((str(a), str(b))))  # noqa: E731
    decisions = {key(a, b): d for a, b, d in review[["image_a", "image_b", "decision"]].itertuples(index=False)}
    out_keys = [key(a, b) for a, b in zip(out["image_a"], out["image_b"])]
    out["review"] = [decisions.get(k, "") for k in out_keys]
    out = out[out["review"] != "different"]
    added = [k for k, d in decisions.items() if d == "duplicate" and k not in set(out_keys)]
    if added:
        extra = pd.DataFrame({"image_a": [a for a, _ in added], "image_b": [b for _, b in added],
                              "similarity": np.nan, "review": "duplicate"})
        out = pd.concat([out, extra], ignore_index=True)
    return out.reset_index(drop=True)
