"""Parameters are validated before execution, with errors naming chapter and key."""

import pytest

from skinmap.book.params import ParamsError, load_params, parse_overrides

from .toy_project import install_toy_schemas, write_toy_project


@pytest.fixture
def toy(tmp_path, monkeypatch):
    install_toy_schemas(monkeypatch)
    return write_toy_project(tmp_path)


def test_yaml_then_file_then_cli_overrides(toy, tmp_path):
    extra = tmp_path / "extra.yml"
    extra.write_text("n: 7\nscale: 3.5\n")
    params = load_params(toy, "demo", "alpha", override_file=extra, overrides={"n": 9})
    assert (params.n, params.scale) == (9, 3.5)


def test_override_values_are_parsed_as_yaml():
    assert parse_overrides(["k=20", "x=0.5", "names=[a, b]", "flag=true", "s=hello"]) == {
        "k": 20, "x": 0.5, "names": ["a", "b"], "flag": True, "s": "hello",
    }
    with pytest.raises(ParamsError, match="key=value"):
        parse_overrides(["nonsense"], "alpha")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"bogus": 1}, "chapter 'alpha': unknown parameter 'bogus'"),
        ({"n": "many"}, "chapter 'alpha': parameter 'n' = 'many'"),
        ({"n": 0}, "chapter 'alpha': parameter 'n' = 0: Input should be greater than or equal to 1"),
        ({"scale": -1.0}, "chapter 'alpha': parameter 'scale' = -1.0: Input should be greater than 0"),
        ({"run_dir": "/tmp"}, "parameter 'run_dir' is set by the runner"),
    ],
)
def test_bad_parameters_name_chapter_and_key(toy, overrides, message):
    with pytest.raises(ParamsError) as info:
        load_params(toy, "demo", "alpha", overrides=overrides)
    assert message in str(info.value)


def test_missing_params_file_and_unknown_chapter(toy):
    with pytest.raises(ParamsError, match="no parameter file .*params/mini/alpha.yml"):
        load_params(toy, "mini", "alpha")
    with pytest.raises(LookupError, match="chapter 'gamma' has no parameter schema"):
        load_params(toy, "demo", "gamma")


def test_params_file_must_be_a_mapping(toy):
    (toy / "params/demo/alpha.yml").write_text("- 1\n- 2\n")
    with pytest.raises(ParamsError, match="must hold a mapping"):
        load_params(toy, "demo", "alpha")


@pytest.mark.parametrize(
    ("overrides", "key"),
    [({"n": True}, "n"), ({"n": "20"}, "n"), ({"n": 2.5}, "n"), ({"fail": 1}, "fail"), ({"scale": "2"}, "scale"),
     ({"scale": False}, "scale")],
)
def test_types_are_strict_bool_is_not_int(toy, overrides, key):
    with pytest.raises(ParamsError, match=f"chapter 'alpha': parameter '{key}'"):
        load_params(toy, "demo", "alpha", overrides=overrides)


def test_yaml_ints_stay_valid_for_float_fields(toy):
    (toy / "params/demo/alpha.yml").write_text("n: 5\nscale: 3\n")
    params = load_params(toy, "demo", "alpha", overrides=parse_overrides(["n=7"]))
    assert params.scale == 3.0 and isinstance(params.scale, float) and params.n == 7


def test_a_non_utf8_params_file_names_file_and_chapter(toy):
    path = toy / "params/demo/alpha.yml"
    path.write_bytes("n: 5\nscale: 2.0\n# r\xe9glage\n".encode("latin-1"))
    with pytest.raises(ParamsError) as info:
        load_params(toy, "demo", "alpha")
    assert "chapter 'alpha'" in str(info.value) and str(path) in str(info.value) and "UTF-8" in str(info.value)


def test_profile_names_are_validated(toy):
    with pytest.raises(ParamsError, match="not a profile name"):
        load_params(toy, "../params/demo", "alpha")


def test_renamed_keys_keep_working_with_a_deprecation_message(toy, monkeypatch):
    import sys

    monkeypatch.setattr(sys.modules["skinmap.book.schemas.alpha"], "RENAMED_KEYS", {"count": "n"}, raising=False)
    with pytest.warns(FutureWarning, match="chapter 'alpha': parameter 'count' is deprecated; use 'n'"):
        assert load_params(toy, "demo", "alpha", overrides={"count": 7}).n == 7
    # The old name in the profile file, the new one on the command line: the command line wins.
    (toy / "params/demo/alpha.yml").write_text("count: 4\nscale: 2.0\n")
    with pytest.warns(FutureWarning):
        assert load_params(toy, "demo", "alpha").n == 4
        assert load_params(toy, "demo", "alpha", overrides={"n": 9}).n == 9
    (toy / "params/demo/alpha.yml").write_text("n: 5\nscale: 2.0\n")
    with pytest.raises(ParamsError, match="'count' \\(deprecated\\) and 'n' are both given"):
        load_params(toy, "demo", "alpha", overrides={"count": 1, "n": 2})
