"""The journal of a chapter run in progress, and putting a chapter's folder right after a run.

Light on purpose (standard library only): the watchdog of a killed runner uses it the moment the
runner dies. The layout and the protocol are described in :mod:`skinmap.book.store`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

__all__ = ["BOOK_DIR", "read_journal", "write_journal", "settle"]

BOOK_DIR = ".book"
JOURNAL = "journal"
ASIDE = "aside"
STAGING = "staging"


def _book(run_dir: Path) -> Path:
    return Path(run_dir) / BOOK_DIR


def journal_path(run_dir: Path, key: str) -> Path:
    return _book(run_dir) / JOURNAL / f"{key}.json"


def aside_path(run_dir: Path, key: str, run_id: str) -> Path:
    """Where the chapter's previous folder waits while a new run of it is in progress."""
    return _book(run_dir) / ASIDE / f"{key}.{run_id}"


def staging_path(run_dir: Path, key: str, run_id: str, suffix: str = "") -> Path:
    return _book(run_dir) / STAGING / f"{key}.{run_id}{suffix}"


def write_journal(run_dir: Path, key: str, entry: dict[str, Any]) -> None:
    path = journal_path(run_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(entry), encoding="utf-8")
    os.replace(tmp, path)


def read_journal(run_dir: Path, key: str) -> dict[str, Any] | None:
    try:
        return json.loads(journal_path(run_dir, key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _committed_run_id(state_path: Path) -> str | None:
    try:
        return json.loads(Path(state_path).read_text(encoding="utf-8")).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None


def settle(run_dir: Path, key: str, state_path: Path) -> None:
    """Leave ``<run_dir>/<key>`` holding the chapter's committed run, whatever point a run of it
    reached (idempotent: safe to repeat after being interrupted itself).

    The journal names the run in progress. If the chapter's committed state (``state_path``)
    carries that run's id, the run was committed: its folder stays, the previous one is deleted.
    Otherwise the run is rolled back: its folder goes, the previous one (if any) comes back.
    """
    entry = read_journal(run_dir, key)
    if entry is None:
        return
    run_id, had_old = entry["run_id"], entry["had_old"]
    live, aside = Path(run_dir) / key, aside_path(run_dir, key, run_id)
    staged = staging_path(run_dir, key, run_id)
    rejected = staging_path(run_dir, key, run_id, ".rejected")
    if _committed_run_id(state_path) == run_id:
        shutil.rmtree(aside, ignore_errors=True)
    elif had_old:
        if aside.exists():  # the new folder was moved in (or was about to be): swap the old one back
            if live.exists():
                os.rename(live, rejected)
            os.rename(aside, live)
        # else: the old folder never left
    elif not staged.exists() and live.exists():  # a first run whose folder was moved in
        os.rename(live, rejected)
    shutil.rmtree(staged, ignore_errors=True)
    shutil.rmtree(rejected, ignore_errors=True)
    journal_path(run_dir, key).unlink(missing_ok=True)
