"""Put a running chapter's folder back if its runner dies.

While a chapter runs, ``<run_dir>/<key>`` holds its new, half-written folder and the previous one
waits aside (see :mod:`skinmap.book.store`). The runner starts this watchdog as a separate process (its own session,
so a signal to the runner's process group spares it) holding the read end of a pipe. When the
runner finishes the chapter it writes ``done``; if instead the pipe closes without it (the runner
was killed, even by ``SIGKILL``), the watchdog settles the folder within milliseconds
(:func:`skinmap.book.journal.settle`: the previous folder comes back unless the new run was already
committed), then removes the run's private kernel folder once the kernel, which polls its parent,
has exited.

Usage (by the runner only):
``python -m skinmap.book.watchdog <fd> <run_dir> <key> <state file> <kernel_dir>``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["Watchdog"]

_DONE = b"done"


class Watchdog:
    """The runner's side: start the watchdog of chapter ``key``; :meth:`done` when the run ended."""

    def __init__(self, run_dir: Path, key: str, state_path: Path, kernel_dir: str | None):
        read_fd, self._write_fd = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "skinmap.book.watchdog", str(read_fd), os.fspath(run_dir), key,
                 os.fspath(state_path), kernel_dir or ""],
                pass_fds=(read_fd,), start_new_session=True, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        finally:
            os.close(read_fd)

    def done(self) -> None:
        """The chapter's folder is back in place: let the watchdog go."""
        if self._write_fd is None:
            return
        try:
            os.write(self._write_fd, _DONE)
        finally:
            os.close(self._write_fd)
            self._write_fd = None
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - it exits as soon as it reads
            self._proc.kill()


def _watch(fd: int, run_dir: Path, key: str, state_path: Path, kernel_dir: str) -> int:
    received = b""
    while chunk := os.read(fd, 64):
        received += chunk
    if received.endswith(_DONE):
        return 0
    from skinmap.book.journal import settle

    settle(run_dir, key, state_path)
    if kernel_dir and Path(kernel_dir).is_dir():
        time.sleep(3.0)  # the orphaned kernel notices its parent is gone within a second
        shutil.rmtree(kernel_dir, ignore_errors=True)
    return 1


if __name__ == "__main__":
    fd_arg, run_dir_arg, key_arg, state_arg, kernel_arg = sys.argv[1:6]
    sys.exit(_watch(int(fd_arg), Path(run_dir_arg), key_arg, Path(state_arg), kernel_arg))
