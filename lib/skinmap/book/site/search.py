"""Full-text search that works offline, even from ``file://``.

The index is built at render time by the ``lunr`` package (a Python port of lunr.js whose
serialised indexes lunr.js 2.3 loads) over every section of every page, and written as a
JavaScript file (``search-index.js``) that the pages load with a plain ``<script>`` tag: no fetch,
no server, no CDN. ``assets/lunr.min.js`` (lunr.js 2.3.9, MIT) answers queries in the browser.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser

__all__ = ["Section", "page_sections", "search_index_js"]

_SKIP = {"script", "style", "details", "nav", "math"}  # code is inside <details>; outputs are text
_HEADINGS = {"h1", "h2", "h3"}


@dataclass
class Section:
    id: str  # "page.html#anchor"
    page_title: str
    title: str
    text: str


class _Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[tuple[str, str, list[str]]] = [("", "", [])]
        self._skip = 0
        self._heading: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP:
            self._skip += 1
        elif tag in _HEADINGS and not self._skip:
            self._heading = (dict(attrs).get("id") or "", [])

    def handle_endtag(self, tag):
        if tag in _SKIP and self._skip:
            self._skip -= 1
        elif tag in _HEADINGS and self._heading is not None:
            anchor, words = self._heading
            self.sections.append((anchor, " ".join("".join(words).split()), []))
            self._heading = None

    def handle_data(self, data):
        if self._skip:
            return
        if self._heading is not None:
            self._heading[1].append(data)
        else:
            self.sections[-1][2].append(data)


def page_sections(body_html: str, page: str, page_title: str, max_chars: int = 6000) -> list[Section]:
    """The page cut at its ``h1``-``h3`` headings, each section's visible text (code excluded)."""
    parser = _Sections()
    parser.feed(body_html)
    out = []
    for anchor, title, words in parser.sections:
        text = " ".join(" ".join(words).split())[:max_chars]
        if not (title or text):
            continue
        out.append(Section(id=f"{page}#{anchor}" if anchor else page, page_title=page_title,
                           title=title or page_title, text=text))
    return out


def search_index_js(sections: list[Section]) -> str:
    """``window.SKINMAP_SEARCH = {index, docs}``: a serialised lunr index and what to show per hit."""
    from lunr import lunr

    documents = [{"id": s.id, "title": s.title, "text": s.text} for s in sections]
    index = lunr(ref="id", fields=[{"field_name": "title", "boost": 5}, "text"], documents=documents)
    docs = {s.id: {"title": s.title, "page": s.page_title, "excerpt": s.text[:220]} for s in sections}
    payload = json.dumps({"index": index.serialize(), "docs": docs}, ensure_ascii=False)
    return "window.SKINMAP_SEARCH = " + re.sub(r"</", r"<\\/", payload) + ";\n"
