"""Every page of the rendered demo book, read in headless Chromium: clean and Quarto-like.

Renders the fallback site from an executed demo run (``$SKINMAP_SITE_RUN_DIR``, else the project's
``runs/demo/`` that ``make book`` or ``test_book_e2e.py`` builds; skipped with a reason when neither
holds executed notebooks) into a temporary folder, then checks, on every page: no stderr or error
output cell, no absolute path of the build machine, no element wider than the content column
(wide tables scroll inside their own box), a numbered caption on every figure, every
cross-reference resolved, and the offline search finding a word of another page. One test per
page and check, so a failure names both. Waits are on conditions, never fixed sleeps.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from skinmap.book.chapters import book_chapters

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["index.html" if c.key == "index" else f"{c.stem}.html" for c in book_chapters(ROOT)]
LEAK = re.compile(r"(?<![\w.-])(/work|/tmp|/root|/home|/Users)/|PosixPath\(|WindowsPath\(")

pytestmark = pytest.mark.browser


def _run_dir() -> Path | None:
    for candidate in (os.environ.get("SKINMAP_SITE_RUN_DIR"), ROOT / "runs" / "demo"):
        if candidate and all((Path(candidate) / "notebooks" / f"{c.stem}.ipynb").is_file()
                             for c in book_chapters(ROOT)):
            return Path(candidate)
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    from skinmap.book.render import render_fallback_site

    run_dir = _run_dir()
    if run_dir is None:
        pytest.skip("no executed demo run: build one with `python -m skinmap book` or set SKINMAP_SITE_RUN_DIR")
    out = tmp_path_factory.mktemp("site") / "_book"
    render_fallback_site(ROOT, run_dir, out)
    return out


def _open(driver, page: Path) -> None:
    """Load a page and wait until it is complete: scripts run, search index loaded, MathJax done."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(page.as_uri())
    wait = WebDriverWait(driver, 120, poll_frequency=0.2)
    wait.until(lambda d: d.execute_script("return document.readyState === 'complete' && !!window.SKINMAP_SEARCH"))
    driver.execute_script(
        "window.__typeset = !(window.MathJax && MathJax.Hub);"
        "if (!window.__typeset) MathJax.Hub.Queue(function () { window.__typeset = true; });")
    wait.until(lambda d: d.execute_script("return window.__typeset === true"))


_WIDER = """
const col = document.querySelector('.skinmap-content');
const box = col.getBoundingClientRect();
function clipped(el) {  // inside a box that scrolls horizontally and itself fits the column
  for (let p = el.parentElement; p && p !== col; p = p.parentElement) {
    const ox = getComputedStyle(p).overflowX;
    if (ox === 'auto' || ox === 'scroll' || ox === 'hidden') return true;
  }
  return false;
}
const out = [];
for (const el of col.querySelectorAll('*')) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) continue;
  if ((r.right > box.right + 1 || r.left < box.left - 1) && !clipped(el)) {
    out.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className && el.className.baseVal === undefined ? '.' + String(el.className).split(' ').join('.') : '')
             + ' ' + Math.round(r.width) + 'px');
  }
}
return [Math.round(box.width), out.slice(0, 5), out.length];
"""


_FIGURES = """
const col = document.querySelector('.skinmap-content');
const out = [];
for (const img of col.querySelectorAll('img, svg:not(.MathJax svg)')) {
  if (img.closest('.provenance') || img.closest('.MathJax_Display, .MathJax, mjx-container')) continue;
  let fig = img.closest('figure');
  while (fig && fig.parentElement && fig.parentElement.closest('figure')) fig = fig.parentElement.closest('figure');
  const cap = fig ? Array.from(fig.children).find(c => c.tagName === 'FIGCAPTION') : null;
  out.push(cap ? cap.innerText.trim() : '');
}
return out;
"""


_TEXT = """
const base = location.href.slice(0, location.href.lastIndexOf('/') + 1);
const attrs = Array.from(document.body.querySelectorAll('[href],[src]'))
  .map(e => (e.getAttribute('href') || e.getAttribute('src') || '').slice(0, 300))
  .filter(v => !v.startsWith('data:'));
return (document.body.innerText + '\\n' + attrs.join('\\n')).split(base).join('');
"""


def _words(path: Path) -> set[str]:
    markup = re.sub(r'src="data:[^"]*"', "", path.read_text(encoding="utf-8"))
    markup = re.sub(r"<(script|style|details)\b.*?</\1>", " ", markup, flags=re.S)  # code is not prose
    return set(re.findall(r"\b[a-z]{6,}\b", re.sub(r"<[^>]+>", " ", markup).lower()))


