"""The provenance block never shows the build machine's directory layout (issue 17: clean pages)."""

from skinmap.book.provenance import input_label, provenance_markdown


def _entry(fingerprints):
    return {"library_versions": {"numpy": "2"}, "input_fingerprints": fingerprints, "project_version": "0.1",
            "git_commit": "abc", "profile": "mini", "params_hash": "0" * 64, "finished_at": "t", "run_seconds": 1.0}


def test_external_paths_keep_only_their_last_components():
    assert input_label("external:/home/someone/data/dermamnist/split_info.csv") == \
        "external:.../data/dermamnist/split_info.csv"
    assert input_label("external:/data/x.csv") == "external:data/x.csv"
    assert input_label("chapter:embedding") == "chapter:embedding"
    assert input_label("external:relative/a/b/c/d.csv") == "external:relative/a/b/c/d.csv"


def test_block_shows_no_absolute_path_but_every_fingerprint():
    block = provenance_markdown(_entry({"external:/work/shared/data/images/HAM10000/HAM10000_images": "f" * 64,
                                        "chapter:data": "e" * 64}))
    assert "/work/" not in block and "/shared/data" not in block
    assert "external:.../images/HAM10000/HAM10000_images" in block
    assert "ffffffffffff" in block and "eeeeeeeeeeee" in block
