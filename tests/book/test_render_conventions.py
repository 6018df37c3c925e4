"""The fallback renderer honours Quarto's notebook conventions.

A tiny hand-written two-chapter book whose numbers are known by construction (chapter 1 has two
figures, the second with two sub-figures, one table and one labelled equation; chapter 2 one
figure and references back), rendered by the real pipeline (pandoc, citeproc, the Lua filter,
lunr); every expectation below is written out by hand, not taken from the renderer.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from skinmap.book.site.assemble import assemble_chapter, number_headings
from skinmap.book.site.build import PageSpec, build_site
from skinmap.book.site.cells import cell_options, split_options, visible_outputs

ROOT = Path(__file__).resolve().parents[2]
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def _image():
    return new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})


def _html_table():
    return new_output("execute_result", execution_count=1,
                      data={"text/html": "<table><tr><th>n</th></tr><tr><td>7</td></tr></table>", "text/plain": "n 7"})


def _chapter_one():
    params = new_code_cell('run_dir = "/work/secret/run"', outputs=[])
    params.metadata["tags"] = ["parameters"]
    injected = new_code_cell('run_dir = "/root/injected"', outputs=[])
    injected.metadata["tags"] = ["injected-parameters"]
    return new_notebook(cells=[
        new_markdown_cell("# Alpha\n\nIntro citing [@tschandl2018ham10000]; see @fig-alpha-b, [-@tbl-alpha-counts], "
                          "@eq-alpha-mean, @sec-alpha-method and @fig-beta-only in @sec-beta."),
        params, injected,
        new_code_cell("#| echo: false\nimport secret_plumbing", outputs=[]),
        new_markdown_cell("## Method {#sec-alpha-method}\n\n$$\\bar x = \\frac{1}{n}\\sum_i x_i$$ {#eq-alpha-mean}"),
        new_code_cell("#| label: fig-alpha-a\n#| fig-cap: \"First figure\"\nplot_a()",
                      outputs=[new_output("stream", name="stderr", text="LightningDeprecationWarning: noisy\n"),
                               _image()]),
        new_markdown_cell("::: {.callout-warning}\n## Caveats\n\n- a caveat\n:::\n\n## Results\n\nText."),
        new_code_cell("#| label: fig-alpha-b\n#| fig-cap: \"Two panels\"\n#| fig-subcap:\n#|   - \"left\"\n#|   - \"right\"\n"
                      "plot_b()", outputs=[_image(), _image()]),
        new_code_cell("#| label: tbl-alpha-counts\n#| tbl-cap: \"Counts\"\ntable()", outputs=[_html_table()]),
        new_code_cell("#| output: false\nnoisy()", outputs=[new_output("stream", name="stdout", text="HIDDEN-OUTPUT\n")]),
        new_code_cell("widget()", outputs=[new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2, "version_minor": 0},
            "text/plain": "HBox(children=(FloatProgress(value=0.0),))"})]),
        new_markdown_cell("Missing @fig-nowhere here."),
    ])


def _chapter_two():
    return new_notebook(cells=[
        new_markdown_cell("# Beta {#sec-beta}\n\nBack to @fig-alpha-a and @fig-alpha-b-2; also [@skinmap2026]."),
        new_code_cell("#| label: fig-beta-only\n#| fig-cap: \"Only figure of beta\"\nplot()", outputs=[_image()]),
        new_code_cell("#| label: fig-beta-interactive\n#| fig-cap: \"An interactive figure\"\nexplorer()",
                      outputs=[new_output("display_data", data={"text/html": '<div class="explorer">map</div>',
                                                                "text/plain": "<Explorer>"})]),
        new_code_cell("#| fig-cap: \"Captioned, not labelled\"\nplot()", outputs=[_image()]),
        new_code_cell("print('visible stdout zebra')", outputs=[new_output("stream", name="stdout", text="visible stdout zebra\n")]),
    ])


# ------------------------------------------------------------------------------------ cell options


def test_options_are_parsed_and_stripped_from_the_code():
    opts, code = split_options("#| label: fig-x\n#| fig-cap: \"A: b\"\n#| echo: false\n\nx = 1\n#| not an option")
    assert opts == {"label": "fig-x", "fig-cap": "A: b", "echo": False}
    assert code == "x = 1\n#| not an option"
    assert split_options("x = 1") == ({}, "x = 1")
    with pytest.raises(ValueError):
        split_options("#| label: [unclosed")


def test_document_defaults_cell_options_and_tags():
    assert cell_options({}, {"echo": True, "warning": False}).warning is False
    assert cell_options({"warning": True}, {"warning": False}).warning is True  # the cell wins
    assert cell_options({}, {}, tags=["remove-input"]).echo is False
    assert cell_options({}, {}, tags=["remove-output"]).output is False
    assert cell_options({"label": "tbl-x"}).kind == "tbl" and cell_options({"label": "x"}).kind is None
    outputs = [new_output("stream", name="stderr", text="w"), new_output("stream", name="stdout", text="o"),
               new_output("error", ename="E", evalue="v", traceback=["E: v"])]
    kinds = [(o["output_type"], o.get("name")) for o in visible_outputs(outputs, cell_options({"warning": False}))]
    assert kinds == [("stream", "stdout"), ("error", None)]  # errors are never hidden
    assert visible_outputs(outputs, cell_options({"output": False})) == []


# ------------------------------------------------------------------------------------ numbering


def test_numbers_follow_quarto_book_rules():
    doc = assemble_chapter(_chapter_one(), chapter_number=1, page="01-alpha.html", defaults={"warning": False})
    numbers = {t.label: (t.kind, t.number) for t in doc.targets}
    assert numbers == {
        "eq-alpha-mean": ("eq", "1.1"),
        "fig-alpha-a": ("fig", "1.1"),
        "fig-alpha-b": ("fig", "1.2"),
        "fig-alpha-b-1": ("fig", "1.2 (a)"),
        "fig-alpha-b-2": ("fig", "1.2 (b)"),
        "tbl-alpha-counts": ("tbl", "1.1"),
        "sec-alpha-method": ("sec", "1.1"),
    }
    assert "\\tag{1.1}" in doc.markdown
    unnumbered = assemble_chapter(_chapter_two(), chapter_number=None, page="index.html")
    assert [(t.label, t.number, t.text) for t in unnumbered.targets] == [
        ("fig-beta-only", "1", "Figure 1"), ("fig-beta-interactive", "2", "Figure 2"), ("sec-beta", "", "Beta")]


def test_section_numbers_skip_callout_titles_and_unnumbered_headings():
    markdown = ("# Chapter\n\n## One {#sec-one}\n\n::: {.callout-note}\n## Not a section\n:::\n\n"
                "## Extra {.unnumbered}\n\n```python\n## a comment in code\n```\n\n## Two {#sec-two}\n\n### Deep {#sec-deep}\n")
    got = {t.label: t.number for t in number_headings(markdown, 4, "p.html")}
    assert got == {"sec-one": "4.1", "sec-two": "4.2", "sec-deep": "4.2.1"}


# ------------------------------------------------------------------------------------ the rendered site


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from nbformat.v4 import new_notebook as nn

    out = tmp_path_factory.mktemp("site")
    preface = nn(cells=[new_markdown_cell("# Preface {.unnumbered}\n\nThe preface mentions quokka.")])
    pages = [
        PageSpec("index", "index.html", preface, "Preface", None),
        PageSpec("alpha", "01-alpha.html", _chapter_one(), "Alpha", 1),
        PageSpec("beta", "02-beta.html", _chapter_two(), "Beta", 2),
    ]
    warnings = build_site(pages, out, book_title="Toy book", bibliography=ROOT / "references.bib",
                          execute_defaults={"echo": True, "warning": False})
    return out, warnings


def _text(markup: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", markup))


def test_figures_tables_and_equations_are_numbered_with_captions(site):
    out, _ = site
    alpha = (out / "01-alpha.html").read_text(encoding="utf-8")
    captions = [_text(c).strip() for c in re.findall(r"<figcaption>(.*?)</figcaption>", alpha, flags=re.S)]
    assert captions == ["Figure 1.1: First figure", "(a) left", "(b) right", "Figure 1.2: Two panels"]
    assert re.search(r'<figure id="fig-alpha-b"', alpha) and re.search(r'<figure id="fig-alpha-b-2"', alpha)
    assert "Table 1.1: Counts" in _text(alpha)
    assert 'id="eq-alpha-mean"' in alpha and "\\tag{1.1}" in alpha
    beta = (out / "02-beta.html").read_text(encoding="utf-8")
    assert re.search(r'<figure id="fig-beta-interactive"[^>]*>\s*<div class="explorer">map</div>\s*'
                     r'<figcaption><p>Figure 2.2: An interactive figure</p></figcaption>', beta)
    assert "<figcaption><p>Captioned, not labelled</p></figcaption>" in beta  # no label: no number
    assert re.search(r'<h2[^>]*id="sec-alpha-method"[^>]*><span class="header-section-number">1.1</span>', alpha)


def test_cross_references_resolve_within_and_across_chapters(site):
    out, warnings = site
    alpha = (out / "01-alpha.html").read_text(encoding="utf-8")
    beta = (out / "02-beta.html").read_text(encoding="utf-8")
    links = dict((text, href) for href, text in re.findall(r'<a href="([^"]*)" class="quarto-xref">(.*?)</a>', alpha))
    assert links == {"Figure 1.2": "#fig-alpha-b", "1.1": "#tbl-alpha-counts", "Equation 1.1": "#eq-alpha-mean",
                     "Section 1.1": "#sec-alpha-method", "Figure 2.1": "02-beta.html#fig-beta-only",
                     "Chapter 2": "02-beta.html#sec-beta"}
    back = re.findall(r'<a href="([^"]*)" class="quarto-xref">(.*?)</a>', beta)
    assert back == [("01-alpha.html#fig-alpha-a", "Figure 1.1"), ("01-alpha.html#fig-alpha-b-2", "Figure 1.2 (b)")]
    assert "?@fig-nowhere" in _text(alpha) and 'class="quarto-unresolved-ref"' in alpha
    assert any("fig-nowhere" in w for w in warnings)  # reported in the build log too
    assert "?@" not in _text(beta)


def test_citations_and_a_bibliography_per_chapter(site):
    out, _ = site
    alpha = _text((out / "01-alpha.html").read_text(encoding="utf-8"))
    beta = _text((out / "02-beta.html").read_text(encoding="utf-8"))
    assert "(Tschandl, Rosendahl, and Kittler 2018)" in alpha or "(Tschandl et al. 2018)" in alpha
    assert "References" in alpha and "The HAM10000 Dataset" in alpha
    assert "Gröger" not in alpha  # only this chapter's citations
    assert "Gröger" in beta and "A Global Atlas of Digital Dermatology" in beta and "HAM10000" not in beta
    preface = _text((out / "index.html").read_text(encoding="utf-8"))
    assert "References" not in preface  # no citation, no bibliography


def test_callouts_hidden_cells_warnings_and_widgets(site):
    out, _ = site
    alpha = (out / "01-alpha.html").read_text(encoding="utf-8")
    assert re.search(r'<div class="callout callout-warning">\s*<div class="callout-header">\s*Caveats', alpha)
    text = _text(alpha)
    for hidden in ("/work/secret", "/root/injected", "secret_plumbing", "LightningDeprecationWarning",
                   "HIDDEN-OUTPUT", "HBox(", "FloatProgress"):
        assert hidden not in text, hidden
    assert "plot_a()" in text  # echoed code stays, folded
    assert re.search(r"<details class=\"code-fold\"><summary>Show code</summary>", alpha)
    assert "cell-output-stderr" not in alpha
    assert "visible stdout zebra" in _text((out / "02-beta.html").read_text(encoding="utf-8"))


def test_table_of_contents_and_previous_next_links(site):
    out, _ = site
    alpha = (out / "01-alpha.html").read_text(encoding="utf-8")
    toc = re.search(r'<nav id="TOC".*?</nav>', alpha, flags=re.S).group(0)
    assert re.findall(r'href="#([^"]+)"', toc) == ["alpha", "sec-alpha-method", "results", "references"]
    assert re.search(r'rel="prev" href="index.html"', alpha) and re.search(r'rel="next" href="02-beta.html"', alpha)
    beta = (out / "02-beta.html").read_text(encoding="utf-8")
    assert 'rel="next"' not in beta


def test_search_index_finds_words_on_every_page(site):
    import json

    from lunr.index import Index

    out, _ = site
    script = (out / "search-index.js").read_text(encoding="utf-8")
    payload = json.loads(script[script.index("=") + 1:].strip().rstrip(";").replace("<\\/", "</"))
    index = Index.load(payload["index"])
    assert {hit["ref"].split("#")[0] for hit in index.search("quokka")} == {"index.html"}
    assert {hit["ref"].split("#")[0] for hit in index.search("zebra")} == {"02-beta.html"}
    assert (out / "site_libs" / "skinmap" / "lunr.min.js").is_file()