_REPORTS: dict[str, dict] = {}


def _report(site: Path, driver, page: str) -> dict:
    """Everything the checks need from one page, read in one visit (pages are large)."""
    if page in _REPORTS:
        return _REPORTS[page]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(driver, site / page)
    report: dict = {}
    report["bad_cells"] = [e.text[:200] for e in driver.find_elements(
        By.CSS_SELECTOR, ".cell-output-stderr, .cell-output-error, .stderr, .output_error")]
    body = driver.find_element(By.TAG_NAME, "body").text
    report["traceback"] = "Traceback (most recent call last)" in body
    text = driver.execute_script(_TEXT)
    report["leaks"] = [text[max(0, m.start() - 60):m.end() + 40] for m in LEAK.finditer(text)]
    report["text"] = text
    report["width"], report["wider"], report["n_wider"] = driver.execute_script(_WIDER)
    report["captions"] = driver.execute_script(_FIGURES)
    content = driver.find_element(By.CSS_SELECTOR, ".skinmap-content").text
    report["unresolved"] = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".quarto-unresolved-ref")] + \
        re.findall(r".{0,30}\?\?.{0,10}|\?@[\w-]+", content)[:5]
    report["xref_targets"] = [a.get_attribute("href").split("#")[-1]
                              for a in driver.find_elements(By.CSS_SELECTOR, "a.quarto-xref")]
    # Search for a word found on the next page and nowhere on this one; follow the hit.
    other = PAGES[(PAGES.index(page) + 1) % len(PAGES)]
    candidates = sorted(_words(site / other) - _words(site / page), key=lambda w: (-len(w), w))
    report["search"] = (other, None, [])
    if candidates:
        word = candidates[0]
        driver.find_element(By.ID, "skinmap-search-input").send_keys(word)
        WebDriverWait(driver, 30, poll_frequency=0.2).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#skinmap-search-results li"))
        hits = [a.get_attribute("href") or "" for a in driver.find_elements(By.CSS_SELECTOR, "#skinmap-search-results a")]
        report["search"] = (other, word, [h.split("/")[-1] for h in hits])
    _REPORTS[page] = report
    return report


@pytest.mark.parametrize("page", PAGES)
def test_no_stderr_or_error_output(site, chromium, page):
    report = _report(site, chromium, page)
    assert not report["bad_cells"], f"{page}: {len(report['bad_cells'])} stderr/error output cell(s): {report['bad_cells'][:2]}"
    assert not report["traceback"], f"{page}: a traceback on the page"


@pytest.mark.parametrize("page", PAGES)
def test_no_build_machine_path(site, chromium, page):
    report = _report(site, chromium, page)
    leaks = report["leaks"] + [p for p in (os.fspath(ROOT), os.fspath(_run_dir() or "")) if p and p in report["text"]]
    assert not leaks, f"{page}: {len(leaks)} absolute path(s) or path repr(s), e.g. {leaks[:2]}"


@pytest.mark.parametrize("page", PAGES)
def test_nothing_wider_than_the_content_column(site, chromium, page):
    report = _report(site, chromium, page)
    assert report["n_wider"] == 0, \
        f"{page}: {report['n_wider']} element(s) wider than the {report['width']}px content column: {report['wider']}"


@pytest.mark.parametrize("page", PAGES)
def test_every_figure_has_a_numbered_caption(site, chromium, page):
    captions = _report(site, chromium, page)["captions"]
    missing = [i for i, c in enumerate(captions) if not re.match(r"^Figure \d+(\.\d+)?( \([a-z]\))?:", c)]
    assert not missing, f"{page}: {len(missing)} of {len(captions)} images without a numbered caption"


@pytest.mark.parametrize("page", PAGES)
def test_cross_references_resolved(site, chromium, page):
    report = _report(site, chromium, page)
    assert not report["unresolved"], f"{page}: unresolved cross-references {report['unresolved']}"
    assert all(report["xref_targets"]), f"{page}: a cross-reference without a target"


@pytest.mark.parametrize("page", PAGES)
def test_search_finds_a_word_of_another_page(site, chromium, page):
    other, word, hits = _report(site, chromium, page)["search"]
    assert word, f"{page}: no word of {other} that is absent here (test set-up)"
    assert any(h.startswith(other) for h in hits), f"{page}: searching {word!r} (on {other}) gave {hits[:5]}"
