"""Chapter kernels keep warnings and progress bars off the page: they go to the build log.

A notebook that warns (as Lightning does), logs a tqdm.auto bar (a widget in a plain kernel) and
prints a result is executed the way the runner executes chapters; its stored outputs must hold
the result only, and the build log (the kernel's own stderr) the warning and the bar.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import nbformat
from nbformat.v4 import new_code_cell, new_notebook


def test_warnings_and_progress_bars_go_to_the_build_log(tmp_path, capfd):
    import papermill as pm

    from skinmap.book.runner import _ipc_kernel_manager

    source, executed = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(new_notebook(cells=[
        new_code_cell("import warnings\nwarnings.warn('FutureWarning-like noise from a library', DeprecationWarning)\n"
                      "warnings.warn('a user warning', UserWarning)"),
        new_code_cell("from tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc='progress-bar-marker'):\n    pass"),
        new_code_cell("print('the result', 6 * 7)"),
    ]), os.fspath(source))
    kernel_dir = tempfile.mkdtemp(prefix="skinmap-kernel-test-")  # short: IPC socket paths are limited
    try:
        pm.execute_notebook(os.fspath(source), os.fspath(executed), kernel_name="python3", progress_bar=False,
                            log_output=False, cwd=os.fspath(tmp_path),
                            kernel_manager_class=_ipc_kernel_manager(kernel_dir))
    finally:
        shutil.rmtree(kernel_dir, ignore_errors=True)
    nb = nbformat.read(os.fspath(executed), as_version=4)
    outputs = [o for cell in nb.cells for o in cell.get("outputs", [])]
    assert [(o["output_type"], o.get("name"), o.get("text")) for o in outputs] == [
        ("stream", "stdout", "the result 42\n")]
    log = capfd.readouterr().err
    assert "a user warning" in log and "progress-bar-marker" in log
