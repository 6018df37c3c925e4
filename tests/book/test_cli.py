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


@pytest.mark.parametrize("command", ["book", "run", "render", "params", "atlas", "assess", "vectors"])
def test_every_command_has_help_with_a_description_and_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    usage, description, *_ = out.split("\n\n")
    assert usage.startswith(f"usage: python -m skinmap {command}")
    assert len(description.strip().splitlines()) == 1  # a one-line description
    examples = out.split("examples:\n", 1)[1]
    assert f"python -m skinmap {command}" in examples
    top = build_parser().format_help()
    assert command in top  # listed by `python -m skinmap --help`


def test_front_end_options_use_the_settled_names(capsys):
    with pytest.raises(SystemExit):
        main(["assess", "--help"])
    out = capsys.readouterr().out
    assert "--n-bootstrap" in out and "--n-neighbors" in out
    assert "--bootstrap-b" not in out  # still accepted, no longer advertised


@pytest.mark.parametrize("profile", ["../params/demo", "/tmp/x", "..", ".hidden", "a/b"])
def test_profile_names_are_validated_before_anything_runs(profile, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["assess", "cohort/", "--profile", profile])
    assert exit_.value.code == 2
    assert "invalid profile" in capsys.readouterr().err


# ---------------------------------------------------------------------------- issue 18: help, params, run


DOCSTRING_MARKUP = ("``", "::", ":func:", ":mod:", ":class:", ":data:")


@pytest.mark.parametrize("command", [None, "book", "run", "render", "params", "atlas", "assess", "vectors"])
def test_help_has_no_raw_docstring_markup_and_ends_with_examples(command, capsys):
    with pytest.raises(SystemExit):
        main(["--help"] if command is None else [command, "--help"])
    out = capsys.readouterr().out
    assert not [m for m in DOCSTRING_MARKUP if m in out], out
    assert "examples:\n" in out
    assert out.split("\n\n")[1].strip().count("\n") == 0  # the description is one line


def test_params_shows_the_allowed_values_of_text_settings(capsys):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    from skinmap.book.schemas import load_schema_module

    assert main(["params", "atlas", "--project", str(root)]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("match_on ="))
    import typing

    choices = typing.get_args(load_schema_module("atlas").Params.model_fields["match_on"].annotation)
    assert choices and all(repr(c) in line for c in choices) and "one of:" in line


def test_run_says_cached_once(toy, capsys):
    assert main(["run", "alpha", "--project", str(toy)]) == 0
    first = capsys.readouterr().out.splitlines()[0].split(";")[0]  # (paths after ';' hold the test's name)
    assert first.startswith("alpha: executed in ") and first.count("cached") == 0
    assert main(["run", "alpha", "--project", str(toy)]) == 0
    second = capsys.readouterr().out.splitlines()[0].split(";")[0]
    assert second == "alpha: cached"
