"""One executed notebook -> one pandoc Markdown document, numbered as Quarto numbers a book.

Markdown cells pass through unchanged (pandoc reads them: citations, callouts as fenced divs,
heading attributes). Code cells are shown as Quarto shows them: ``#|`` options applied, code folded,
outputs kept or dropped, figures and tables wrapped in numbered, captioned floats
(``Figure 3.2: ...``), ``$$ ... $$ {#eq-...}`` numbered ``(3.1)``. Every label becomes a
:class:`Target` so that references (``@fig-...``) resolve across the whole book.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field

import nbformat

from skinmap.book.site.cells import cell_options, hidden_cell, split_options, visible_outputs

__all__ = ["Target", "ChapterDoc", "assemble_chapter", "number_equations", "number_headings",
           "KIND_NAMES"]

KIND_NAMES = {"fig": "Figure", "tbl": "Table", "eq": "Equation", "sec": "Section"}
_EQUATION = re.compile(r"\$\$(?P<tex>.+?)\$\$[ \t]*\{#(?P<label>eq-[A-Za-z0-9_:-]+)\}", flags=re.S)
_HEADING = re.compile(r"^(?P<hashes>#{1,6})[ \t]+(?P<text>.*?)[ \t]*(?:\{(?P<attrs>[^}]*)\})?[ \t]*$")
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_IMAGE_MIME = ("image/svg+xml", "image/png", "image/jpeg", "image/gif")


@dataclass(frozen=True)
class Target:
    """A numbered, referable element of the book."""

    label: str  # e.g. "fig-data-coverage"
    kind: str  # "fig", "tbl", "eq" or "sec"
    number: str  # e.g. "1.2"; a sub-figure "1.2 (a)"; "" when unnumbered
    page: str  # the HTML page that holds it
    title: str = ""  # a section's heading text

    @property
    def prefix(self) -> str:
        """``Figure``, ``Table``, ``Equation``, ``Section``, or ``Chapter`` for a level-1 heading."""
        if self.kind == "sec" and self.number and "." not in self.number:
            return "Chapter"
        return KIND_NAMES[self.kind]

    @property
    def text(self) -> str:
        """How a reference to it reads, e.g. ``Figure 1.2`` (an unnumbered section: its title)."""
        return f"{self.prefix} {self.number}" if self.number else self.title


@dataclass
class ChapterDoc:
    """A chapter as pandoc Markdown plus what it defines."""

    markdown: str
    targets: list[Target] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    appendix: list[str] = field(default_factory=list)  # the provenance block: after the references


def _number(chapter_number: int | None, index: int) -> str:
    return f"{chapter_number}.{index}" if chapter_number else str(index)


def _fence(text: str, info: str = "") -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    ticks = "`" * (longest + 1)
    return f"{ticks}{info}\n{text.rstrip(chr(10))}\n{ticks}"


def _raw_html(text: str) -> str:
    return _fence(text, "{=html}")


def number_equations(text: str, chapter_number: int | None, start: int, page: str,
                     targets: list[Target]) -> tuple[str, int]:
    """Number every ``$$ ... $$ {#eq-label}``: a span with the label's id around the display
    math, tagged ``(n.k)``; returns the new text and the last equation index used."""
    index = start

    def repl(match: re.Match) -> str:
        nonlocal index
        index += 1
        number = _number(chapter_number, index)
        targets.append(Target(match["label"], "eq", number, page))
        return f"[$${match['tex'].rstrip()} \\tag{{{number}}}$$]{{#{match['label']} .quarto-equation}}"

    return _EQUATION.sub(repl, text), index


def number_headings(markdown: str, chapter_number: int | None, page: str) -> list[Target]:
    """Targets for headings with a ``{#sec-...}`` id, numbered as pandoc's ``--number-sections``
    with ``--number-offset=chapter-1`` numbers them (``{.unnumbered}`` / ``{-}`` headings are not
    numbered; an unnumbered chapter numbers nothing)."""
    targets: list[Target] = []
    counters = [0] * 6
    fence: str | None = None
    previous = ""
    for line in markdown.splitlines():
        after_callout = re.match(r"^:{3,}\s*(\{[^}]*\.callout-|callout-)", previous) is not None
        if line.strip():
            previous = line
        opened = _FENCE.match(line)
        if opened:
            marker = opened.group(1)
            if fence is None:
                fence = marker
            elif marker[0] == fence[0] and len(marker) >= len(fence) and not line.strip()[len(marker):].strip():
                fence = None
            continue
        if fence is not None:
            continue
        match = _HEADING.match(line)
        if not match:
            continue
        if after_callout:
            continue  # the callout's title (Quarto: not a section)
        level = len(match["hashes"])
        attrs = (match["attrs"] or "").split()
        numbered = chapter_number is not None and ".unnumbered" not in attrs and "-" not in attrs
        if numbered:
            counters[level - 1] += 1
            counters[level:] = [0] * (6 - level)
        label = next((a[1:] for a in attrs if a.startswith("#")), None)
        if label and label.startswith("sec-"):
            parts = counters[:level]
            parts[0] += (chapter_number or 1) - 1
            number = ".".join(str(p) for p in parts) if numbered else ""
            targets.append(Target(label, "sec", number, page, title=match["text"].strip()))
    return targets


def _image_tag(output: dict, alt: str) -> str | None:
    data = output.get("data") or {}
    for mime in _IMAGE_MIME:
        if mime in data:
            payload = data[mime]
            if isinstance(payload, list):
                payload = "".join(payload)
            if mime == "image/svg+xml":
                payload = base64.b64encode(payload.encode("utf-8")).decode("ascii")
            else:
                payload = payload.replace("\n", "")
            return f'<img src="data:{mime};base64,{payload}" alt="{html.escape(alt, quote=True)}">'
    return None


def _wrap_table(markup: str) -> str:
    """Wide tables scroll inside their own box instead of running off the page."""
    if "<table" in markup and "table-scroll" not in markup:
        return f'<div class="table-scroll">\n{markup}\n</div>'
    return markup


def _output_markdown(output: dict, opts) -> str | None:
    """One output as pandoc Markdown (None when nothing is shown)."""
    kind = output.get("output_type")
    if kind == "stream":
        text = _ANSI.sub("", "".join(output.get("text", "")))
        if not text.strip():
            return None
        cls = "cell-output-stderr" if output.get("name") == "stderr" else "cell-output-stdout"
        return f"::: {{.cell-output .{cls}}}\n{_fence(text)}\n:::"
    if kind == "error":
        trace = _ANSI.sub("", "\n".join(output.get("traceback") or [f"{output.get('ename')}: {output.get('evalue')}"]))
        return f"::: {{.cell-output .cell-output-error}}\n{_fence(trace)}\n:::"
    data = output.get("data") or {}
    if "text/markdown" in data:
        text = "".join(data["text/markdown"])
        return text if opts.output != "asis" else text
    if "text/html" in data:
        return _raw_html(f'<div class="cell-output cell-output-display">\n{_wrap_table("".join(data["text/html"]))}\n</div>')
    image = _image_tag(output, "")
    if image:
        return _raw_html(f'<div class="cell-output cell-output-display">{image}</div>')
    if "text/latex" in data:
        return "".join(data["text/latex"])
    if "text/plain" in data:
        text = "".join(data["text/plain"])
        if opts.output == "asis":
            return text
        return f"::: {{.cell-output .cell-output-stdout}}\n{_fence(text)}\n:::"
    return None


def _is_image(output: dict) -> bool:
    return output.get("output_type") in ("display_data", "execute_result") and any(
        m in (output.get("data") or {}) for m in _IMAGE_MIME)


def _is_table(output: dict) -> bool:
    data = output.get("data") or {}
    return "<table" in "".join(data.get("text/html", "")) or bool(
        re.search(r"^\s*\|.*\|\s*$", "".join(data.get("text/markdown", "")), flags=re.M))


def _plain(text: str) -> str:
    """Caption text for an image's ``alt``: no citations, no Markdown marks."""
    return re.sub(r"[*_`$\[\]]", "", re.sub(r"\s*\[[^\]]*@[^\]]*\]", "", text)).strip()


def _figure_content(output: dict, alt: str) -> str:
    image = _image_tag(output, alt)
    return _raw_html(image if image else "".join((output.get("data") or {}).get("text/html", "")))


def _figure(label: str, number: str, caption: str, images: list[dict], subcaps: tuple[str, ...],
            page: str, targets: list[Target], warnings: list[str]) -> str:
    targets.append(Target(label, "fig", number, page))
    parts = [f":::: {{#{label} .skinmap-figure .quarto-float .quarto-figure}}"]
    if subcaps and len(subcaps) != len(images):
        warnings.append(f"{label}: {len(subcaps)} fig-subcap entries for {len(images)} images")
    for i, output in enumerate(images):
        if subcaps and i < len(subcaps):
            letter = chr(ord("a") + i)
            sub = f"{label}-{i + 1}"
            targets.append(Target(sub, "fig", f"{number} ({letter})", page))
            parts.append(f"::: {{#{sub} .skinmap-figure .skinmap-subfigure}}\n"
                         f"{_figure_content(output, _plain(subcaps[i]))}\n\n"
                         f"::: {{.skinmap-caption}}\n\\({letter}) {subcaps[i]}\n:::\n:::")
        else:
            parts.append(_figure_content(output, _plain(caption)))
    parts.append(f"::: {{.skinmap-caption}}\nFigure {number}: {caption}\n:::")
    parts.append("::::")
    return "\n\n".join(parts)


def _table(label: str, number: str, caption: str, table_md: str, page: str, targets: list[Target]) -> str:
    targets.append(Target(label, "tbl", number, page))
    return (f":::: {{#{label} .skinmap-table .quarto-float .quarto-table}}\n\n"
            f"::: {{.skinmap-caption}}\nTable {number}: {caption}\n:::\n\n{table_md}\n\n::::")


def assemble_chapter(nb: nbformat.NotebookNode, *, chapter_number: int | None, page: str,
                     defaults: dict | None = None, code_fold: bool = True,
                     code_summary: str = "Show code") -> ChapterDoc:
    """The chapter as pandoc Markdown with its figures, tables, equations and sections numbered.

    Parameters
    ----------
    nb : NotebookNode
        The executed notebook.
    chapter_number : int or None
        Its number in the book (None for the unnumbered preface: floats are numbered 1, 2, ...).
    page : str
        The HTML page it becomes (targets point there).
    defaults : dict, optional
        ``execute:`` options of ``_quarto.yml`` (e.g. ``echo``, ``warning``).
    code_fold, code_summary
        Quarto's ``code-fold`` / ``code-summary``: shown code sits behind a disclosure.
    """
    doc = ChapterDoc(markdown="")
    blocks: list[str] = []
    counts = {"fig": 0, "tbl": 0, "eq": 0}
    defaults = {k: v for k, v in (defaults or {}).items() if k in ("echo", "output", "warning", "error", "include")}
    for cell in nb.cells:
        tags = list(cell.get("metadata", {}).get("tags", []))
        if hidden_cell(tags):
            continue
        if cell.cell_type == "markdown" and "provenance" in tags:
            doc.appendix.append(cell.source)
            continue
        if cell.cell_type == "markdown":
            text, counts["eq"] = number_equations(cell.source, chapter_number, counts["eq"], page, doc.targets)
            blocks.append(text)
            continue
        if cell.cell_type == "raw":
            fmt = (cell.metadata.get("format") or cell.metadata.get("raw_mimetype") or "").lower()
            if "html" in fmt:
                blocks.append(_raw_html(cell.source))
            continue
        if cell.cell_type != "code":
            continue
        try:
            raw_opts, code = split_options(cell.source)
        except ValueError as exc:
            doc.warnings.append(f"cell {cell.get('id', '?')}: {exc}")
            raw_opts, code = {}, cell.source
        opts = cell_options(raw_opts, defaults, tags)
        if not opts.include:
            continue
        if opts.echo and code.strip():
            block = _fence(code, "python")
            if code_fold:
                block = (_raw_html(f'<details class="code-fold"><summary>{html.escape(code_summary)}</summary>')
                         + "\n\n" + block + "\n\n" + _raw_html("</details>"))
            blocks.append(block)
        outputs = visible_outputs(list(cell.get("outputs", [])), opts)
        kind = opts.kind
        if kind == "fig":
            images = [o for o in outputs if _is_image(o)]
            if not images:  # an interactive figure (HTML output), as Quarto floats it too
                images = [o for o in outputs if "text/html" in (o.get("data") or {})]
            rest = [o for o in outputs if not any(o is i for i in images)]
            for output in rest:
                md = _output_markdown(output, opts)
                if md:
                    blocks.append(_number_output_equations(md, chapter_number, counts, page, doc))
            if images:
                counts["fig"] += 1
                blocks.append(_figure(opts.label, _number(chapter_number, counts["fig"]),
                                      str(opts.fig_cap or ""), images, opts.fig_subcap, page,
                                      doc.targets, doc.warnings))
            else:
                doc.warnings.append(f"{opts.label}: a figure label on a cell without an image or HTML output")
            continue
        if kind is None and opts.fig_cap and any(_is_image(o) for o in outputs):
            # a caption without a label: Quarto shows it, unnumbered
            for output in outputs:
                if _is_image(output):
                    blocks.append(f":::: {{.skinmap-figure}}\n\n{_figure_content(output, _plain(str(opts.fig_cap)))}"
                                  f"\n\n::: {{.skinmap-caption}}\n{opts.fig_cap}\n:::\n\n::::")
                else:
                    md = _output_markdown(output, opts)
                    if md:
                        blocks.append(md)
            continue
        table_done = False
        for output in outputs:
            md = _output_markdown(output, opts)
            if not md:
                continue
            md = _number_output_equations(md, chapter_number, counts, page, doc)
            if kind == "tbl" and not table_done and _is_table(output):
                counts["tbl"] += 1
                md = _table(opts.label, _number(chapter_number, counts["tbl"]), str(opts.tbl_cap or ""),
                            md, page, doc.targets)
                table_done = True
            elif kind is None and opts.tbl_cap and not table_done and _is_table(output):
                md = f":::: {{.skinmap-table}}\n\n::: {{.skinmap-caption}}\n{opts.tbl_cap}\n:::\n\n{md}\n\n::::"
                table_done = True
            blocks.append(md)
        if kind == "tbl" and not table_done:
            doc.warnings.append(f"{opts.label}: a table label on a cell without a table output")
    doc.markdown = "\n\n".join(b.strip("\n") for b in blocks if b.strip()) + "\n"
    doc.targets.extend(number_headings(doc.markdown, chapter_number, page))
    seen: set[str] = set()
    for target in doc.targets:
        if target.label in seen:
            doc.warnings.append(f"label {target.label} is defined twice")
        seen.add(target.label)
    return doc


def _number_output_equations(md: str, chapter_number, counts, page, doc) -> str:
    text, counts["eq"] = number_equations(md, chapter_number, counts["eq"], page, doc.targets)
    return text
