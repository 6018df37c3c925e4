"""Execute chapters with papermill, cache them, and keep the run directory consistent.

What readers see in a run directory ``runs/<profile>/``::

    <key>/                 files the chapter wrote (its exports; read by later chapters)
    notebooks/<stem>.ipynb executed notebooks, provenance block appended
    _state/<key>.json      the chapter's last run: cache key, status, files, timings
    manifest.json          every chapter's facts, in book order (documented in the README)

Runs are transactions (:mod:`skinmap.book.store` has the layout and the protocol). A chapter run
moves the chapter's folder aside and writes into a fresh one in its place (the run lock keeps every
other writer and chapter out meanwhile). Only when the notebook succeeds are its state, its executed
notebook and the manifest switched over, together, by replacing one symbolic link; the old folder is
then deleted. A failing chapter gets its old folder back and changes nothing but its state's
``last_failure`` and the kept ``notebooks/<stem>.failed.ipynb``; a runner killed at any moment
(``SIGKILL`` included) leaves the previous outputs, state and manifest: its watchdog
(:mod:`skinmap.book.watchdog`) puts the old folder back at once, and the next run removes what it
left behind. Caches (a chapter's
``cache/``, ``app_cache/``, any ``*_cache/``) live outside the versions and are shared by every run.

One writer per run directory: every run holds ``.book/lock`` (:mod:`skinmap.book.lock`); a second
run stops with a message naming the holder (or waits, ``BookContext(wait=True)``). Each chapter's
kernel talks over IPC sockets in a private temporary folder that is removed when the chapter ends;
a kernel whose runner dies exits on its own (ipykernel polls its parent). A run directory that
cannot be written still serves cached chapters; a chapter that would have to execute says so.

A chapter is skipped when its cache key (parameters, chapter source, library source, upstream
outputs and external inputs; see :mod:`skinmap.book.fingerprint`) equals the key of its last
successful run and its files are still there. A chapter never runs on stale inputs: an upstream
chapter that has not run, whose files changed, or that is itself out of date with respect to its
own upstreams stops the run with a message naming it and the command to run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import nbformat

import skinmap
from skinmap import runs
from skinmap.book.chapters import Chapter, book_chapters, execution_order, find_chapter
from skinmap.book.fingerprint import FileHasher, cache_key, library_hash, notebook_source_hash
from skinmap.book.errors import BookError, ChapterFailed, RunDirReadOnly, RunLocked
from skinmap.book.lock import RunLock, hold_run_lock
from skinmap.book.params import load_params, validate_profile
from skinmap.book.provenance import git_commit, provenance_markdown
from skinmap.book.schemas import ChapterParams, load_schema_module
from skinmap.book.store import RunStore, Stage, is_cache_name
from skinmap.book.watchdog import Watchdog
from skinmap.hashing import canonical_hash, library_versions
from skinmap.io import read_json

__all__ = [
    "BookContext", "BookError", "ChapterFailed", "RunLocked", "RunDirReadOnly",
    "run_chapter", "build_book", "write_manifest", "load_state",
]

OK_STATUSES = ("executed", "cached")
KERNEL_DIR_PREFIX = "skinmap-kernel-"


@dataclass
class BookContext:
    """Where a build reads and writes.

    ``figures_dir`` defaults to ``figures/<profile>/`` of the project for the default run
    directory and to ``<run_dir>/figures`` for any other (a run elsewhere never overwrites the
    project's figures). ``wait``: when another process holds the run directory, wait for it
    (True, or at most that many seconds) instead of stopping.
    """

    project_root: Path
    profile: str = "demo"
    run_dir: Path | None = None
    figures_dir: Path | None = None
    log: Callable[[str], None] = print
    wait: bool | float = False
    _lib_hash: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        validate_profile(self.profile)
        self.project_root = Path(self.project_root).resolve()
        default_run_dir = (self.project_root / "runs" / self.profile).resolve()
        self.run_dir = Path(self.run_dir or default_run_dir).resolve()
        if self.figures_dir is None:
            own = self.run_dir == default_run_dir
            self.figures_dir = self.project_root / "figures" / self.profile if own else self.run_dir / "figures"
        self.figures_dir = Path(self.figures_dir).resolve()

    @property
    def lib_hash(self) -> str:
        if self._lib_hash is None:
            self._lib_hash = library_hash()
        return self._lib_hash

    def state_path(self, key: str) -> Path:
        return runs.run_file(self.run_dir, "state", chapter=key)

    def store(self) -> RunStore:
        keys = [c.key for c in book_chapters(self.project_root)]
        return RunStore(self.run_dir, keys, declared_caches=_declared_caches(keys))

    def hasher(self) -> FileHasher:
        store = self.store()
        return FileHasher(store.memo_path(), prune_under=store.book_dir)


def _declared_caches(keys: list[str]) -> dict[str, list[str]]:
    """Cache folders registered in :data:`skinmap.runs.FOLDERS` (``<chapter>/<cache>``), by chapter."""
    out: dict[str, list[str]] = {}
    for template in runs.FOLDERS.values():
        parts = PurePosixPath(template).parts
        if len(parts) == 2 and parts[0] in keys and is_cache_name(parts[1]):
            out.setdefault(parts[0], []).append(parts[1])
    return out


def load_state(ctx: BookContext, key: str) -> dict[str, Any] | None:
    path = ctx.state_path(key)
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except (ValueError, OSError):
        return None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


# ------------------------------------------------------------------------------------ session


@dataclass
class _Session:
    lock: RunLock
    store: RunStore

    @property
    def writable(self) -> bool:
        return self.lock.writable


@contextlib.contextmanager
def _session(ctx: BookContext) -> Iterator[_Session]:
    """Hold the run lock; the first time, clean up after a killed run and adopt an old layout."""
    store = ctx.store()

    def recover(lock: RunLock) -> None:
        if not lock.writable:
            return
        kernel_dir = lock.previous.get("kernel_dir")
        if lock.previous_died and kernel_dir and Path(kernel_dir).name.startswith(KERNEL_DIR_PREFIX):
            shutil.rmtree(kernel_dir, ignore_errors=True)
        store.prepare()

    with hold_run_lock(store.book_dir, ctx.run_dir, wait=ctx.wait, log=ctx.log, on_acquire=recover) as lock:
        yield _Session(lock=lock, store=store)


# ------------------------------------------------------------------------------------ inputs


def _require_fresh(ctx: BookContext, reader: str, dep: str, hasher: FileHasher) -> dict[str, Any]:
    """The state of upstream ``dep`` after checking it can be read by ``reader``.

    ``dep`` must have run successfully, its files must be those it wrote, and it must be up to
    date with its own upstreams, transitively (a new catalog never meets an old embedding).
    """
    state = load_state(ctx, dep)
    if not state or state.get("status") not in OK_STATUSES:
        raise ChapterFailed(
            f"chapter '{reader}' reads the outputs of '{dep}', which has not run successfully for "
            f"profile '{ctx.profile}': run `python -m skinmap run {dep}` or `python -m skinmap book` first"
        )
    if not _outputs_intact(ctx, state, hasher):
        raise ChapterFailed(
            f"chapter '{reader}' reads the outputs of '{dep}', whose files changed or disappeared since "
            f"it ran: run `python -m skinmap run {dep}` first"
        )
    stale = _stale_ancestor(ctx, dep, set())
    if stale is not None:
        chapter, upstream = stale
        raise ChapterFailed(
            f"chapter '{reader}' reads the outputs of '{dep}', which is stale: '{chapter}' ran before the "
            f"latest outputs of '{upstream}'. Run `python -m skinmap run {chapter}` (and the chapters "
            f"after it), or `python -m skinmap book --profile {ctx.profile}` to bring every chapter up to date"
        )
    return state


def _stale_ancestor(ctx: BookContext, key: str, seen: set[str]) -> tuple[str, str] | None:
    """The most upstream ``(chapter, its upstream)`` pair where the chapter's recorded input
    fingerprint is not the upstream's current output fingerprint, or None."""
    if key in seen:
        return None
    seen.add(key)
    state = load_state(ctx, key) or {}
    for name, recorded in sorted(state.get("input_fingerprints", {}).items()):
        if not name.startswith("chapter:"):
            continue
        upstream = name.partition(":")[2]
        up_state = load_state(ctx, upstream)
        if not up_state or up_state.get("status") not in OK_STATUSES:
            return key, upstream
        found = _stale_ancestor(ctx, upstream, seen)
        if found is not None:
            return found
        if recorded != up_state.get("output_fingerprint"):
            return key, upstream
    return None


def _input_fingerprints(
    ctx: BookContext, chapter: Chapter, schema, params: ChapterParams, hasher: FileHasher
) -> dict[str, str]:
    fingerprints: dict[str, str] = {}
    for dep in getattr(schema, "DEPENDS_ON", ()):
        fingerprints[f"chapter:{dep}"] = _require_fresh(ctx, chapter.key, dep, hasher)["output_fingerprint"]
    external = getattr(schema, "external_inputs", None)
    if external is not None:
        for path in external(params, ctx.project_root):
            fingerprints[f"external:{os.fspath(path)}"] = hasher.fingerprint(path)
    return fingerprints


def _outputs_intact(ctx: BookContext, state: Mapping[str, Any], hasher: FileHasher) -> bool:
    out_dir = ctx.run_dir / state["name"]
    nb = ctx.run_dir / state["executed_notebook"]
    if not nb.is_file():
        return False
    files = {rel: hasher.file(out_dir / rel) for rel in state["files"] if (out_dir / rel).is_file()}
    return len(files) == len(state["files"]) and canonical_hash(files) == state["output_fingerprint"]


def _output_files(folder: Path) -> list[str]:
    """Every file below a version folder except caches and hidden entries (the runner's own)."""
    out = []
    for root, dirs, files in os.walk(folder):
        rel_root = Path(root).relative_to(folder)
        dirs[:] = [d for d in dirs if not d.startswith(".")
                   and not (rel_root == Path(".") and is_cache_name(d))]
        out += [(rel_root / f).as_posix() for f in files if not f.startswith(".")]
    return sorted(out)


# ------------------------------------------------------------------------------------ execution


def _ipc_kernel_manager(runtime_dir: str | os.PathLike | None = None) -> type:
    """A kernel manager that talks to its kernel over local IPC sockets instead of TCP on localhost:
    nothing listens on a network port, and ipykernel 7 no longer warns, for every chapter, that a
    kernel runs over TCP without encryption. With ``runtime_dir`` the connection file and the
    sockets live in that (private) folder; otherwise jupyter_client would put the sockets in the
    kernel's working directory, i.e. ``chapters/``, shared by every run."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum, Unicode

    namespace: dict[str, Any] = {
        "transport": CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True),
    }
    if runtime_dir is not None:
        # The socket addresses derive from the connection file's name (``<name>-ipc-<n>``).
        namespace["connection_file"] = Unicode(os.path.join(os.fspath(runtime_dir), "kernel.json"), config=True)
        env = {"IPYTHONDIR": os.fspath(_kernel_profile(Path(runtime_dir)))}

        async def _async_pre_start_kernel(self, **kw: Any):
            kw["env"] = {**(kw.get("env") or os.environ), **env}
            return await AsyncKernelManager._async_pre_start_kernel(self, **kw)

        namespace["_async_pre_start_kernel"] = _async_pre_start_kernel
    return type("IPCKernelManager", (AsyncKernelManager,), namespace)


# The chapter kernel's private IPython profile: the page gets the chapter's results, the build log
# gets the rest. Warnings and progress bars are written to the kernel's own stderr (the runner's
# terminal or CI log) instead of the notebook, and every tqdm bar is a plain text bar there (a
# notebook widget needs a live kernel and a CDN, and is blank in a static page).
_KERNEL_CONFIG = """\
# Written by skinmap's runner. fd 1/2 are not captured into the notebook: they are the build log.
c.IPKernelApp.capture_fd_output = False
"""
_KERNEL_STARTUP = """\
# Written by skinmap's runner: warnings and progress go to the build log, never to the page.
import sys as _sys
import warnings as _warnings

_build_log = _sys.__stderr__


def _warning_to_log(message, category, filename, lineno, file=None, line=None):
    try:
        _build_log.write(_warnings.formatwarning(message, category, filename, lineno, line))
        _build_log.flush()
    except Exception:
        pass


_warnings.showwarning = _warning_to_log

try:
    import tqdm.std as _tqdm_std
    import tqdm.auto as _tqdm_auto
    import tqdm.autonotebook as _tqdm_autonotebook

    class BuildLogTqdm(_tqdm_std.tqdm):
        \"\"\"A text progress bar on the build log (slow refresh when the log is not a terminal).\"\"\"

        def __init__(self, *args, **kwargs):
            kwargs.setdefault("file", _build_log)
            kwargs.setdefault("mininterval", 1.0 if _build_log.isatty() else 15.0)
            super().__init__(*args, **kwargs)

    _tqdm_auto.tqdm = _tqdm_autonotebook.tqdm = BuildLogTqdm
    try:
        import tqdm.notebook as _tqdm_notebook
        _tqdm_notebook.tqdm = BuildLogTqdm
    except ImportError:
        pass
except ImportError:
    pass
"""


def _kernel_profile(runtime_dir: Path) -> Path:
    """An IPython directory inside the kernel's private folder with the build-log set-up above."""
    ipython_dir = runtime_dir / "ipython"
    profile = ipython_dir / "profile_default"
    (profile / "startup").mkdir(parents=True, exist_ok=True)
    (profile / "ipython_kernel_config.py").write_text(_KERNEL_CONFIG, encoding="utf-8")
    (profile / "startup" / "00-skinmap-build-log.py").write_text(_KERNEL_STARTUP, encoding="utf-8")
    return ipython_dir


class _NotebookError(Exception):
    pass


@contextlib.contextmanager
def _figure_audit_to(path: Path):
    """Point the kernels' figure audit (:func:`skinmap.viz.style.set_style`) at ``path`` for one run."""
    from skinmap.viz.style import AUDIT_ENV

    path.unlink(missing_ok=True)
    old = os.environ.get(AUDIT_ENV)
    os.environ[AUDIT_ENV] = os.fspath(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(AUDIT_ENV, None)
        else:
            os.environ[AUDIT_ENV] = old


def _report_figure_audit(chapter: Chapter, path: Path) -> None:
    """One build-log line when a chapter's figures break the book's figure rules (viz.audit)."""
    if not path.is_file():
        return
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    bad = [r for r in records if r.get("violations")]
    if bad:
        first = bad[0]
        print(f"  {chapter.stem}: {len(bad)} of {len(records)} figure(s) break the figure rules "
              f"(e.g. cell {first.get('cell')}: {first['violations'][0]}); see {path.name}", file=sys.stderr, flush=True)


def _execute(ctx: BookContext, chapter: Chapter, parameters: dict[str, Any], stage: Stage, kernel_dir: str) -> None:
    """Run the notebook into ``stage.notebook``, its kernel's files in the private ``kernel_dir``."""
    import papermill as pm

    source = ctx.project_root / chapter.notebook
    try:
        pm.execute_notebook(
            os.fspath(source),
            os.fspath(stage.notebook),
            parameters=parameters,
            cwd=os.fspath(source.parent),
            kernel_name="python3",
            progress_bar=False,
            log_output=False,
            kernel_manager_class=_ipc_kernel_manager(kernel_dir),
        )
    except Exception as exc:  # papermill's execution error, a dead kernel, ...
        detail = getattr(exc, "evalue", None) or str(exc).strip().splitlines()[-1:] or [repr(exc)]
        raise _NotebookError(detail if isinstance(detail, str) else detail[0]) from exc


# ------------------------------------------------------------------------------------ one chapter


@dataclass(frozen=True)
class _Plan:
    """What a chapter run is about to do: its inputs and the cache key they make."""

    chapter: Chapter
    values: dict[str, Any]
    params_hash: str
    source_hash: str
    inputs: dict[str, str]
    cache_key: str
    previous: dict[str, Any] | None


def _plan(ctx: BookContext, chapter: Chapter, params: ChapterParams, hasher: FileHasher) -> _Plan:
    """Steps 1-2: fingerprint the inputs (refusing stale ones) and compute the cache key."""
    schema = load_schema_module(chapter.key)
    values = params.model_dump(mode="json")
    inputs = _input_fingerprints(ctx, chapter, schema, params, hasher)
    params_hash = canonical_hash(values)
    source_hash = notebook_source_hash(ctx.project_root / chapter.notebook)
    key = cache_key(params_hash=params_hash, source_hash=source_hash, lib_hash=ctx.lib_hash, input_fingerprints=inputs)
    return _Plan(chapter, values, params_hash, source_hash, inputs, key, load_state(ctx, chapter.key))


def _why_execute(ctx: BookContext, plan: _Plan, hasher: FileHasher, force: bool) -> str | None:
    """Step 3: None when the last run can be reused, else the reason to execute."""
    previous = plan.previous
    if force:
        return "--force was given"
    if not previous or previous.get("status") not in OK_STATUSES:
        return "it has not run successfully yet"
    if previous.get("cache_key") != plan.cache_key:
        return "its parameters, notebook, library code or inputs changed"
    if not _outputs_intact(ctx, previous, hasher):
        return "its outputs are missing or were changed"
    return None


def _manifest_builder(ctx: BookContext, renderer: str | None = None) -> Callable[[Path], dict[str, Any]]:
    """``manifest(generation)``: the manifest of a generation's states, in book order."""

    def build(gen: Path) -> dict[str, Any]:
        entries = []
        for chapter in book_chapters(ctx.project_root):
            path = runs.run_file(gen, "state", chapter=chapter.key)
            state = read_json(path) if path.is_file() else None
            entries.append(state or {"name": chapter.key, "notebook": chapter.notebook.as_posix(), "status": "not run"})
        previous_path = runs.run_file(gen, "manifest")
        previous = read_json(previous_path) if previous_path.is_file() else {}
        return {
            "profile": ctx.profile,
            "project_version": skinmap.__version__,
            "git_commit": git_commit(ctx.project_root),
            "generated_at": _now(),
            "renderer": renderer or previous.get("renderer"),
            "chapters": entries,
        }

    return build


def _reuse(ctx: BookContext, session: _Session, plan: _Plan, hasher: FileHasher) -> dict[str, Any]:
    """Step 4: record a cache hit (nothing is written in a read-only run directory)."""
    entry = dict(plan.previous, status="cached")
    if session.writable:
        hasher.save()
        session.store.commit(states={plan.chapter.key: entry}, manifest=_manifest_builder(ctx))
        session.store.gc()
    return entry


def _record_failure(ctx: BookContext, session: _Session, plan: _Plan, stage: Stage, started_at: str,
                    error: str) -> str:
    """Step 6 on failure: keep the last good outputs and state, note the failure, keep the failed
    notebook. Returns the failed notebook's path (empty when the kernel never started)."""
    chapter = plan.chapter
    entry = {
        "name": chapter.key, "notebook": chapter.notebook.as_posix(), "status": "failed",
        "profile": ctx.profile, "parameters": plan.values, "params_hash": plan.params_hash,
        "input_fingerprints": plan.inputs, "cache_key": plan.cache_key, "started_at": started_at,
        "finished_at": _now(), "error": error,
    }
    previous = plan.previous
    if previous and previous.get("status") in OK_STATUSES:
        entry["last_success"] = {k: previous[k] for k in ("finished_at", "cache_key") if k in previous}
        state = dict(previous, last_failure=entry)
    else:
        state = entry
    failed_name = runs.run_file(Path(), "failed_notebook", stem=chapter.stem).name
    kept = stage.notebook if stage.notebook.is_file() else None
    session.store.commit(states={chapter.key: state}, notebooks={failed_name: kept},
                         manifest=_manifest_builder(ctx))
    return os.fspath(runs.run_file(ctx.run_dir, "failed_notebook", stem=chapter.stem)) if kept else ""


def _success_entry(ctx: BookContext, plan: _Plan, stage: Stage, hasher: FileHasher, started_at: str,
                   run_seconds: float) -> dict[str, Any]:
    """Step 7: the new state: what ran, on what, and the fingerprint of the files it wrote."""
    files = _output_files(stage.folder)
    return {
        "name": plan.chapter.key,
        "notebook": plan.chapter.notebook.as_posix(),
        "executed_notebook": runs.run_file(Path(), "notebook", stem=plan.chapter.stem).as_posix(),
        "status": "executed",
        "profile": ctx.profile,
        "parameters": plan.values,
        "params_hash": plan.params_hash,
        "source_hash": plan.source_hash,
        "lib_hash": ctx.lib_hash,
        "input_fingerprints": plan.inputs,
        "cache_key": plan.cache_key,
        "started_at": started_at,
        "finished_at": _now(),
        "run_seconds": round(run_seconds, 3),
        "files": files,
        "output_fingerprint": canonical_hash({rel: hasher.file(stage.folder / rel) for rel in files}),
        "run_id": stage.run_id,
        "project_version": skinmap.__version__,
        "git_commit": git_commit(ctx.project_root),
        "library_versions": library_versions(),
    }


def _with_provenance(stage: Stage, entry: dict[str, Any]) -> Path:
    """Step 8: the executed notebook with its provenance block appended (a new file)."""
    nb = nbformat.read(os.fspath(stage.notebook), as_version=4)
    cell = nbformat.v4.new_markdown_cell(provenance_markdown(entry))
    cell.metadata["tags"] = ["provenance"]
    nb.cells.append(cell)
    final = stage.notebook.with_name(f"{stage.key}.{stage.run_id}.final.ipynb")
    nbformat.write(nb, os.fspath(final))
    return final


def _execute_and_commit(ctx: BookContext, session: _Session, plan: _Plan, hasher: FileHasher) -> dict[str, Any]:
    """Steps 5-9: stage, execute, then commit outputs + state + notebook + manifest in one switch."""
    chapter, store = plan.chapter, session.store
    kernel_dir = tempfile.mkdtemp(prefix=KERNEL_DIR_PREFIX)
    session.lock.note(kernel_dir=kernel_dir)  # a run killed now is cleaned up by the next one
    stage = store.begin(chapter.key)  # 5. the old folder aside, a fresh one in its place
    watchdog = Watchdog(ctx.run_dir, chapter.key, store.state_path(chapter.key), kernel_dir)
    try:
        injected = {
            "profile": ctx.profile,
            "run_dir": os.fspath(stage.run_dir),
            "figures_dir": os.fspath(stage.figures),
            "project_root": os.fspath(ctx.project_root),
        }
        started_at, t0 = _now(), time.perf_counter()
        audit = runs.run_file(stage.run_dir, "figure_audit", chapter=chapter.key)
        try:
            with _figure_audit_to(audit):  # the kernel's set_style() hook appends one line per figure
                _execute(ctx, chapter, {**plan.values, **injected}, stage, kernel_dir)  # 6. execute
        except _NotebookError as exc:
            error = f"chapter '{chapter.key}' failed: {exc}"
            failed = _record_failure(ctx, session, plan, stage, started_at, error)
            where = f"\n  the failed notebook is {failed}" if failed else ""
            raise ChapterFailed(f"{error}{where}") from exc.__cause__
        run_seconds = time.perf_counter() - t0
        _report_figure_audit(chapter, audit)
        store.settle_caches(stage)
        entry = _success_entry(ctx, plan, stage, hasher, started_at, run_seconds)  # 7. state
        notebook = _with_provenance(stage, entry)  # 8. provenance
        names = {k: runs.run_file(Path(), k, stem=chapter.stem).name for k in ("notebook", "failed_notebook")}
        store.commit(  # 9. the one atomic switch
            states={chapter.key: entry},
            notebooks={names["notebook"]: notebook, names["failed_notebook"]: None},
            manifest=_manifest_builder(ctx),
        )
        store.publish_figures(stage, ctx.figures_dir)
    finally:
        store.end(stage)  # the chapter's folder holds its committed run (the new one, or the old back)
        watchdog.done()
        shutil.rmtree(kernel_dir, ignore_errors=True)
        session.lock.note(kernel_dir=None)
        store.gc()
    hasher.save()
    return entry


def run_chapter(
    ctx: BookContext,
    chapter: Chapter | str,
    *,
    params: ChapterParams | None = None,
    override_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Run one chapter (or reuse its cached result) and return its manifest entry.

    The steps: 1. validate the parameters; 2. fingerprint the inputs, refusing missing or stale
    upstreams; 3. compare the cache key with the last run; 4. on a hit, record it and return;
    5. stage a new version; 6. execute the notebook (on failure: keep everything, note it, raise
    :class:`ChapterFailed`); 7. fingerprint the outputs; 8. append the provenance block; 9. switch
    outputs, state, notebook and manifest over in one atomic step.
    """
    if isinstance(chapter, str):
        chapter = find_chapter(book_chapters(ctx.project_root), chapter)
    if params is None:  # 1.
        params = load_params(ctx.project_root, ctx.profile, chapter.key,
                             override_file=override_file, overrides=overrides)
    with _session(ctx) as session:
        hasher = ctx.hasher()
        plan = _plan(ctx, chapter, params, hasher)  # 2.
        reason = _why_execute(ctx, plan, hasher, force)  # 3.
        if reason is None:
            return _reuse(ctx, session, plan, hasher)  # 4.
        if not session.writable:
            raise RunDirReadOnly(
                f"run directory {ctx.run_dir} is read-only: chapter '{chapter.key}' must be executed "
                f"({reason}); pass --run-dir with a writable folder"
            )
        return _execute_and_commit(ctx, session, plan, hasher)  # 5.-9.


def write_manifest(ctx: BookContext, *, renderer: str | None = None) -> dict[str, Any]:
    """Write ``runs/<profile>/manifest.json`` from the chapters' states, in book order.

    In a read-only run directory the manifest is returned, not written.
    """
    build = _manifest_builder(ctx, renderer)
    with _session(ctx) as session:
        if not session.writable:
            current = session.store.current()
            return build(current if current is not None else ctx.run_dir)
        gen = session.store.commit(manifest=build)
        session.store.gc()
        return read_json(runs.run_file(gen, "manifest"))


def build_book(
    ctx: BookContext,
    *,
    force: bool = False,
    only: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Run every chapter in dependency order (book order where free), then write the manifest.

    Parameters are validated for all chapters before the first one runs. Stops at the first
    failing chapter (later chapters may depend on it) after updating the manifest. The whole
    build holds the run directory's lock.
    """
    from tqdm.auto import tqdm

    chapters = book_chapters(ctx.project_root)
    deps = {c.key: tuple(getattr(load_schema_module(c.key), "DEPENDS_ON", ())) for c in chapters}
    order = execution_order(chapters, deps)
    if only:
        wanted = {find_chapter(chapters, name).key for name in only}
        order = [c for c in order if c.key in wanted]
    all_params = {c.key: load_params(ctx.project_root, ctx.profile, c.key) for c in order}
    entries = []
    with _session(ctx) as session:
        bar = tqdm(order, desc=f"book [{ctx.profile}]", unit="chapter")
        try:
            for chapter in bar:
                bar.set_postfix_str(chapter.key)
                entry = run_chapter(ctx, chapter, params=all_params[chapter.key], force=force)
                took = "" if entry["status"] == "cached" else f" ({entry['run_seconds']:.1f} s)"
                ctx.log(f"  {chapter.stem}: {entry['status']}{took}")
                entries.append(entry)
        finally:
            bar.close()
            if session.writable:
                write_manifest(ctx)
    return entries
