"""The run directory as a sequence of atomic commits.

Readers (later chapters, the atlas app, ``assess``, the renderer, users) see the familiar layout.
Chapter folders are ordinary folders; the bookkeeping is switched as a whole::

    runs/<profile>/
      <key>/                 the chapter's outputs (a real folder)
      <key>/<cache>    ->    .book/caches/<key>/<cache>   (``cache/``, ``app_cache/``, any ``*_cache/``)
      _state         -> .book/current/_state
      notebooks      -> .book/current/notebooks
      manifest.json  -> .book/current/manifest.json
      .book/
        lock                 the writer's pid, command and start time (see :mod:`skinmap.book.lock`)
        current  -> generations/<g>      THE commit point
        generations/<g>/     one committed snapshot of the bookkeeping:
          _state/<key>.json            each chapter's state; ``run_id`` names the run whose
                                       folder ``<key>/`` is
          notebooks/<stem>[.failed].ipynb
          manifest.json
        journal/<key>.json   the run of ``<key>`` in progress: its id, whether a previous folder exists
        aside/<key>.<id>/    the previous folder of ``<key>`` while run ``<id>`` is in progress
        staging/             the new folder before it is moved in, the executed notebook, figures
        caches/<key>/<cache>/  reusable work, shared by every run and the atlas app
        file_hashes.json     memo of file hashes (a cache)

A chapter run (:meth:`RunStore.begin`) writes its journal, moves the chapter's folder aside and moves
a fresh folder (cache links only) into its place, so the notebook writes, and records paths, exactly
where they will stay; the run lock keeps every other writer and every other chapter out meanwhile.
When the notebook succeeds, :meth:`RunStore.commit` builds the next generation (hard links to the
unchanged files of the current one, plus the new state, carrying the run's id, the executed notebook
and the manifest) and switches ``current`` to it with one :func:`os.replace` of a symbolic link: the
commit point. Then :meth:`RunStore.end` settles the folder (:func:`skinmap.book.journal.settle`): the
state carries the run's id, so the previous folder is deleted. A failure commits only the state's
``last_failure`` and the failed notebook; settling then finds the old id in the state and moves the
previous folder back. If the runner is killed at any moment, its watchdog (:mod:`skinmap.book.watchdog`)
settles the folder at once, and the next run settles every chapter again under the lock before
anything else: outputs, state and manifest always describe one run. Anything the current generation
and the journals do not reference is a leftover; :meth:`RunStore.gc` removes it under the lock.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from skinmap.book.journal import (
    ASIDE,
    BOOK_DIR,
    JOURNAL,
    STAGING,
    aside_path,
    read_journal,
    settle,
    staging_path,
    write_journal,
)
from skinmap.io import write_json
from skinmap.runs import RUN_FILES

__all__ = ["RunStore", "Stage", "BOOK_DIR", "is_cache_name"]

_CURRENT = "current"
_GENERATIONS = "generations"
_CACHES = "caches"
_LEGACY_VERSIONS = "versions"  # an earlier layout of this module (chapter folders were links)
# The reader-facing bookkeeping entries of a generation, named once in skinmap.runs: the state
# folder, the notebooks folder, the manifest; and the file-hash memo's name.
_STATE = PurePosixPath(RUN_FILES["state"]).parent.as_posix()
_NOTEBOOKS = PurePosixPath(RUN_FILES["notebook"]).parent.as_posix()
_MANIFEST = RUN_FILES["manifest"]
_MEMO = PurePosixPath(RUN_FILES["file_hashes"]).name
_BOOKKEEPING = (_STATE, _NOTEBOOKS, _MANIFEST)


def is_cache_name(name: str) -> bool:
    """A top-level folder of a chapter named ``cache`` or ``*_cache`` holds reusable work, not
    outputs: it is kept across runs, never fingerprinted, never cleaned."""
    return name == "cache" or name.endswith("_cache")


def _new_id() -> str:
    # Sortable by creation time, unique across processes.
    return f"{time.time_ns():x}-{secrets.token_hex(3)}"


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _replace_with_symlink(path: Path, target: str) -> None:
    """Point ``path`` at ``target`` atomically (a temporary link moved over it)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.link")
    os.symlink(target, tmp)
    os.replace(tmp, path)


def _clone(src: Path, dst: Path) -> None:
    """Copy a generation: files hard-linked (a generation never changes a file in place)."""
    dst.mkdir(parents=True)
    for entry in os.scandir(src):
        s, d = Path(entry.path), dst / entry.name
        if entry.is_symlink():
            continue  # chapter links of the earlier layout
        if entry.is_dir():
            _clone(s, d)
        else:
            _link_or_copy(s, d)


def _merge_into(src: Path, dst: Path) -> None:
    """Move the files of folder ``src`` into ``dst`` where ``dst`` lacks them, then drop ``src``."""
    for path in sorted(src.rglob("*")):
        target = dst / path.relative_to(src)
        if path.is_file() and not path.is_symlink() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    shutil.rmtree(src, ignore_errors=True)


