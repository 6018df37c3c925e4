"""The fallback site: the executed chapters as a Quarto-like book, without Quarto.

Two passes over the book: (1) every chapter becomes pandoc Markdown with its figures, tables,
equations and sections numbered (:mod:`skinmap.book.site.assemble`), which gives the book-wide
cross-reference table; (2) pandoc renders each chapter with that table, citeproc and the chapter's
bibliography (:mod:`skinmap.book.site.pandoc`), and the page is laid out with a chapter sidebar,
an offline search box, the in-page table of contents and previous / next links.
"""

from __future__ import annotations

import html
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat

from skinmap.book.site.assemble import ChapterDoc, Target, assemble_chapter
from skinmap.book.site.pandoc import ASSETS, run_pandoc
from skinmap.book.site.search import page_sections, search_index_js

__all__ = ["PageSpec", "build_site", "bibliography_keys", "LEAK_PATTERNS"]

FOOTER_NOTE = ("Rendered without Quarto (not found on PATH) by the nbconvert fallback renderer: "
               "pandoc with citeproc, lunr search.")
STATIC = ("book.css", "book.js", "lunr.min.js", "lunr.LICENSE.txt")
# What must never reach a page: the build machine's absolute paths and pathlib reprs.
LEAK_PATTERNS = re.compile(r"(?<![\w./-])(/work/|/tmp/|/root/|/home/|/Users/)|PosixPath\(|WindowsPath\(")


@dataclass(frozen=True)
class PageSpec:
    """One chapter of the book as the site builder needs it."""

    key: str
    page: str  # "index.html", "01-data.html"
    notebook: nbformat.NotebookNode
    title: str
    number: int | None  # None: unnumbered (the preface)


def bibliography_keys(bib: Path | None) -> set[str]:
    if bib is None or not bib.is_file():
        return set()
    return set(re.findall(r"^@\w+\s*\{\s*([^,\s]+)\s*,", bib.read_text(encoding="utf-8"), flags=re.M))


def _cites(markdown: str, keys: set[str]) -> bool:
    return any(m in keys for m in re.findall(r"@([A-Za-z0-9_][\w:.#$%&+?<>~/-]*[A-Za-z0-9_])", markdown))


def _sidebar(pages: list[PageSpec], current: PageSpec, book_title: str) -> str:
    items = []
    for spec in pages:
        label = html.escape(spec.title) if spec.number is None else f"{spec.number}&nbsp; {html.escape(spec.title)}"
        active = ' class="active" aria-current="page"' if spec.key == current.key else ""
        items.append(f'<li><a href="{spec.page}"{active}>{label}</a></li>')
    return (
        '<nav class="skinmap-sidebar" id="quarto-sidebar" aria-label="Chapters">'
        f'<div class="skinmap-book-title"><a href="index.html">{html.escape(book_title)}</a></div>'
        '<div class="skinmap-search" role="search">'
        '<input id="skinmap-search-input" type="search" placeholder="Search the book" aria-label="Search the book" autocomplete="off">'
        '<ol id="skinmap-search-results" class="skinmap-search-results" aria-live="polite"></ol></div>'
        f'<ul class="skinmap-chapters">{"".join(items)}</ul>'
        f'<p class="skinmap-renderer">{FOOTER_NOTE}</p></nav>'
    )


def _page_nav(pages: list[PageSpec], i: int) -> str:
    def link(spec: PageSpec, rel: str, arrow: str) -> str:
        label = html.escape(spec.title) if spec.number is None else f"{spec.number}&nbsp; {html.escape(spec.title)}"
        return f'<a class="skinmap-{rel}" rel="{rel}" href="{spec.page}">{arrow} {label}</a>' if rel == "prev" else \
            f'<a class="skinmap-{rel}" rel="{rel}" href="{spec.page}">{label} {arrow}</a>'

    prev = link(pages[i - 1], "prev", "&larr;") if i > 0 else "<span></span>"
    nxt = link(pages[i + 1], "next", "&rarr;") if i + 1 < len(pages) else "<span></span>"
    return f'<nav class="skinmap-page-nav" aria-label="Previous and next chapter">{prev}{nxt}</nav>'


