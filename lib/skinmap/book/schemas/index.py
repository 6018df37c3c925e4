"""Parameters of the front page (``chapters/index.ipynb``): none besides the injected ones.

The preface opens with the key findings, read from the claims ledger and the chapters' exports, so it
runs after them.
"""

from skinmap.book.schemas import ChapterParams

DEPENDS_ON: tuple[str, ...] = (
    "data", "quality", "embedding", "imputation", "demographics", "novelty", "similarity", "holes", "atlas",
    "claims",
)


class Params(ChapterParams):
    pass
