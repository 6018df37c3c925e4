"""End to end: build the demo book with the README's command path, then read it in a browser.

Builds `runs/demo/` and `_book/` in the project itself (cached chapters are reused, exactly as
for a reader running `make book` twice), then opens `_book/index.html` in headless Chromium,
follows the sidebar to every chapter in `_quarto.yml` order and checks each page.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from skinmap.book.chapters import book_chapters
from skinmap.book.render import chapter_title

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def built_book():
    proc = subprocess.run(
        [sys.executable, "-m", "skinmap", "book", "--profile", "demo"],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, f"book build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    assert "Rendered with" in proc.stdout  # the build says which renderer it used
    BUILD_LOG["stderr"] = proc.stderr
    return ROOT / "_book"


BUILD_LOG: dict[str, str] = {}


def _makes_figures(nb) -> bool:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data or "image/svg+xml" in data:
                return True
    return False


def test_manifest_lists_every_chapter(built_book):
    manifest = json.loads((ROOT / "runs" / "demo" / "manifest.json").read_text())
    chapters = book_chapters(ROOT)
    assert [c["name"] for c in manifest["chapters"]] == [c.key for c in chapters]
    for entry in manifest["chapters"]:
        assert entry["status"] in ("executed", "cached"), entry["name"]
        for key in ("parameters", "params_hash", "input_fingerprints", "run_seconds", "files"):
            assert key in entry, (entry["name"], key)
    assert manifest["renderer"] in ("quarto", "nbconvert")


def test_every_labelled_table_and_figure_has_its_output(built_book):
    """A cell labelled tbl-/fig- shows a table / figure in the demo run too (status_table when the run lacks the
    data), so the book's numbers do not depend on the data at hand (the fallback renderer names such cells)."""
    empty = [line for line in BUILD_LOG.get("stderr", "").splitlines()
             if "label on a cell without" in line]
    assert not empty, "\n".join(empty)


def test_executed_notebooks_have_no_errors(built_book):
    for chapter in book_chapters(ROOT):
        nb = nbformat.read(ROOT / "runs" / "demo" / "notebooks" / f"{chapter.stem}.ipynb", as_version=4)
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{chapter.key}: {errors[0].get('ename')}: {errors[0].get('evalue')}"


def test_every_chapter_figure_passes_the_figure_rules(built_book):
    """Each chapter's displayed figures were audited while it ran (viz.audit: text >= 9 pt at the
    rendered width, legends inside the figure and off the data, distinct colours, no unmarked clipped
    bar, no overlapping titles); the records are in ``<chapter>/figure_audit.jsonl``."""
    from skinmap import runs

    audited, bad = 0, []
    for chapter in book_chapters(ROOT):
        path = runs.run_file(ROOT / "runs" / "demo", "figure_audit", chapter=chapter.key)
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            audited += 1
            bad += [f"{chapter.key} {record.get('cell')}: {v}" for v in record.get("violations", [])]
    assert audited >= 20, f"only {audited} figures were audited"
    assert not bad, "\n".join(bad[:20])


def test_browser_follows_navigation_to_every_chapter(built_book, chromium):
    import contextlib

    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chapters = book_chapters(ROOT)
    chromium.get((built_book / "index.html").as_uri())
    nav_links = chromium.find_elements(By.CSS_SELECTOR, "#quarto-sidebar a[href$='.html']")
    hrefs = []
    for link in nav_links:
        href = link.get_attribute("href")
        if href not in hrefs:
            hrefs.append(href)
    assert len(hrefs) >= len(chapters), f"sidebar has {len(hrefs)} links for {len(chapters)} chapters"
    for chapter in chapters:
        nb = nbformat.read(ROOT / "runs" / "demo" / "notebooks" / f"{chapter.stem}.ipynb", as_version=4)
        title = chapter_title(nb, chapter.key)
        # Follow the sidebar link whose text is the chapter title (as a reader would).
        link = next(
            (a for a in chromium.find_elements(By.CSS_SELECTOR, "#quarto-sidebar a") if title in a.text), None
        )
        assert link is not None, f"no sidebar link for '{title}' on {chromium.current_url}"
        chromium.get(link.get_attribute("href"))

        def heading(d):
            return " ".join(e.text for e in d.find_elements(By.TAG_NAME, "h1"))

        # Wait on the condition, not a fixed time: a loaded machine renders late.
        with contextlib.suppress(TimeoutException):
            WebDriverWait(chromium, 30, poll_frequency=0.2).until(
                lambda d: d.execute_script("return document.readyState") == "complete" and title in heading(d)
            )
        h1 = heading(chromium)
        assert title in h1, f"{chapter.key}: page title {h1!r} lacks {title!r}"
        assert chromium.find_elements(By.CSS_SELECTOR, ".provenance"), f"{chapter.key}: no provenance block"
        if _makes_figures(nb):
            images = chromium.find_elements(By.CSS_SELECTOR, "img, svg")
            assert images, f"{chapter.key}: no figure on the page"
        text = chromium.find_element(By.TAG_NAME, "body").text
        assert "Traceback (most recent call last)" not in text, f"{chapter.key}: error output on the page"


def test_equations_are_typeset_from_the_site_itself(built_book, chromium):
    """The fallback ships MathJax inside the site: the quality chapter's equations are typeset from
    `site_libs/mathjax`, with no network (the test machine reaches no CDN)."""
    import contextlib

    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    if not (built_book / "site_libs" / "mathjax" / "MathJax.js").is_file():
        pytest.skip("jupyter-server-mathjax is not installed: the pages use the MathJax CDN")
    page = built_book / "02-quality.html"
    assert 'src="site_libs/mathjax/MathJax.js' in page.read_text(encoding="utf-8")
    chromium.get(page.as_uri())
    with contextlib.suppress(TimeoutException):
        WebDriverWait(chromium, 30, poll_frequency=0.2).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, ".MathJax_Display, .MathJax"))
    typeset = chromium.find_elements(By.CSS_SELECTOR, ".MathJax_Display, .MathJax")
    assert typeset, "no typeset equation on the quality page"
    raw = chromium.find_element(By.TAG_NAME, "body").text
    assert "\\max_{(u,v)" not in raw  # the display equation's TeX source is no longer shown as text
