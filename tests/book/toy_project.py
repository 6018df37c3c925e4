"""A tiny two-chapter book written into a temporary folder, for testing the runner and renderers."""

from __future__ import annotations

import sys
import textwrap
import types
from pathlib import Path

import nbformat as nbf
from pydantic import Field

from skinmap.book.schemas import ChapterParams

INJECTED = 'profile = "demo"\nrun_dir = "."\nfigures_dir = "."\nproject_root = "."\n'


def _schema(name: str, depends_on: tuple[str, ...], **fields) -> types.ModuleType:
    module = types.ModuleType(f"skinmap.book.schemas.{name}")
    annotations = {k: type(v[0]) for k, v in fields.items()}
    namespace = {"__annotations__": annotations, **{k: Field(v[0], **v[1]) for k, v in fields.items()}}
    module.Params = type("Params", (ChapterParams,), namespace)
    module.DEPENDS_ON = depends_on
    return module


def install_toy_schemas(monkeypatch, *, with_gamma: bool = False) -> None:
    """Register schema modules for the toy chapters ``alpha`` and ``beta`` (and ``gamma``), and a front
    page that reads nothing (the real preface reads every chapter of the real book)."""
    monkeypatch.setitem(sys.modules, "skinmap.book.schemas.index", _schema("index", ()))
    monkeypatch.setitem(sys.modules, "skinmap.book.schemas.alpha", _schema(
        "alpha", (), n=(5, {"ge": 1, "le": 1000}), scale=(2.0, {"gt": 0}), fail=(False, {}),
        fail_late=(False, {}), sleep=(0.0, {"ge": 0}),
    ))
    monkeypatch.setitem(sys.modules, "skinmap.book.schemas.beta", _schema("beta", ("alpha",), offset=(0, {})))
    if with_gamma:
        monkeypatch.setitem(sys.modules, "skinmap.book.schemas.gamma", _schema("gamma", ("beta",), factor=(1, {})))


def _notebook(title: str, params: str, body: list[str]) -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbf.v4.new_code_cell(INJECTED + params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbf.v4.new_markdown_cell(f"# {title}\n\nA toy chapter."), cell]
    nb.cells += [nbf.v4.new_code_cell(textwrap.dedent(src)) for src in body]
    return nb


def write_toy_project(root: Path, *, with_gamma: bool = False) -> Path:
    """The toy book in ``root``: ``index``, ``beta`` (reads alpha), ``alpha``; with ``with_gamma``
    a fourth chapter ``gamma`` reads beta (a chain of three, for staleness tests)."""
    (root / "chapters").mkdir(parents=True)
    (root / "_quarto.yml").write_text(
        textwrap.dedent(
            """\
            project:
              type: book
              output-dir: _book
            book:
              title: "Toy book"
              chapters:
                - chapters/index.ipynb
                - part: "Analyses"
                  chapters:
                    - chapters/01-beta.ipynb
                    - chapters/02-alpha.ipynb
            """
        )
        + ("    - chapters/03-gamma.ipynb\n" if with_gamma else "")
    )
    # beta comes first in the book but reads alpha's output: execution must reorder them.
    nbf.write(_notebook("Toy front page", "", ["print('front page')"]), root / "chapters/index.ipynb")
    nbf.write(
        _notebook(
            "Alpha values",
            "n = 5\nscale = 2.0\nfail = False\nfail_late = False\nsleep = 0.0\n",
            [
                """
                import time
                import numpy as np
                import matplotlib.pyplot as plt
                from ipykernel.connect import get_connection_file
                from skinmap.io import chapter_dir, write_npy
                from skinmap.viz.style import save_figure
                print("connection file:", get_connection_file())
                if fail:
                    raise RuntimeError("alpha was asked to fail")
                values = np.arange(n) * scale
                write_npy(values, chapter_dir(run_dir, "alpha") / "values.npy")
                time.sleep(sleep)
                fig, ax = plt.subplots()
                ax.plot(values)
                save_figure(fig, figures_dir, "alpha", "values")
                """,
                """
                if fail_late:
                    raise RuntimeError("alpha failed after writing its outputs")
                """,
            ],
        ),
        root / "chapters/02-alpha.ipynb",
    )
    nbf.write(
        _notebook(
            "Beta sum",
            "offset = 0\n",
            [
                """
                import numpy as np
                from pathlib import Path
                from skinmap.io import chapter_dir, write_json
                values = np.load(Path(run_dir) / "alpha" / "values.npy")
                write_json({"total": float(values.sum() + offset)}, chapter_dir(run_dir, "beta") / "total.json")
                """
            ],
        ),
        root / "chapters/01-beta.ipynb",
    )
    if with_gamma:
        nbf.write(
            _notebook(
                "Gamma",
                "factor = 1\n",
                [
                    """
                    import json
                    from pathlib import Path
                    from skinmap.io import chapter_dir, write_json
                    total = json.loads((Path(run_dir) / "beta" / "total.json").read_text())["total"]
                    write_json({"scaled": total * factor}, chapter_dir(run_dir, "gamma") / "scaled.json")
                    """
                ],
            ),
            root / "chapters/03-gamma.ipynb",
        )
    for profile in ("demo",):
        (root / "params" / profile).mkdir(parents=True)
        (root / "params" / profile / "index.yml").write_text("{}\n")
        (root / "params" / profile / "alpha.yml").write_text("n: 5\nscale: 2.0\n")
        (root / "params" / profile / "beta.yml").write_text("offset: 0\n")
        if with_gamma:
            (root / "params" / profile / "gamma.yml").write_text("factor: 1\n")
    return root
