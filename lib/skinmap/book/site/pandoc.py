"""Run pandoc (from the ``pypandoc-binary`` wheel, or a ``pandoc`` on PATH) on one chapter.

Pandoc does what Quarto itself delegates to it: Markdown, section numbering, the in-page table of
contents, syntax highlighting, citations and the bibliography (citeproc, Chicago author-date as in
Quarto), and our Lua filter (``assets/crossref.lua``) for cross-references, figures and callouts.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from skinmap.book.site.assemble import Target

__all__ = ["pandoc_path", "PandocResult", "run_pandoc"]

ASSETS = Path(__file__).resolve().parents[1] / "assets"
READER = "markdown-implicit_figures"


@functools.lru_cache(maxsize=None)
def _version(binary: str) -> tuple[int, ...]:
    first = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    match = re.search(r"(\d+(?:\.\d+)*)", first[0] if first else "")
    return tuple(int(x) for x in match.group(1).split(".")) if match else (0,)


def pandoc_path() -> str:
    """The pandoc binary: the one bundled by ``pypandoc-binary``, else ``pandoc`` on PATH."""
    try:
        import pypandoc

        return pypandoc.get_pandoc_path()
    except (ImportError, OSError):
        found = shutil.which("pandoc")
        if found:
            return found
    raise RuntimeError("pandoc not found: install the `pypandoc-binary` wheel (pip install pypandoc-binary)")


@dataclass(frozen=True)
class PandocResult:
    toc: str
    body: str
    css: str
    warnings: list[str]


def run_pandoc(markdown: str, *, page: str, targets: dict[str, Target], chapter_number: int | None,
               bibliography: Path | None, toc: bool = True, toc_depth: int = 3) -> PandocResult:
    """Convert one chapter's Markdown into an HTML fragment, its table of contents and its CSS.

    ``targets`` is the whole book's cross-reference table (label -> :class:`Target`).
    """
    with tempfile.TemporaryDirectory(prefix="skinmap-pandoc-") as tmp:
        xref = Path(tmp) / "xref.json"
        xref.write_text(json.dumps({k: {"kind": t.kind, "number": t.number, "page": t.page, "text": t.text}
                                    for k, t in targets.items()}), encoding="utf-8")
        binary = pandoc_path()
        if _version(binary) < (3, 1, 1):  # pandoc.Figure and pandoc.json in the Lua filter
            raise RuntimeError(f"pandoc {'.'.join(map(str, _version(binary)))} is too old: 3.1.1 or later is needed")
        # pandoc 3.8 renamed --highlight-style to --syntax-highlighting
        highlight = "--syntax-highlighting=pygments" if _version(binary) >= (3, 8) else "--highlight-style=pygments"
        args = [binary, "--from", READER, "--to", "html5", "--template", os.fspath(ASSETS / "fragment.html"),
                "--wrap=none", "--mathjax", highlight,
                "--lua-filter", os.fspath(ASSETS / "crossref.lua"),
                "--metadata", f"skinmap-xref={xref}", "--metadata", f"skinmap-page={page}",
                "--metadata", "pagetitle=page"]
        if toc:
            args += ["--toc", f"--toc-depth={toc_depth}"]
        if chapter_number:
            args += ["--number-sections", f"--number-offset={chapter_number - 1}"]
        if bibliography is not None and bibliography.is_file():
            args += ["--citeproc", "--bibliography", os.fspath(bibliography), "--metadata", "link-citations=true"]
        proc = subprocess.run(args, input=markdown, capture_output=True, text=True, encoding="utf-8")
    if proc.returncode != 0:
        raise RuntimeError(f"pandoc failed on {page}:\n{proc.stderr[-4000:]}")
    out = proc.stdout
    head, _, rest = out.partition("<!--skinmap:body-->")
    body, _, css = rest.partition("<!--skinmap:css-->")
    warnings = [line for line in proc.stderr.splitlines() if line.strip()]
    return PandocResult(toc=head.strip(), body=body.strip(), css=css.strip(), warnings=warnings)
