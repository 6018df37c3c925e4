"""Run the toy book in a child process, for the kill, lock and concurrency tests.

    python toy_child.py <project> cli <arguments of python -m skinmap ...>
    python toy_child.py <project> run <chapter> <overrides as JSON> [<kill at>]

``run`` re-executes one chapter (``force``). With ``<kill at>`` = N > 0 the process SIGKILLs itself
right before its N-th file-system change inside the run directory (create, link, rename, replace,
remove); with N = 0 it prints how many changes the run made (``MUTATIONS <n>``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import toy_project  # noqa: E402


class _Registry:
    """What ``install_toy_schemas`` needs of pytest's monkeypatch."""

    @staticmethod
    def setitem(mapping, key, value):
        mapping[key] = value


def _instrument(run_dir: str, kill_at: int) -> list[int]:
    count = [0]

    def step(paths) -> None:
        if any(isinstance(p, (str, os.PathLike)) and os.fspath(p).startswith(run_dir) for p in paths):
            count[0] += 1
            if count[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    def wrap(name: str, n_paths: int) -> None:
        original = getattr(os, name)

        def wrapped(*args, **kwargs):
            step(args[:n_paths])
            return original(*args, **kwargs)

        setattr(os, name, wrapped)

    for name, n_paths in (("replace", 2), ("rename", 2), ("symlink", 2), ("link", 2), ("unlink", 1),
                          ("rmdir", 1), ("mkdir", 1)):
        wrap(name, n_paths)
    original_open = os.open

    def opened(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            step([path])
        return original_open(path, flags, *args, **kwargs)

    os.open = opened
    return count


def main(argv: list[str]) -> int:
    project, mode, *rest = argv
    toy_project.install_toy_schemas(_Registry())
    if mode == "cli":
        from skinmap.cli import main as cli_main

        return cli_main([*rest, "--project", project])
    from skinmap.book.runner import BookContext, run_chapter

    chapter, overrides = rest[0], json.loads(rest[1])
    kill_at = int(rest[2]) if len(rest) > 2 else -1
    ctx = BookContext(project_root=Path(project), log=lambda _m: None)
    count = _instrument(os.fspath(ctx.run_dir), kill_at) if kill_at >= 0 else [0]
    entry = run_chapter(ctx, chapter, overrides=overrides, force=True)
    print(f"STATUS {entry['status']}")
    print(f"MUTATIONS {count[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
