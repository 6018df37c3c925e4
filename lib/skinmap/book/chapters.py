"""The chapter list, read from ``_quarto.yml`` (the single source of truth for book order).

A chapter file ``chapters/NN-name.ipynb`` has the *key* ``name`` (``index.ipynb`` has ``index``);
keys name the parameter files (``params/<profile>/<key>.yml``), schema modules and output folders
(``runs/<profile>/<key>/``). Execution follows the declared data dependencies
(``DEPENDS_ON`` in each schema), keeping book order wherever the dependencies allow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = ["Chapter", "book_chapters", "chapter_key", "execution_order", "find_chapter"]

_KEY = re.compile(r"^(?:\d+-)?([a-z][a-z0-9_]*)$")


@dataclass(frozen=True)
class Chapter:
    """One chapter of the book: its key, notebook path (relative to the project) and position."""

    key: str
    notebook: Path
    position: int

    @property
    def stem(self) -> str:
        return self.notebook.stem


def chapter_key(notebook: str | Path) -> str:
    """``chapters/06-novelty.ipynb`` -> ``novelty``."""
    stem = Path(notebook).stem
    match = _KEY.match(stem)
    if not match:
        raise ValueError(
            f"chapter file {notebook!r} must be named NN-key.ipynb or key.ipynb with a "
            "lower-case key"
        )
    return match.group(1)


def _flatten(entries) -> list[str]:
    out: list[str] = []
    for entry in entries or []:
        if isinstance(entry, str):
            out.append(entry)
        elif isinstance(entry, dict) and "chapters" in entry:  # a "part" with its own chapters
            out.extend(_flatten(entry["chapters"]))
        elif isinstance(entry, dict) and "href" in entry:
            out.append(entry["href"])
        else:
            raise ValueError(f"unsupported entry in book.chapters of _quarto.yml: {entry!r}")
    return out


def book_chapters(project_root: str | Path) -> list[Chapter]:
    """The chapters listed under ``book: chapters:`` and then ``book: appendices:`` in ``_quarto.yml``, in order."""
    root = Path(project_root)
    config_path = root / "_quarto.yml"
    if not config_path.is_file():
        raise FileNotFoundError(f"no _quarto.yml in {root}")
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    if (config.get("project") or {}).get("type") != "book":
        raise ValueError("_quarto.yml must declare `project: type: book`")
    book = config.get("book") or {}
    files = _flatten(book.get("chapters")) + _flatten(book.get("appendices"))  # appendices come last
    if not files:
        raise ValueError("_quarto.yml lists no chapters under book.chapters")
    chapters, seen = [], set()
    for position, rel in enumerate(files):
        if not rel.endswith(".ipynb"):
            raise ValueError(f"chapter {rel!r} in _quarto.yml is not a notebook (.ipynb)")
        key = chapter_key(rel)
        if key in seen:
            raise ValueError(f"chapter key {key!r} appears twice in _quarto.yml")
        seen.add(key)
        chapters.append(Chapter(key=key, notebook=Path(rel), position=position))
    return chapters


def find_chapter(chapters: list[Chapter], name: str) -> Chapter:
    """Look a chapter up by key (``novelty``), stem (``06-novelty``) or file name."""
    wanted = Path(name).stem
    for chapter in chapters:
        if wanted in (chapter.key, chapter.stem):
            return chapter
    known = ", ".join(c.key for c in chapters)
    raise LookupError(f"no chapter named {name!r}; chapters in _quarto.yml: {known}")


def execution_order(chapters: list[Chapter], depends_on: dict[str, tuple[str, ...]]) -> list[Chapter]:
    """Topological order of ``chapters`` by ``depends_on``, earliest book position first.

    Raises ``ValueError`` naming the chapter for a dependency that is not in the book or a cycle.
    """
    by_key = {c.key: c for c in chapters}
    for key, deps in depends_on.items():
        for dep in deps:
            if dep not in by_key:
                raise ValueError(f"chapter '{key}' depends on '{dep}', which is not in _quarto.yml")
    remaining = {c.key: set(depends_on.get(c.key, ())) for c in chapters}
    order: list[Chapter] = []
    while remaining:
        ready = [k for k, deps in remaining.items() if not deps]
        if not ready:
            raise ValueError(f"chapter dependencies form a cycle among: {sorted(remaining)}")
        nxt = min(ready, key=lambda k: by_key[k].position)
        order.append(by_key[nxt])
        del remaining[nxt]
        for deps in remaining.values():
            deps.discard(nxt)
    return order
