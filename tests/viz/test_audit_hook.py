"""In a notebook kernel, ``set_style()`` audits every displayed figure and writes the audit where
``SKINMAP_FIGURE_AUDIT`` points (the build log), naming the cell by its ``#| label:``."""

import json
import os

import nbformat
import pytest
from nbclient import NotebookClient

from skinmap.viz.style import AUDIT_ENV

CELLS = [
    "import matplotlib.pyplot as plt\nfrom skinmap.viz.style import set_style, legend_outside\nset_style()",
    # a bad figure: legend on top of the data
    "#| label: fig-bad\nimport numpy as np\nfig, ax = plt.subplots(figsize=(6, 4))\n"
    "xy = np.random.default_rng(0).uniform(size=(2000, 2))\nax.scatter(*xy.T, s=3, label='cloud')\n"
    "ax.legend(loc='center')\nax.set_title('bad')",
    # a good figure, shown mid-cell with plt.show()
    "#| label: fig-good\nfig, ax = plt.subplots(figsize=(6, 4))\nax.plot([0, 1], [0, 1], label='line')\n"
    "legend_outside(ax)\nax.set_title('good')\nplt.show()",
    "from skinmap.viz.style import audit_records\nprint(len(audit_records()))",
]


@pytest.mark.slow
def test_displayed_figures_are_audited_into_the_log(tmp_path, monkeypatch):
    log = tmp_path / "logs" / "figure-audit.jsonl"
    monkeypatch.setenv(AUDIT_ENV, str(log))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["cell"] for r in rows] == ["fig-bad", "fig-good"]  # each figure audited once
    bad, good = rows
    assert bad["figure"] == "bad" and any("covers data" in v for v in bad["violations"])
    assert good["violations"] == []
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert printed.strip() == str(len(bad["violations"]))
    # the figures are still displayed as images (the audit wraps, never replaces, the formatter)
    assert any("image/png" in o.get("data", {}) for o in nb.cells[1].outputs)
    assert os.path.getsize(log) > 0
