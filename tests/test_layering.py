"""Layering of the library, checked on the source (imports and string literals, via ``ast``).

* ``data/``, ``embed/``, ``analysis/`` and ``viz/`` never import ``skinmap.book``;
* ``analysis/`` is pure: it imports neither ``skinmap.embed``, ``skinmap.viz`` nor ``skinmap.runs``;
* no run-directory file name registered in :mod:`skinmap.runs` is spelled as a string literal
  anywhere in ``lib/skinmap`` outside ``runs.py``, nor in a chapter's code cells.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from skinmap import runs

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib" / "skinmap"
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))

#: (module relative to lib/skinmap, file name) pairs that share a registered name without being
#: the run directory: the synthetic generator writes its own dataset-root layout
#: ``<root>/_synthetic/ground_truth.json``, which the catalog copies into ``data/``.
NOT_RUN_DIR = {("data/synthetic/atlas.py", "ground_truth.json")}


def _modules() -> list[Path]:
    return sorted(LIB.rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(LIB).as_posix()


def _imports(tree: ast.AST, module: str) -> set[str]:
    """Absolute names of every module imported anywhere in ``tree`` (function-level imports too)."""
    package = module.rsplit(".", 1)[0].split(".")
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def _module_name(path: Path) -> str:
    parts = ["skinmap", *path.relative_to(LIB).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _violations(forbidden: dict[str, tuple[str, ...]]) -> list[str]:
    found = []
    for path in _modules():
        rel = _rel(path)
        banned = next((b for prefix, b in forbidden.items() if rel.startswith(prefix)), None)
        if banned is None:
            continue
        for name in sorted(_imports(ast.parse(path.read_text(encoding="utf-8")), _module_name(path))):
            if any(name == b or name.startswith(b + ".") for b in banned):
                found.append(f"{rel} imports {name}")
    return found


def test_library_layers_do_not_import_the_book():
    book = ("skinmap.book",)
    found = _violations({"data/": book, "embed/": book, "analysis/": book, "viz/": book})
    assert not found, "\n".join(found)


def test_analysis_is_pure():
    found = _violations({"analysis/": ("skinmap.embed", "skinmap.viz", "skinmap.runs")})
    assert not found, "\n".join(found)


# ------------------------------------------------------------------------------------ file names


def _names(registry: dict[str, str]) -> set[str]:
    """Registered file names (last path component) with placeholders written ``{}``; names that
    are nothing but a placeholder and a suffix (``{member}.npy``) are too generic to look for."""
    names = set()
    for template in registry.values():
        name = re.sub(r"\{[^}]*\}", "{}", template.rsplit("/", 1)[-1])
        if "." in name and re.sub(r"\{\}", "", name.rsplit(".", 1)[0]):
            names.add(name)
    return names


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            for stmt in body:  # bare string statements: docstrings and comments, not paths
                if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                    ids.add(id(stmt.value))
    return ids


def _literals(source: str) -> list[str]:
    """Every string literal of ``source`` (f-strings with their fields written ``{}``)."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            out.append("".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values))
            skip.update(id(v) for v in node.values)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            out.append(node.value)
    return out


def _spelled(literals: list[str], names: set[str]) -> set[str]:
    return {name for text in literals for name in names
            if text == name or text.endswith("/" + name)}


def _code_cells(notebook: Path) -> str:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    # IPython magics and shell escapes are not Python
    return "\n".join(ln for cell in code for ln in cell.splitlines() if not ln.lstrip().startswith(("%", "!")))


def _library_spellings(registry: dict[str, str]) -> list[str]:
    names = _names(registry)
    found = []
    for path in _modules():
        rel = _rel(path)
        if rel == "runs.py":
            continue
        for name in sorted(_spelled(_literals(path.read_text(encoding="utf-8")), names)):
            if (rel, name) not in NOT_RUN_DIR:
                found.append(f"lib/skinmap/{rel} spells {name!r}")
    return found


def test_the_name_check_can_fail():
    """The literal scan finds the ways a path is spelled (plain, joined, f-string) and skips docstrings."""
    names = _names(runs.EXPORTS)
    assert {"catalog.parquet", "fused_ids.parquet", "{}_ids.parquet", "hole-{}-terms.parquet"} <= names
    assert "{}.npy" not in names
    source = ('"""Reads data/catalog.parquet."""\n'
              'a = run / "data" / "catalog.parquet"\n'
              'b = f"{run}/embedding/fused_ids.parquet"\n'
              'c = folder / f"{name}_ids.parquet"\n'
              'd = out / f"hole-{h.rank}-terms.parquet"\n'
              'e = "catalog.parquet is the catalog"\n')
    assert _spelled(_literals(source), names) == {"catalog.parquet", "fused_ids.parquet", "{}_ids.parquet",
                                                   "hole-{}-terms.parquet"}
    assert _spelled(_literals('"""data/catalog.parquet"""\n'), names) == set()


def test_no_export_file_name_outside_runs():
    found = _library_spellings(runs.EXPORTS)
    assert not found, "\n".join(found)


def test_no_run_bookkeeping_file_name_outside_runs():
    found = _library_spellings(runs.RUN_FILES)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapters_do_not_spell_run_directory_file_names(notebook):
    names = _names(runs.EXPORTS) | _names(runs.RUN_FILES)
    found = _spelled(_literals(_code_cells(notebook)), names)
    assert not found, f"{notebook.name} spells {sorted(found)}: use skinmap.runs"