def _page(spec: PageSpec, book_title: str, sidebar: str, toc: str, body: str, css: str, page_nav: str,
          mathjax: str | None) -> str:
    math = (
        '<script type="text/x-mathjax-config">MathJax.Hub.Config({messageStyle: "none", "HTML-CSS": '
        '{availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null}});</script>\n'
        f'<script src="{mathjax}"></script>' if mathjax else
        '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml-full.js"></script>'
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(spec.title)} – {html.escape(book_title)}</title>
<link rel="stylesheet" href="site_libs/skinmap/book.css">
<style>{css}</style>
{math}
</head>
<body>
{sidebar}
<div class="skinmap-main">
<div class="skinmap-layout">
<main class="skinmap-content" id="quarto-document-content">
{body}
{page_nav}
</main>
<aside class="skinmap-toc-column">{toc}</aside>
</div>
</div>
<script src="site_libs/skinmap/lunr.min.js"></script>
<script src="search-index.js"></script>
<script src="site_libs/skinmap/book.js"></script>
</body>
</html>
"""


def build_site(pages: list[PageSpec], out: Path, *, book_title: str, bibliography: Path | None,
               execute_defaults: dict | None = None, code_fold: bool = True, code_summary: str = "Show code",
               number_sections: bool = True, mathjax: str | None = None,
               private_paths: tuple[str, ...] = ()) -> list[str]:
    """Write the site into ``out`` (which must exist); returns the build warnings (unresolved
    references, unknown citations, leaked paths, ...), one line each, for the build log.
    ``private_paths`` (the project root, the run directory) must not appear on any page either."""
    warnings: list[str] = []
    docs: dict[str, ChapterDoc] = {}
    targets: dict[str, Target] = {}
    for spec in pages:
        number = spec.number if number_sections else None
        doc = assemble_chapter(spec.notebook, chapter_number=number, page=spec.page, defaults=execute_defaults,
                               code_fold=code_fold, code_summary=code_summary)
        docs[spec.key] = doc
        warnings += [f"{spec.page}: {w}" for w in doc.warnings]
        for target in doc.targets:
            if target.label in targets and targets[target.label].page != spec.page:
                warnings.append(f"{spec.page}: label {target.label} is also defined on {targets[target.label].page}")
            targets.setdefault(target.label, target)
    keys = bibliography_keys(bibliography)
    sections = []
    (out / "site_libs" / "skinmap").mkdir(parents=True, exist_ok=True)
    for name in STATIC:
        shutil.copy2(ASSETS / name, out / "site_libs" / "skinmap" / name)
    for i, spec in enumerate(pages):
        doc = docs[spec.key]
        markdown = doc.markdown
        if _cites(markdown + "\n".join(doc.appendix), keys):
            markdown += "\n\n## References {.unnumbered}\n\n::: {#refs}\n:::\n"
        markdown += "\n\n" + "\n\n".join(doc.appendix)
        result = run_pandoc(markdown, page=spec.page, targets=targets,
                            chapter_number=spec.number if number_sections else None, bibliography=bibliography)
        warnings += [f"{spec.page}: {w}" for w in result.warnings]
        shown = re.sub(r'src="data:[^"]*"', "", result.body)
        leaks = {m.group(0) for m in LEAK_PATTERNS.finditer(shown)} | {p for p in private_paths if p and p in shown}
        for match in sorted(leaks):
            warnings.append(f"{spec.page}: output shows a build-machine path or path repr ({match!r})")
        sections += page_sections(result.body, spec.page, spec.title)
        page = _page(spec, book_title, _sidebar(pages, spec, book_title), result.toc, result.body, result.css,
                     _page_nav(pages, i), mathjax)
        (out / spec.page).write_text(page, encoding="utf-8")
    (out / "search-index.js").write_text(search_index_js(sections), encoding="utf-8")
    return warnings
