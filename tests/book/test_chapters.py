"""Chapter order comes from _quarto.yml; execution order respects declared dependencies."""

from pathlib import Path

import pytest

from skinmap.book.chapters import Chapter, book_chapters, chapter_key, execution_order, find_chapter

from .toy_project import write_toy_project


def test_order_follows_quarto_yml_including_parts(tmp_path):
    root = write_toy_project(tmp_path)
    chapters = book_chapters(root)
    assert [c.key for c in chapters] == ["index", "beta", "alpha"]
    assert [c.position for c in chapters] == [0, 1, 2]
    assert chapters[1].notebook == Path("chapters/01-beta.ipynb")


def test_chapter_key_strips_number_and_rejects_bad_names():
    assert chapter_key("chapters/06-novelty.ipynb") == "novelty"
    assert chapter_key("index.ipynb") == "index"
    with pytest.raises(ValueError, match="NN-key"):
        chapter_key("chapters/06 Novelty.ipynb")


def _chapters(*keys):
    return [Chapter(k, Path(f"{i:02d}-{k}.ipynb"), i) for i, k in enumerate(keys)]


def test_execution_order_moves_dependencies_forward_but_keeps_book_order_otherwise():
    chapters = _chapters("index", "data", "quality", "embedding", "novelty")
    deps = {"quality": ("data", "embedding"), "embedding": ("data",), "novelty": ("embedding",)}
    order = [c.key for c in execution_order(chapters, deps)]
    assert order == ["index", "data", "embedding", "quality", "novelty"]


def test_execution_order_errors_name_the_problem():
    chapters = _chapters("a", "b")
    with pytest.raises(ValueError, match="'a' depends on 'zzz'"):
        execution_order(chapters, {"a": ("zzz",)})
    with pytest.raises(ValueError, match="cycle"):
        execution_order(chapters, {"a": ("b",), "b": ("a",)})


def test_find_chapter_by_key_or_stem(tmp_path):
    chapters = book_chapters(write_toy_project(tmp_path))
    assert find_chapter(chapters, "01-beta").key == "beta"
    assert find_chapter(chapters, "alpha").key == "alpha"
    with pytest.raises(LookupError, match="index, beta, alpha"):
        find_chapter(chapters, "gamma")


def test_quarto_yml_must_be_a_book(tmp_path):
    (tmp_path / "_quarto.yml").write_text("project:\n  type: website\n")
    with pytest.raises(ValueError, match="type: book"):
        book_chapters(tmp_path)
