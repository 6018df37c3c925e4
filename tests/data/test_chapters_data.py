"""The data and demographics chapters follow the notebook contract (CONVENTIONS)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import nbformat
import pytest
import yaml

from skinmap.book.schemas import RUNNER_INJECTED

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = {"data": "01-data.ipynb", "demographics": "05-demographics.ipynb"}


@pytest.mark.parametrize("key", sorted(CHAPTERS))
def test_parameters_cell_matches_schema_and_no_outputs(key):
    nb = nbformat.read(ROOT / "chapters" / CHAPTERS[key], as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    names = {t.id for node in ast.parse(tagged[0].source).body for t in node.targets}
    schema = importlib.import_module(f"skinmap.book.schemas.{key}")
    assert names == set(schema.Params.model_fields) | set(RUNNER_INJECTED)
    defaults = schema.Params()
    namespace: dict = {}
    exec(tagged[0].source, namespace)  # noqa: S102 - our own literal assignments
    for field in schema.Params.model_fields:
        assert namespace[field] == getattr(defaults, field), field
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


@pytest.mark.parametrize("key", sorted(CHAPTERS))
@pytest.mark.parametrize("profile", ["demo", "mini", "full"])
def test_profile_params_validate(key, profile):
    schema = importlib.import_module(f"skinmap.book.schemas.{key}")
    data = yaml.safe_load((ROOT / "params" / profile / f"{key}.yml").read_text()) or {}
    schema.Params(**data)


def test_demographics_depends_on_data_and_imputation():
    schema = importlib.import_module("skinmap.book.schemas.demographics")
    assert schema.DEPENDS_ON == ("data", "imputation")
