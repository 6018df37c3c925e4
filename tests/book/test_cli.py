"""The command line reruns one chapter with new parameters and reports bad ones clearly."""

import json

import pytest

from skinmap.cli import build_parser, main

from .toy_project import install_toy_schemas, write_toy_project


@pytest.fixture
def toy(tmp_path, monkeypatch):
    install_toy_schemas(monkeypatch)
    return write_toy_project(tmp_path)


def test_help_shows_how_to_rerun_a_chapter(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    assert "python -m skinmap run novelty -p k=20" in out
    assert "--params" in out


def test_bad_parameter_exits_2_naming_chapter_and_key(toy, capsys):
    code = main(["run", "alpha", "--project", str(toy), "-p", "n=0"])
    assert code == 2
    err = capsys.readouterr().err
    assert "chapter 'alpha': parameter 'n' = 0" in err


def test_run_one_chapter_with_overrides_and_param_file(toy, tmp_path, capsys):
    assert main(["run", "alpha", "--project", str(toy), "-p", "n=3"]) == 0
    overrides = tmp_path / "beta.yml"
    overrides.write_text("offset: 100\n")
    assert main(["run", "01-beta", "--project", str(toy), "--params", str(overrides)]) == 0
    total = json.loads((toy / "runs/demo/beta/total.json").read_text())["total"]
    assert total == 100 + (0 + 2 + 4)
    manifest = json.loads((toy / "runs/demo/manifest.json").read_text())
    assert {c["name"]: c["status"] for c in manifest["chapters"]}["index"] == "not run"
    assert "executed" in capsys.readouterr().out


def test_params_command_lists_ranges(toy, capsys):
    assert main(["params", "alpha", "--project", str(toy)]) == 0
    out = capsys.readouterr().out
    assert "n = 5" in out and "ge=1" in out
