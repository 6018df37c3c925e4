"""The chapter's parameter schema, its params files and the notebook's parameters cell agree."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from skinmap.book.schemas import RUNNER_INJECTED
from skinmap.book.schemas.quality import DEPENDS_ON, Params, external_inputs

ROOT = Path(__file__).resolve().parents[3]


def test_parameters_cell_names_equal_schema_fields():
    nb = json.loads((ROOT / "chapters" / "02-quality.ipynb").read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1
    tree = ast.parse("".join(cells[0]["source"]))
    names = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}
    assert names == set(Params.model_fields) | set(RUNNER_INJECTED)
    assert all(c.get("outputs", []) == [] for c in nb["cells"] if c["cell_type"] == "code")
    # the cell's values are the schema defaults
    values = {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}
    for key, field in Params.model_fields.items():
        assert Params(**{key: values[key]}).model_dump()[key] == Params().model_dump()[key], key


@pytest.mark.parametrize("profile", ["demo", "mini", "full"])
def test_params_files_validate(profile):
    data = yaml.safe_load((ROOT / "params" / profile / "quality.yml").read_text())
    params = Params(**data)
    assert params.default_threshold in params.thresholds
    for path in external_inputs(params, ROOT):
        assert path.is_absolute()


def test_schema_rejects_bad_values():
    assert DEPENDS_ON == ("data", "embedding")
    with pytest.raises(ValidationError, match="default_threshold"):
        Params(thresholds=[0.95], default_threshold=0.9)
    with pytest.raises(ValidationError):
        Params(unknown_knob=1)
    with pytest.raises(ValidationError, match="split_fractions"):
        Params(split_fractions=(0.75, 0.05, 0.2))
    with pytest.raises(ValidationError):
        Params(probe_features="resnet")
    with pytest.raises(ValidationError, match="mirror_invariant"):
        Params(embedding_source="pixels")
    assert Params(embedding_source="pixels", mirror_invariant=False, whiten_dims=0).whiten_dims == 0


def test_verification_knobs_checked_together():
    with pytest.raises(ValidationError, match="verify_coarse_factor"):
        Params(verify_size=66, verify_coarse_factor=4)
    with pytest.raises(ValidationError, match="verify_blocks"):
        Params(verify_size=16, verify_blocks=16)
    with pytest.raises(ValidationError, match="verify_ratio"):
        Params(verify_ratio=1.5)
    assert Params(verify_size=66, verify_coarse_factor=2, verify_blocks=3).verify_blocks == 3
