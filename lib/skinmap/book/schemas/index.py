"""Parameters of the front page (``chapters/index.ipynb``): none besides the injected ones."""

from skinmap.book.schemas import ChapterParams

DEPENDS_ON: tuple[str, ...] = ()


class Params(ChapterParams):
    pass
