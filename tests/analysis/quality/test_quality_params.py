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


def _bounds(field) -> dict[str, float]:
    """The numeric bounds pydantic enforces on a field, from its declaration."""
    out = {}
    for m in field.metadata:
        for name in ("gt", "ge", "lt", "le"):
            if getattr(m, name, None) is not None:
                out[name] = getattr(m, name)
    return out


def _outside(bound: str, limit: float, annotation) -> float:
    """The nearest value that violates the bound (for an int field, the next integer)."""
    step = 1 if annotation is int else 1e-6
    return {"ge": limit - step, "gt": limit, "le": limit + step, "lt": limit}[bound]


BOUNDED = [(name, bound, limit) for name, field in Params.model_fields.items()
           for bound, limit in _bounds(field).items()]


def test_every_numeric_field_declares_its_range():
    numeric = {name for name, f in Params.model_fields.items() if f.annotation in (int, float)}
    assert numeric - {name for name, _, _ in BOUNDED} == set()
    assert len(BOUNDED) >= 40


@pytest.mark.parametrize(("name", "bound", "limit"), BOUNDED, ids=[f"{n}-{b}" for n, b, _ in BOUNDED])
def test_every_bound_rejects_the_nearest_value_outside(name, bound, limit):
    value = _outside(bound, limit, Params.model_fields[name].annotation)
    with pytest.raises(ValidationError, match=name):
        Params(**{name: value})


def test_verification_fields_are_derived_from_the_library_config():
    import dataclasses

    from skinmap.analysis.quality.verification import CopyVerificationConfig

    config_fields = {f.name: f for f in dataclasses.fields(CopyVerificationConfig)}
    schema_fields = {k.removeprefix("verify_"): f for k, f in Params.model_fields.items() if k.startswith("verify_")}
    assert set(schema_fields) == set(config_fields) | {"pairs"}  # verify_pairs: the chapter's switch, not a knob
    defaults = CopyVerificationConfig()
    for name, f in config_fields.items():
        field = schema_fields[name]
        assert field.default == getattr(defaults, name), name
        assert field.annotation.__name__ == f.type, name
        assert field.description == f.metadata["description"], name
        assert _bounds(field) == dict(f.metadata["bounds"]), name  # declared once, by skinmap.config.knob
    # the chapter's config is the params' config
    assert CopyVerificationConfig.from_params(Params(verify_size=96, verify_blocks=3).model_dump()) == \
        CopyVerificationConfig(size=96, blocks=3)


def test_renamed_keys_point_to_fields():
    from skinmap.book.schemas import quality

    assert quality.RENAMED_KEYS == {"knn_k": "n_neighbors", "verify_candidates_k": "verify_n_candidates",
                                    "offtopic_k": "offtopic_n_neighbors"}
    for old, new in quality.RENAMED_KEYS.items():
        assert new in Params.model_fields and old not in Params.model_fields
    for profile in ("demo", "mini", "full"):
        data = yaml.safe_load((ROOT / "params" / profile / "quality.yml").read_text())
        assert not set(data) & set(quality.RENAMED_KEYS), profile  # the params files use the new names


@pytest.mark.parametrize(("low", "size"), [(224, 224), (300, 224), (512, 16)])
def test_resolution_low_must_be_below_the_size(low, size):
    with pytest.raises(ValidationError, match="resolution_low"):
        Params(resolution_low=low, resolution_size=size)
    assert Params(resolution_low=size - 1, resolution_size=size).resolution_low == size - 1


def test_cross_field_checks():
    with pytest.raises(ValidationError, match="mutual_top"):
        Params(mutual_top=21, n_neighbors=20)
    assert Params(mutual_top=20, n_neighbors=20).mutual_top == 20
    for bad in (1.5, 0.0, -0.1):
        with pytest.raises(ValidationError, match="thresholds must lie in"):
            Params(thresholds=[0.95, bad], default_threshold=0.95)
    with pytest.raises(ValidationError, match="verify_coarse_factor 3 must divide verify_size 64"):
        Params(verify_coarse_factor=3)
