"""Parameters of the claims-ledger appendix (``chapters/11-claims.ipynb``).

The ledger reads the exports of every chapter that estimates one of the paper's claims, so it runs
after all of them.
"""

from __future__ import annotations

from pydantic import Field

from skinmap.book.schemas import ChapterParams

DEPENDS_ON: tuple[str, ...] = (
    "data", "quality", "imputation", "demographics", "novelty", "similarity", "holes", "atlas",
)


class Params(ChapterParams):
    synthetic_note: bool = Field(
        True, description="say beside every verdict that demo data are synthetic (verdicts are then no evidence)"
    )
