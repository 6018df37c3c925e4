"""Render executed chapters into the book website ``_book/``.

With Quarto on ``PATH`` the executed notebooks are staged next to a copy of ``_quarto.yml``
and rendered by ``quarto render`` (Quarto does not re-execute notebooks). Without Quarto the
fallback (:mod:`skinmap.book.site`; renderer id ``nbconvert`` for compatibility) honours the same
notebook conventions with pandoc (``pypandoc-binary``): ``#|`` cell options, numbered figures, tables,
equations and sections, cross-references across chapters, callouts, ``[@key]`` citations with a
bibliography per chapter (citeproc), an in-page table of contents, previous / next links and an
offline lunr search; equations are typeset by a copy of MathJax 2 inside the site (from
``jupyter-server-mathjax``), so it reads offline. Either way the new site replaces ``_book/`` only
once it is complete.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import yaml

from skinmap import runs
from skinmap.book.chapters import Chapter, book_chapters
from skinmap.book.runner import BookContext, write_manifest
from skinmap.book.site.cells import HIDDEN_TAGS

__all__ = ["render_book", "render_fallback_site", "chapter_title", "RenderError"]

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
            nb = nbformat.read(os.fspath(executed[chapter.key]), as_version=4)
            for cell in nb.cells:  # papermill's parameter cells are plumbing, never shown
                tags = cell.setdefault("metadata", {}).setdefault("tags", [])
                if cell.cell_type == "code" and HIDDEN_TAGS.intersection(tags):
                    if "remove-cell" not in tags:
                        tags.append("remove-cell")
                    if "#| include: false" not in cell.source:
                        cell.source = "#| include: false\n" + cell.source
            nbformat.write(nb, os.fspath(dest))
        for extra in ("chapters/styles.css", "references.bib"):
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


def render_fallback_site(project_root: str | Path, run_dir: str | Path, out: str | Path) -> list[str]:
    """Write the fallback site of the executed chapters in ``run_dir`` into the new folder ``out``
    (no manifest update, no swap into ``_book/``); returns the build warnings."""
    project_root = Path(project_root)
    chapters = book_chapters(project_root)
    executed = {}
    for chapter in chapters:
        path = runs.run_file(Path(run_dir), "notebook", stem=chapter.stem)
        if not path.is_file():
            raise RenderError(f"no executed notebook for chapter {chapter.key} in {path.parent}")
        executed[chapter.key] = path
    return _build_fallback(project_root, chapters, executed, Path(out))


def _render_fallback(ctx: BookContext, chapters: list[Chapter], executed: dict[str, Path], out: Path) -> None:
    for line in _build_fallback(ctx.project_root, chapters, executed, out):  # the build log, never the page
        print(f"render warning: {line}", file=sys.stderr)


def _build_fallback(project_root: Path, chapters: list[Chapter], executed: dict[str, Path], out: Path) -> list[str]:
    """The site without Quarto, honouring the same conventions (see :mod:`skinmap.book.site`)."""
    from skinmap.book.site.build import PageSpec, build_site

    config = yaml.safe_load((project_root / "_quarto.yml").read_text(encoding="utf-8")) or {}
    book = config.get("book") or {}
    html_format = ((config.get("format") or {}).get("html") or {})
    bibliography = book.get("bibliography") or config.get("bibliography") or "references.bib"
    if isinstance(bibliography, list):
        bibliography = bibliography[0] if bibliography else "references.bib"
    pages = []
    for number, chapter in enumerate(chapters):
        nb = nbformat.read(os.fspath(executed[chapter.key]), as_version=4)
        pages.append(PageSpec(key=chapter.key, page=_page_name(chapter), notebook=nb,
                              title=chapter_title(nb, chapter.key),
                              number=None if chapter.key == "index" else number))
    out.mkdir(parents=True)
    return build_site(
        pages, out, book_title=book.get("title", "SkinMap"),
        bibliography=project_root / bibliography,
        execute_defaults=config.get("execute") or {},
        code_fold=bool(html_format.get("code-fold", True)),
        code_summary=str(html_format.get("code-summary", "Show code")),
        number_sections=bool(html_format.get("number-sections", True)),
        mathjax=_vendored_mathjax(out),
        private_paths=tuple(sorted({os.fspath(project_root.resolve())}
                                   | {os.fspath(p.parent.parent.resolve()) for p in executed.values()})),
    )


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
