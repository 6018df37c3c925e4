"""Every chapter of the real book honours the chapter contract.

For each notebook listed in _quarto.yml: it exists, has exactly one cell tagged `parameters`
whose names are the schema's fields plus the runner-injected names, carries no outputs in the
repository, and every profile's params file validates against its schema.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from skinmap.book.chapters import book_chapters, execution_order
from skinmap.book.params import load_params
from skinmap.book.schemas import RUNNER_INJECTED, load_schema_module

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = book_chapters(ROOT)
PROFILES = ("demo", "mini", "full")


def _assigned_names(source: str) -> set[str]:
    names = set()
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            if isinstance(target, ast.Name):
                names.add(target.id)
    return names


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.key)
def test_notebook_parameters_match_schema(chapter):
    path = ROOT / chapter.notebook
    assert path.is_file(), f"{chapter.notebook} is listed in _quarto.yml but missing"
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{chapter.notebook}: needs exactly one cell tagged 'parameters'"
    schema = load_schema_module(chapter.key)
    expected = set(schema.Params.model_fields) | set(RUNNER_INJECTED)
    assert _assigned_names(tagged[0].source) == expected
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.lstrip().startswith("# "), "first cell: '# Title'"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.key)
def test_committed_notebook_has_no_outputs(chapter):
    nb = nbformat.read(ROOT / chapter.notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{chapter.notebook} has stored outputs"


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.key)
def test_every_profile_params_file_validates(chapter, profile):
    load_params(ROOT, profile, chapter.key)


def test_schema_defaults_are_the_demo_values():
    """The notebook defaults and schema defaults describe the demo profile."""
    for chapter in CHAPTERS:
        defaults = load_schema_module(chapter.key).Params()
        demo = load_params(ROOT, "demo", chapter.key)
        differing = {k for k in demo.model_fields_set if getattr(demo, k) != getattr(defaults, k)}
        assert not differing, f"{chapter.key}: demo values differ from schema defaults for {sorted(differing)}"


def test_dependencies_exist_and_are_acyclic():
    deps = {c.key: tuple(getattr(load_schema_module(c.key), "DEPENDS_ON", ())) for c in CHAPTERS}
    order = [c.key for c in execution_order(CHAPTERS, deps)]
    # the preface's key findings read every chapter's exports and the claims ledger: it runs last (issue 17/21)
    assert order[-1] == "index" and set(order) == {c.key for c in CHAPTERS}
    assert order.index("claims") > max(order.index(d) for d in deps["claims"])


@pytest.mark.parametrize("profile", PROFILES)
def test_split_verifies_copies_with_the_quality_chapters_knobs(profile):
    """The evaluation split (embedding chapter) runs the quality chapter's copy rule before any training;
    its verify_* knobs and threshold repeat the quality chapter's (the split runs first and no schema reads
    another chapter's params), so they must be equal, or the two chapters would decide different pairs."""
    embedding = load_params(ROOT, profile, "embedding")
    quality = load_params(ROOT, profile, "quality")
    verify = sorted(k for k in type(embedding).model_fields if k.startswith("verify_"))
    assert verify == sorted(k for k in type(quality).model_fields if k.startswith("verify_") and k != "verify_pairs")
    differing = {k: (getattr(embedding, k), getattr(quality, k)) for k in verify if getattr(embedding, k) != getattr(quality, k)}
    assert not differing, f"{profile}: embedding.yml and quality.yml differ in {differing}"
    assert embedding.duplicate_verify_threshold == quality.default_threshold
