"""Contract: no number is typed in a chapter's Markdown (issue 17, "findings first").

Every result number in the book is computed by a code cell, so it stays true when the data change. A
digit in a Markdown cell is allowed only inside equations (``$...$``, ``$$...$$``), code (`` `...` ``
and fenced blocks), citations (``[@key]``), cross-references (``@fig-...``, ``@tbl-...``, ``@eq-...``,
``@sec-...``) and their labels (``{#eq-...}``), link targets, references to the paper's own numbering
("Eq. 18", "section 7", "Fig. 4b") and the names on :data:`ALLOWED_NAMES` (datasets, codes, models).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from skinmap.book.chapters import book_chapters

ROOT = Path(__file__).resolve().parents[2]

#: Names that contain digits but are not results (datasets, classification systems, models, metrics).
ALLOWED_NAMES: tuple[str, ...] = (
    "HAM10000", "ISIC 2016", "ISIC 2017", "ISIC 2018", "ISIC 2019", "ISIC 2020", "ISIC 2024",
    "ISIC2016", "ISIC2017", "ISIC2018", "ISIC2019", "ISIC2020", "ISIC2024", "PH2", "Fitzpatrick17k",
    "DermaMNIST", "PAD-UFES-20", "MED-NODE", "Derm1M", "Derm7pt", "CAN2000", "CAN5600", "ICD-10", "H0", "H1",
    "EfficientNet-Lite0", "efficientnet_lite0", "MiniLM-L6", "ViT-L/14", "ViT-B/16", "F1", "P@10", "precision@10",
    "l2", "L2", "2D", "2-D", "3D", "UTF-8", "UTF-16",
)
_PAPER_NUMBERING = re.compile(
    r"\b(?:Eqs?\.|eqs?\.|[Ee]quations?|[Ss]ections?|Sec\.|Secs\.|Figs?\.|Figures?|Tables?|Supp\.\s*(?:Table|Fig\.))"
    r"\s*[0-9]+[a-z]?(?:\s*(?:,|and|-)\s*[0-9]+[a-z]?)*"
)
_STRIP = [
    re.compile(r"^```.*?^```", re.S | re.M),          # fenced code blocks
    re.compile(r"\$\$.*?\$\$", re.S),                  # display equations
    re.compile(r"\$[^$\n]+\$"),                        # inline equations
    re.compile(r"`[^`\n]+`"),                          # code spans
    re.compile(r"\[[^\]]*@[^\]]*\]"),                  # citations [@key; @key2]
    re.compile(r"@(?:fig|tbl|eq|sec)-[\w-]+"),         # cross-references
    re.compile(r"\{#[\w-]+[^}]*\}"),                   # labels {#eq-...}
    re.compile(r"\]\([^)]*\)"),                        # link targets ](...)
    re.compile(r"<!--.*?-->", re.S),                   # HTML comments
]
_DIGITS = re.compile(r"[0-9]")


def markdown_digits(text: str) -> list[str]:
    """The lines of a Markdown cell that still hold a digit after removing everything allowed."""
    for pattern in _STRIP:
        text = pattern.sub(" ", text)
    text = _PAPER_NUMBERING.sub(" ", text)
    for name in sorted(ALLOWED_NAMES, key=len, reverse=True):
        text = re.sub(rf"(?<![\w]){re.escape(name)}(?![\w])", " ", text)
    return [line.strip() for line in text.splitlines() if _DIGITS.search(line)]


def _markdown_cells(notebook: Path) -> list[str]:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


# ---------------------------------------------------------------- the checker itself can fail


@pytest.mark.parametrize("typed", [
    "The FD between the two sets is 0.37.",
    "59 pairs, of which 58 are exact copies.",
    "as of (Nov 2026)",
    "FST V-VI make up 5.8% of the atlas",
    "a $x$ and then 3 more",
])
def test_planted_typed_number_is_found(typed):
    assert markdown_digits(f"Some prose.\n\n{typed}\n") != []


@pytest.mark.parametrize("allowed", [
    "the equation $\\rho_G = s_G / b_G$ and $$\\sum_{i=1}^{n} x_i$$ {#eq-demographics-share}",
    "run `python -m skinmap run novelty -p n_bootstrap=500`",
    "```bash\npython -m skinmap run novelty -p k=20\n```",
    "as in the paper [@skinmap2026; @abhishek2025critique] and @fig-holes-diagram, @tbl-claims-ledger",
    "HAM10000, ISIC 2018, PH2, Fitzpatrick17k, DermaMNIST, PAD-UFES-20, MED-NODE and ICD-10 codes; H0 vs H1",
    "the paper's Eq. 18, section 7, Fig. 4b and Supp. Table 7",
    "see the [ledger](11-claims.html)",
])
def test_allowed_digits_pass(allowed):
    assert markdown_digits(allowed) == []


def test_a_name_inside_a_number_is_not_allowed():
    # "PH2" is allowed as a name, not as the tail of a typed number such as "PH20.5"
    assert markdown_digits("PH20.5 of them") != []


# ---------------------------------------------------------------- every chapter of the book


@pytest.mark.parametrize("chapter", [c.notebook for c in book_chapters(ROOT)], ids=lambda p: Path(p).stem)
def test_no_number_typed_in_markdown(chapter):
    offending = [line for text in _markdown_cells(ROOT / chapter) for line in markdown_digits(text)]
    assert not offending, f"{chapter}: digits typed in Markdown (compute them in a code cell): {offending}"
