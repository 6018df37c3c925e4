"""The embedding package has no import cycle and does not reach into the book machinery.

The graph is read from the source (every ``import`` statement, function-level ones included: a
lazy import that closes a cycle is still a cycle, it only fails later), so the check needs no
import of torch and names the modules of a cycle when it finds one.
"""

from __future__ import annotations

import ast
from pathlib import Path


LIB = Path(__file__).resolve().parents[2] / "lib"
PACKAGE = "skinmap.embed"


def _module_name(path: Path, lib: Path) -> str:
    parts = list(path.relative_to(lib).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(lib: Path) -> dict[str, Path]:
    return {_module_name(p, lib): p for p in (lib / "skinmap").rglob("*.py")}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` (a module or ``module.attribute``) starts with."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: strip the module's own name, then one package per extra dot
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {m for m in (_resolve(t, modules) for t in targets) if m is not None and m != module}
    return found


def import_graph(lib: Path = LIB) -> dict[str, set[str]]:
    """Module -> the project modules it imports, for every module under ``lib/skinmap``."""
    modules = _modules(lib)
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_planted_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}, "g": {"a"}}
    assert sorted(cycles(graph)) == [["a", "b", "c"], ["e", "f"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_graph_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "skinmap" / "embed"
    pkg.mkdir(parents=True)
    (tmp_path / "skinmap" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "one.py").write_text("def f():\n    from skinmap.embed import two\n")
    (pkg / "two.py").write_text("from .one import f\n")
    graph = import_graph(tmp_path)
    assert graph["skinmap.embed.one"] == {"skinmap.embed.two"}
    assert graph["skinmap.embed.two"] == {"skinmap.embed.one"}
    assert cycles(graph) == [["skinmap.embed.one", "skinmap.embed.two"]]


def test_no_import_cycle_through_the_embedding_package():
    graph = import_graph()
    assert any(m.startswith(PACKAGE + ".members.") for m in graph)  # the graph really covers embed/
    assert graph[PACKAGE + ".members.ibot"] >= {PACKAGE + ".members.dino", PACKAGE + ".members.base"}
    involved = [c for c in cycles(graph) if any(m == PACKAGE or m.startswith(PACKAGE + ".") for m in c)]
    assert involved == [], f"import cycles: {involved}"


def test_embed_does_not_import_the_book_machinery():
    # (embed may use analysis' array helpers: analysis never imports embed, so no cycle can form)
    forbidden = "skinmap.book"
    graph = import_graph()
    offenders = {m: sorted(t for t in targets if t == forbidden or t.startswith(forbidden + "."))
                 for m, targets in graph.items() if m == PACKAGE or m.startswith(PACKAGE + ".")}
    assert {m: t for m, t in offenders.items() if t} == {}