@dataclass(frozen=True)
class Stage:
    """A chapter run in progress.

    Attributes
    ----------
    key, run_id : str
        The chapter and the run's id (recorded in the state when the run is committed).
    folder : Path
        The chapter's folder (``<run_dir>/<key>``), fresh for this run.
    run_dir : Path
        The run directory to hand to the notebook.
    notebook : Path
        Where the executed notebook is written.
    figures : Path
        The figures folder to hand to the notebook (copied out on commit).
    """

    key: str
    run_id: str
    folder: Path
    run_dir: Path
    notebook: Path
    figures: Path


class RunStore:
    """Transactional outputs of one run directory (see the module docstring).

    Reading needs no lock and works on any layout through the reader-facing paths. Every method
    that writes must be called while holding the run lock (:func:`skinmap.book.lock.hold_run_lock`).

    Parameters
    ----------
    run_dir : Path
        The run directory.
    keys : iterable of str
        The book's chapter keys.
    declared_caches : mapping of str to iterable of str, optional
        Cache folder names per chapter known in advance (linked before the chapter first runs, so
        that a killed first run keeps the work it cached).
    """

    def __init__(self, run_dir: Path, keys: Iterable[str],
                 declared_caches: Mapping[str, Iterable[str]] | None = None):
        self.run_dir = Path(run_dir)
        self.keys = list(keys)
        self.book_dir = self.run_dir / BOOK_DIR
        self.declared_caches = {k: tuple(v) for k, v in (declared_caches or {}).items()}

    # ------------------------------------------------------------------------------ reading

    def current(self) -> Path | None:
        """The current generation folder, or None before the first commit."""
        link = self.book_dir / _CURRENT
        if not link.is_symlink():
            return None
        target = self.book_dir / os.readlink(link)
        return target if target.is_dir() else None

    def memo_path(self) -> Path:
        return self.book_dir / _MEMO

    def state_path(self, key: str) -> Path:
        """The committed state file of ``key`` (through ``current``: follows every commit)."""
        return self.book_dir / _CURRENT / RUN_FILES["state"].format(chapter=key)

    # ------------------------------------------------------------------------------ writing

    def prepare(self) -> None:
        """Bring the run directory to a clean committed state (called once per lock holder).

        Settles every chapter a killed run left half-way, adopts a run directory written before
        generations existed, and removes leftovers.
        """
        for name in (_GENERATIONS, _CACHES, STAGING, ASIDE, JOURNAL):
            (self.book_dir / name).mkdir(parents=True, exist_ok=True)
        self._adopt_linked_folders()
        if any((self.run_dir / n).exists() and not (self.run_dir / n).is_symlink() for n in _BOOKKEEPING):
            self._adopt_legacy()
        for key in self.keys:
            settle(self.run_dir, key, self.state_path(key))
        self.gc()

    def begin(self, key: str) -> Stage:
        """Move the chapter's folder aside and a fresh one (cache links only) into its place."""
        run_id = _new_id()
        live = self.run_dir / key
        had_old = live.is_dir()
        if had_old:
            self._adopt_caches(key, live)
        fresh = staging_path(self.run_dir, key, run_id)
        fresh.mkdir(parents=True)
        for name in self.declared_caches.get(key, ()):
            (self.book_dir / _CACHES / key / name).mkdir(parents=True, exist_ok=True)
        cache_root = self.book_dir / _CACHES / key
        if cache_root.is_dir():
            for cache in sorted(cache_root.iterdir()):
                os.symlink(f"../{BOOK_DIR}/{_CACHES}/{key}/{cache.name}", fresh / cache.name)
        figures = staging_path(self.run_dir, key, run_id, ".figures")
        figures.mkdir()
        write_journal(self.run_dir, key, {"run_id": run_id, "had_old": had_old})
        if had_old:
            os.rename(live, aside_path(self.run_dir, key, run_id))
        os.rename(fresh, live)
        return Stage(key=key, run_id=run_id, folder=live, run_dir=self.run_dir,
                     notebook=staging_path(self.run_dir, key, run_id, ".ipynb"), figures=figures)

    def end(self, stage: Stage) -> None:
        """Leave the chapter's folder holding its committed run (the new one, or the old one back)."""
        settle(self.run_dir, stage.key, self.state_path(stage.key))

    def settle_caches(self, stage: Stage) -> None:
        """Move cache folders the run created inside its folder out to the shared caches."""
        self._adopt_caches(stage.key, stage.folder)

    def commit(
        self,
        *,
        manifest: Callable[[Path], dict[str, Any]],
        states: Mapping[str, Mapping[str, Any]] | None = None,
        notebooks: Mapping[str, Path | None] | None = None,
    ) -> Path:
        """Build the next generation and make it current in one atomic step.

        Parameters
        ----------
        manifest : callable
            ``manifest(generation_folder) -> dict``, computed from the new generation's states.
        states : mapping, optional
            ``{key: state}`` to write.
        notebooks : mapping, optional
            ``{file name: source}`` to place under ``notebooks/`` (``None`` removes the file).

        Returns
        -------
        Path
            The new generation folder.
        """
        gen = self._next_generation()
        for key, state in (states or {}).items():
            write_json(dict(state), gen / RUN_FILES["state"].format(chapter=key))
        for name, source in (notebooks or {}).items():
            target = gen / _NOTEBOOKS / name
            if target.exists() or target.is_symlink():
                target.unlink()
            if source is not None:
                _link_or_copy(source, target)
        write_json(manifest(gen), gen / _MANIFEST)
        self._ensure_reader_links()
        _replace_with_symlink(self.book_dir / _CURRENT, f"{_GENERATIONS}/{gen.name}")  # the commit
        return gen

    def publish_figures(self, stage: Stage, figures_dir: Path) -> None:
        """Move the figures the run saved into ``figures_dir`` (file by file, atomically)."""
        if not stage.figures.is_dir():
            return
        figures_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(stage.figures.iterdir()):
            target = figures_dir / path.name
            tmp = figures_dir / f".{path.name}.{secrets.token_hex(4)}.tmp"
            _link_or_copy(path, tmp)
            os.replace(tmp, target)

    def gc(self) -> None:
        """Remove everything the current generation and the journals do not reference."""
        current = self.current()
        in_progress = {k for k in self.keys if read_journal(self.run_dir, k) is not None}
        if current is not None:
            for entry in (self.book_dir / _GENERATIONS).iterdir():
                if entry.name != current.name:
                    shutil.rmtree(entry)
        for folder in (STAGING, ASIDE):
            for entry in (self.book_dir / folder).iterdir():
                if entry.name.partition(".")[0] in in_progress:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        shutil.rmtree(self.book_dir / _LEGACY_VERSIONS, ignore_errors=True)
        for base in (self.book_dir, self.run_dir):  # half-made links and temporary files of killed writers
            for entry in base.iterdir():
                name = entry.name
                if name.startswith(".") and (name.endswith(".link") or ".tmp" in name or name.startswith(".probe-")):
                    entry.unlink()

    # ------------------------------------------------------------------------------ helpers

    def _ensure_reader_links(self) -> None:
        for name in _BOOKKEEPING:
            top = self.run_dir / name
            want = f"{BOOK_DIR}/{_CURRENT}/{name}"
            if not (top.is_symlink() and os.readlink(top) == want):
                _replace_with_symlink(top, want)

    def _adopt_caches(self, key: str, folder: Path) -> None:
        """Move real cache folders inside ``folder`` to ``caches/<key>/`` and link them back."""
        if not folder.is_dir():
            return
        for entry in sorted(folder.iterdir()):
            if not is_cache_name(entry.name) or entry.is_symlink() or not entry.is_dir():
                continue
            shared = self.book_dir / _CACHES / key / entry.name
            if shared.exists():
                _merge_into(entry, shared)
            else:
                shared.parent.mkdir(parents=True, exist_ok=True)
                os.rename(entry, shared)
            os.symlink(f"../{BOOK_DIR}/{_CACHES}/{key}/{entry.name}", entry)

    def _adopt_linked_folders(self) -> None:
        """An earlier layout made chapter folders links into ``.book/versions``: make them real."""
        for key in self.keys:
            link = self.run_dir / key
            if link.is_symlink():
                target = Path(os.path.realpath(link))
                link.unlink()
                if target.is_dir() and self.book_dir in target.parents:
                    os.rename(target, link)

    def _next_generation(self) -> Path:
        """A new generation folder holding a copy of the current bookkeeping (or empty folders)."""
        gen = self.book_dir / _GENERATIONS / _new_id()
        current = self.current()
        if current is not None:
            _clone(current, gen)
        else:
            gen.mkdir(parents=True)
        (gen / _STATE).mkdir(exist_ok=True)
        (gen / _NOTEBOOKS).mkdir(exist_ok=True)
        return gen

    def _adopt_legacy(self) -> None:
        """Turn bookkeeping written before generations existed (real files) into the first generation."""
        gen = self._next_generation()
        legacy_state, legacy_nbs = self.run_dir / _STATE, self.run_dir / _NOTEBOOKS
        if legacy_state.is_dir() and not legacy_state.is_symlink():
            for path in legacy_state.glob("*.json"):
                if path.name == _MEMO:
                    os.replace(path, self.memo_path())
                else:
                    shutil.copy2(path, gen / _STATE / path.name)
        if legacy_nbs.is_dir() and not legacy_nbs.is_symlink():
            for path in legacy_nbs.glob("*.ipynb"):
                if not path.name.startswith("."):
                    shutil.copy2(path, gen / _NOTEBOOKS / path.name)
        legacy_manifest = self.run_dir / _MANIFEST
        if legacy_manifest.is_file() and not legacy_manifest.is_symlink():
            shutil.copy2(legacy_manifest, gen / _MANIFEST)
        _replace_with_symlink(self.book_dir / _CURRENT, f"{_GENERATIONS}/{gen.name}")
        for name in (_STATE, _NOTEBOOKS):
            path = self.run_dir / name
            if path.is_dir() and not path.is_symlink():
                os.rename(path, self.book_dir / STAGING / f"legacy-{name}-{gen.name}")  # removed by gc
        self._ensure_reader_links()
        for key in self.keys:
            self._adopt_caches(key, self.run_dir / key)
