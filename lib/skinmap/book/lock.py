"""One writer per run directory: an advisory lock file naming its holder.

The lock is an ``flock`` on ``<run_dir>/.book/lock``. The operating system releases it when its
holder dies however it dies (``SIGKILL`` included), so a stale lock never blocks: the next run
finds the file unlocked, reads who held it last (pid, command, start time, private kernel folder)
and cleans up after it. The file's text is what a second run shows the user::

    run directory runs/demo is in use by pid 4242 (python -m skinmap book) since 2026-01-02T10:00:00+00:00;
    wait for it to finish or pass --wait

The lock is re-entrant within a process (``build_book`` holds it while ``run_chapter`` takes it
again). A run directory the process cannot write (a read-only mount, another user's folder) is
entered *read-only*: cached chapters are still served, anything that must write says so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skinmap.book.errors import RunLocked

__all__ = ["RunLock", "RunLocked", "hold_run_lock", "LOCK_NAME"]

#: The lock file, relative to the runner's bookkeeping folder (``<run_dir>/.book``).
LOCK_NAME = "lock"

_READ_ONLY_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)


@dataclass
class RunLock:
    """The held lock of one run directory (see the module docstring).

    Attributes
    ----------
    path : Path
        The lock file.
    writable : bool
        False when the run directory could not be written (read-only mode: no lock, no writes).
    previous : dict
        What the last holder wrote into the lock file (empty for a fresh run directory); when
        ``previous_died`` its leftovers need cleaning.
    """

    path: Path
    writable: bool = True
    previous: dict[str, Any] = field(default_factory=dict)
    _fd: int | None = None
    _info: dict[str, Any] = field(default_factory=dict)

    @property
    def previous_died(self) -> bool:
        """Whether the last holder ended without releasing the lock (killed, crashed)."""
        # We hold the flock now, so the last holder is gone; "held" means it never released.
        return self.previous.get("state") == "held"

    def note(self, **facts: Any) -> None:
        """Record facts about the holder in the lock file (e.g. its private kernel folder)."""
        if self._fd is None:
            return
        self._info.update(facts)
        self._write(self._info)

    def _write(self, info: dict[str, Any]) -> None:
        data = (json.dumps(info, indent=1) + "\n").encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self._write({**self._info, "state": "released"})
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def _read_info(fd: int) -> dict[str, Any]:
    try:
        text = os.pread(fd, 1 << 16, 0).decode("utf-8", "replace")
        info = json.loads(text) if text.strip() else {}
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def _describe(run_dir: Path, info: dict[str, Any]) -> str:
    who = f"pid {info.get('pid', '?')}"
    if info.get("command"):
        who += f" ({info['command']})"
    if info.get("started_at"):
        who += f" since {info['started_at']}"
    return f"run directory {run_dir} is in use by {who}"


def _open_lock_file(path: Path) -> int | None:
    """The lock file's descriptor, or None when the run directory cannot be written.

    Besides opening the lock file for writing, a probe file is created and removed: a folder can
    refuse new entries while an old file in it is still writable (an immutable folder, ACLs).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        if exc.errno in _READ_ONLY_ERRNOS:
            return None
        raise
    probe = path.with_name(f".probe-{os.getpid()}")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666))
        os.unlink(probe)
    except OSError as exc:
        os.close(fd)
        if exc.errno in _READ_ONLY_ERRNOS:
            return None
        raise
    return fd


def _acquire(path: Path, run_dir: Path, wait: bool | float, log: Callable[[str], None]) -> RunLock:
    fd = _open_lock_file(path)
    if fd is None:
        return RunLock(path=path, writable=False)
    deadline = None if wait is True else time.monotonic() + float(wait or 0)
    announced = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = _read_info(fd)
            if deadline is not None and time.monotonic() >= deadline:
                os.close(fd)
                hint = "wait for it to finish or pass --wait" if not wait else "gave up waiting"
                raise RunLocked(f"{_describe(run_dir, holder)}; {hint}") from None
            if not announced:
                log(f"{_describe(run_dir, holder)}; waiting for it to finish")
                announced = True
            time.sleep(0.2)
    lock = RunLock(path=path, previous=_read_info(fd), _fd=fd)
    lock._info = {
        "pid": os.getpid(),
        "host": os.uname().nodename,
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python",
        "started_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "state": "held",
    }
    lock._write(lock._info)
    return lock


# Locks this process holds, by run directory, with their re-entry depth.
_HELD: dict[Path, list] = {}


@contextlib.contextmanager
def hold_run_lock(
    book_dir: Path,
    run_dir: Path,
    *,
    wait: bool | float = False,
    log: Callable[[str], None] = print,
    on_acquire: Callable[[RunLock], None] | None = None,
) -> Iterator[RunLock]:
    """Hold the lock of ``run_dir`` (file ``book_dir/lock``) for the ``with`` block.

    Parameters
    ----------
    book_dir, run_dir : Path
        Where the lock file lives, and the run directory named in messages.
    wait : bool or float
        False: raise :class:`RunLocked` at once when another process holds the lock; True: wait
        for it; a number: wait at most that many seconds.
    on_acquire : callable, optional
        Called with the fresh lock the first time this process takes it (recovery, clean-up).
    """
    key = Path(run_dir).resolve()
    held = _HELD.get(key)
    if held is not None:
        held[1] += 1
        try:
            yield held[0]
        finally:
            held[1] -= 1
        return
    lock = _acquire(Path(book_dir) / LOCK_NAME, key, wait, log)
    _HELD[key] = [lock, 1]
    try:
        if on_acquire is not None:
            on_acquire(lock)
        yield lock
    finally:
        del _HELD[key]
        lock.release()
