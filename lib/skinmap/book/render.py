"""Render executed chapters into the book website ``_book/``.

With Quarto on ``PATH`` the executed notebooks are staged next to a copy of ``_quarto.yml``
and rendered by ``quarto render`` (Quarto does not re-execute notebooks). Without Quarto a
fallback built on nbconvert writes a static site: one page per chapter in ``_quarto.yml`` order,
a navigation sidebar, figures embedded, code folded behind a button, and the equations typeset by
a copy of MathJax 2 inside the site (from ``jupyter-server-mathjax``), so it reads offline; without
that package the pages load MathJax from its CDN. Either way the new site
replaces ``_book/`` only once it is complete.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import nbformat
import yaml

from skinmap import runs
from skinmap.book.chapters import Chapter, book_chapters
from skinmap.book.runner import BookContext, write_manifest

__all__ = ["render_book", "chapter_title", "RenderError"]

_ASSETS = Path(__file__).parent / "assets"


class RenderError(RuntimeError):
    pass


def chapter_title(nb: nbformat.NotebookNode, fallback: str) -> str:
    """The first level-1 markdown heading of a notebook (its page title)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+?)\s*(\{.*\})?\s*$", cell.source, flags=re.M)
            if match:
                return match.group(1).strip()
    return fallback


def _executed(ctx: BookContext, chapters: list[Chapter]) -> dict[str, Path]:
    paths, missing = {}, []
    for chapter in chapters:
        path = runs.run_file(ctx.run_dir, "notebook", stem=chapter.stem)
        (paths.__setitem__(chapter.key, path) if path.is_file() else missing.append(chapter.key))
    if missing:
        raise RenderError(
            f"no executed notebook for chapter(s) {', '.join(missing)} in "
            f"{runs.run_file(ctx.run_dir, 'notebook', stem='x').parent}: "
            f"run `python -m skinmap book --profile {ctx.profile}` first"
        )
    return paths


def _swap_into_place(new_site: Path, target: Path) -> None:
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(new_site, target)
    if old.exists():
        shutil.rmtree(old)


def _page_name(chapter: Chapter) -> str:
    return "index.html" if chapter.key == "index" else f"{chapter.stem}.html"


def _render_quarto(ctx: BookContext, chapters: list[Chapter], executed: dict[str, Path], out: Path) -> None:
    stage = Path(tempfile.mkdtemp(prefix=".quarto-", dir=ctx.run_dir))
    try:
        config = yaml.safe_load((ctx.project_root / "_quarto.yml").read_text(encoding="utf-8"))
        config.setdefault("project", {})["output-dir"] = "_site"
        (stage / "_quarto.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        for chapter in chapters:
            dest = stage / chapter.notebook
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(executed[chapter.key], dest)
        for extra in ("chapters/styles.css", "chapters/references.bib"):
            if (ctx.project_root / extra).is_file():
                (stage / extra).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ctx.project_root / extra, stage / extra)
        proc = subprocess.run(["quarto", "render", os.fspath(stage), "--to", "html"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RenderError(f"quarto render failed:\n{proc.stderr[-4000:]}")
        site = stage / "_site"
        if not (site / "index.html").exists():
            # The index chapter lives in chapters/; give the site a root page that points at it.
            first = chapters[0].notebook.with_suffix(".html").as_posix()
            (site / "index.html").write_text(
                f'<!doctype html><meta http-equiv="refresh" content="0; url={first}">'
                f'<a href="{first}">SkinMap book</a>\n',
                encoding="utf-8",
            )
        shutil.move(os.fspath(site), os.fspath(out))
    finally:
        shutil.rmtree(stage, ignore_errors=True)


_MATHJAX_DIR = "site_libs/mathjax"
# MathJax 2 as Jupyter Notebook served it: HTML-CSS output with the STIX web fonts the package ships
_MATHJAX_CONFIG = ('<script type="text/x-mathjax-config">MathJax.Hub.Config({"HTML-CSS": '
                   '{availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null}});</script>')


def _vendored_mathjax(out: Path) -> str | None:
    """Copy MathJax from ``jupyter-server-mathjax`` into ``out/site_libs/mathjax`` (without the
    translations and the SVG output, ~6 MB) and return its script URL relative to the pages, or
    None when the package is not installed."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        return None
    source = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (source / "MathJax.js").is_file():
        return None

    def skipped(folder: str, names: list[str]) -> set[str]:
        rel = Path(folder).relative_to(source).as_posix()
        if rel == "localization":
            return {n for n in names if n != "en"}
        return {"SVG"} if rel == "jax/output" else set()

    shutil.copytree(source, out / _MATHJAX_DIR, ignore=skipped)
    return f"{_MATHJAX_DIR}/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"


_HEADING_ATTRS = re.compile(r"[ \t]*\{[.#][^}\n]*\}[ \t]*$", flags=re.M)
_FOOTER_NOTE = "Rendered with the nbconvert fallback (Quarto was not found on PATH)."


def _render_fallback(ctx: BookContext, chapters: list[Chapter], executed: dict[str, Path], out: Path) -> None:
    from nbconvert import HTMLExporter

    config = yaml.safe_load((ctx.project_root / "_quarto.yml").read_text(encoding="utf-8"))
    book_title = (config.get("book") or {}).get("title", "SkinMap")
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    notebooks = {c.key: nbformat.read(os.fspath(executed[c.key]), as_version=4) for c in chapters}
    titles = {c.key: chapter_title(notebooks[c.key], c.key) for c in chapters}
    css = (_ASSETS / "book.css").read_text(encoding="utf-8")
    js = (_ASSETS / "book.js").read_text(encoding="utf-8")
    out.mkdir(parents=True)
    mathjax = _vendored_mathjax(out)
    if mathjax:
        exporter.mathjax_url = mathjax
    for chapter in chapters:
        nb = notebooks[chapter.key]
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                # Pandoc attributes on headings ({.unnumbered}, {#sec-x}) are Quarto syntax.
                cell.source = _HEADING_ATTRS.sub("", cell.source)
        body, _ = exporter.from_notebook_node(nb)
        nav_items = []
        for number, other in enumerate(chapters):
            label = titles[other.key] if other.key == "index" else f"{number}&nbsp; {html.escape(titles[other.key])}"
            current = ' class="active" aria-current="page"' if other.key == chapter.key else ""
            nav_items.append(f'<li><a href="{_page_name(other)}"{current}>{label}</a></li>')
        sidebar = (
            '<nav class="skinmap-sidebar" id="quarto-sidebar" aria-label="Chapters">'
            f'<div class="skinmap-book-title"><a href="index.html">{html.escape(book_title)}</a></div>'
            f'<ul>{"".join(nav_items)}</ul>'
            f'<p class="skinmap-renderer">{_FOOTER_NOTE}</p></nav>'
        )
        page_title = f"{html.escape(titles[chapter.key])} – {html.escape(book_title)}"
        body = re.sub(r"<title>.*?</title>", f"<title>{page_title}</title>", body, count=1, flags=re.S)
        body = body.replace("</head>", f"<style>{css}</style>\n{_MATHJAX_CONFIG if mathjax else ''}</head>", 1)
        body = re.sub(r"(<body[^>]*>)", r"\1" + sidebar.replace("\\", r"\\") + '<div class="skinmap-main">', body, count=1)
        body = body.replace("</body>", f"</div><script>{js}</script>\n</body>", 1)
        (out / _page_name(chapter)).write_text(body, encoding="utf-8")


def render_book(ctx: BookContext, *, renderer: str = "auto") -> tuple[Path, str]:
    """Render ``_book/`` for ``ctx.profile``; returns the site folder and the renderer used.

    ``renderer`` is ``"auto"`` (Quarto when on PATH), ``"quarto"`` or ``"nbconvert"``.
    """
    chapters = book_chapters(ctx.project_root)
    executed = _executed(ctx, chapters)
    if renderer == "auto":
        renderer = "quarto" if shutil.which("quarto") else "nbconvert"
    if renderer == "quarto" and not shutil.which("quarto"):
        raise RenderError("renderer 'quarto' requested but `quarto` is not on PATH")
    target = ctx.project_root / "_book"
    tmp_root = Path(tempfile.mkdtemp(prefix=".book-", dir=ctx.project_root))
    new_site = tmp_root / "_book"
    try:
        if renderer == "quarto":
            _render_quarto(ctx, chapters, executed, new_site)
        elif renderer == "nbconvert":
            _render_fallback(ctx, chapters, executed, new_site)
        else:
            raise RenderError(f"unknown renderer {renderer!r} (auto, quarto or nbconvert)")
        _swap_into_place(new_site, target)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    write_manifest(ctx, renderer=renderer)
    return target, renderer
