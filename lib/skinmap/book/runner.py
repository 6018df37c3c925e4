"""Execute chapters with papermill, cache them, and keep the run manifest.

Layout of a run directory ``runs/<profile>/``::

    <key>/                 files the chapter wrote (its exports; read by later chapters)
    notebooks/<stem>.ipynb executed notebooks, provenance block appended
    _state/<key>.json      the chapter's last run: cache key, status, files, timings
    manifest.json          every chapter's facts, in book order (documented in the README)

A chapter is skipped when its cache key (parameters, chapter source, library source, upstream
outputs and external inputs; see :mod:`skinmap.book.fingerprint`) equals the key of its last
successful run and its files are still there. A failed run leaves the previous outputs and the
previous executed notebook in place; the failed notebook is kept as ``<stem>.failed.ipynb``.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

import skinmap
from skinmap.book.chapters import Chapter, book_chapters, execution_order, find_chapter
from skinmap.book.fingerprint import (
    FileHasher,
    cache_key,
    canonical_hash,
    library_hash,
    notebook_source_hash,
)
from skinmap.book.params import load_params
from skinmap.book.provenance import git_commit, library_versions, provenance_markdown
from skinmap.book.schemas import ChapterParams, load_schema_module
from skinmap.io import atomic_path, read_json, write_json

__all__ = ["BookContext", "ChapterFailed", "run_chapter", "build_book", "write_manifest", "load_state"]

OK_STATUSES = ("executed", "cached")


class ChapterFailed(RuntimeError):
    """A chapter's notebook raised; the message names the chapter and points at its notebook."""


@dataclass
class BookContext:
    """Where a build reads and writes."""

    project_root: Path
    profile: str = "demo"
    run_dir: Path | None = None
    figures_dir: Path | None = None
    log: Callable[[str], None] = print
    _lib_hash: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.project_root = Path(self.project_root).resolve()
        self.run_dir = Path(self.run_dir or self.project_root / "runs" / self.profile).resolve()
        self.figures_dir = Path(self.figures_dir or self.project_root / "figures" / self.profile).resolve()

    @property
    def lib_hash(self) -> str:
        if self._lib_hash is None:
            self._lib_hash = library_hash()
        return self._lib_hash

    def state_path(self, key: str) -> Path:
        return self.run_dir / "_state" / f"{key}.json"

    def hasher(self) -> FileHasher:
        return FileHasher(self.run_dir / "_state" / "file_hashes.json")


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


def _input_fingerprints(
    ctx: BookContext, chapter: Chapter, schema, params: ChapterParams, hasher: FileHasher
) -> dict[str, str]:
    fingerprints: dict[str, str] = {}
    for dep in getattr(schema, "DEPENDS_ON", ()):
        state = load_state(ctx, dep)
        if not state or state.get("status") not in OK_STATUSES:
            raise ChapterFailed(
                f"chapter '{chapter.key}' reads the outputs of '{dep}', which has not run "
                f"successfully for profile '{ctx.profile}': run `python -m skinmap run {dep}` "
                "or `python -m skinmap book` first"
            )
        fingerprints[f"chapter:{dep}"] = state["output_fingerprint"]
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


# A chapter's ``cache/`` folder holds work reused across runs (vectors keyed by image content,
# trained models keyed by data and config). It is not an output: it is neither fingerprinted nor
# cleaned, otherwise a run that only *reads* its cache would delete it.
CACHE_DIRNAME = "cache"


def _in_cache(rel: str) -> bool:
    return rel.split("/", 1)[0] == CACHE_DIRNAME


def _files_written_since(folder: Path, start_ns: int) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(
        rel
        for p in folder.rglob("*")
        if p.is_file() and p.stat().st_mtime_ns >= start_ns and not p.name.startswith(".")
        and not _in_cache(rel := p.relative_to(folder).as_posix())
    )


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete files a previous run left that this successful run did not write (``cache/`` kept)."""
    for p in sorted(folder.rglob("*"), reverse=True):
        rel = p.relative_to(folder).as_posix()
        if _in_cache(rel):
            continue
        if p.is_file() and rel not in keep:
            p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()


def _ipc_kernel_manager() -> type:
    """A kernel manager that talks to its kernel over local IPC sockets instead of TCP on localhost:
    nothing listens on a network port, and ipykernel 7 no longer warns, for every chapter, that a
    kernel runs over TCP without encryption. The sockets live next to the connection file in Jupyter's
    runtime directory."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum

    class IPCKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

    return IPCKernelManager


def _execute(ctx: BookContext, chapter: Chapter, parameters: dict[str, Any]) -> Path:
    import papermill as pm

    source = ctx.project_root / chapter.notebook
    nb_dir = ctx.run_dir / "notebooks"
    nb_dir.mkdir(parents=True, exist_ok=True)
    final = nb_dir / f"{chapter.stem}.ipynb"
    failed = nb_dir / f"{chapter.stem}.failed.ipynb"
    tmp = nb_dir / f".{chapter.stem}.running.ipynb"
    try:
        pm.execute_notebook(
            os.fspath(source),
            os.fspath(tmp),
            parameters=parameters,
            cwd=os.fspath(source.parent),
            kernel_name="python3",
            progress_bar=False,
            log_output=False,
            kernel_manager_class=_ipc_kernel_manager(),
        )
    except Exception as exc:  # papermill's execution error, a dead kernel, ...
        if tmp.exists():
            os.replace(tmp, failed)
        detail = getattr(exc, "evalue", None) or str(exc).strip().splitlines()[-1:] or [repr(exc)]
        detail = detail if isinstance(detail, str) else detail[0]
        raise ChapterFailed(
            f"chapter '{chapter.key}' failed: {detail}\n  the failed notebook is {failed}"
        ) from exc
    if failed.exists():
        failed.unlink()
    return tmp


def run_chapter(
    ctx: BookContext,
    chapter: Chapter | str,
    *,
    params: ChapterParams | None = None,
    override_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Run one chapter (or reuse its cached result) and return its manifest entry."""
    if isinstance(chapter, str):
        chapter = find_chapter(book_chapters(ctx.project_root), chapter)
    schema = load_schema_module(chapter.key)
    if params is None:
        params = load_params(
            ctx.project_root, ctx.profile, chapter.key, override_file=override_file, overrides=overrides
        )
    param_values = params.model_dump(mode="json")
    hasher = ctx.hasher()
    inputs = _input_fingerprints(ctx, chapter, schema, params, hasher)
    params_hash = canonical_hash(param_values)
    source_hash = notebook_source_hash(ctx.project_root / chapter.notebook)
    key = cache_key(
        params_hash=params_hash, source_hash=source_hash, lib_hash=ctx.lib_hash, input_fingerprints=inputs
    )
    previous = load_state(ctx, chapter.key)
    if (
        not force
        and previous
        and previous.get("status") in OK_STATUSES
        and previous.get("cache_key") == key
        and _outputs_intact(ctx, previous, hasher)
    ):
        hasher.save()
        entry = dict(previous, status="cached")
        write_json(entry, ctx.state_path(chapter.key))
        return entry

    out_dir = ctx.run_dir / chapter.key
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx.figures_dir.mkdir(parents=True, exist_ok=True)
    injected = {
        "profile": ctx.profile,
        "run_dir": os.fspath(ctx.run_dir),
        "figures_dir": os.fspath(ctx.figures_dir),
        "project_root": os.fspath(ctx.project_root),
    }
    started_at, start_ns, t0 = _now(), time.time_ns(), time.perf_counter()
    try:
        executed_tmp = _execute(ctx, chapter, {**param_values, **injected})
    except ChapterFailed as exc:
        entry = {
            "name": chapter.key, "notebook": chapter.notebook.as_posix(), "status": "failed",
            "profile": ctx.profile, "parameters": param_values, "params_hash": params_hash,
            "input_fingerprints": inputs, "cache_key": key, "started_at": started_at,
            "finished_at": _now(), "error": str(exc),
        }
        # Keep the last good state's outputs listed; record the failure next to it.
        if previous and previous.get("status") in OK_STATUSES:
            entry["last_success"] = {k: previous[k] for k in ("finished_at", "cache_key") if k in previous}
            write_json(dict(previous, last_failure=entry), ctx.state_path(chapter.key))
        else:
            write_json(entry, ctx.state_path(chapter.key))
        raise
    run_seconds = time.perf_counter() - t0
    files = _files_written_since(out_dir, start_ns)
    _remove_stale(out_dir, set(files))
    output_fp = canonical_hash({rel: hasher.file(out_dir / rel) for rel in files})
    hasher.save()
    entry = {
        "name": chapter.key,
        "notebook": chapter.notebook.as_posix(),
        "executed_notebook": f"notebooks/{chapter.stem}.ipynb",
        "status": "executed",
        "profile": ctx.profile,
        "parameters": param_values,
        "params_hash": params_hash,
        "source_hash": source_hash,
        "lib_hash": ctx.lib_hash,
        "input_fingerprints": inputs,
        "cache_key": key,
        "started_at": started_at,
        "finished_at": _now(),
        "run_seconds": round(run_seconds, 3),
        "files": files,
        "output_fingerprint": output_fp,
        "project_version": skinmap.__version__,
        "git_commit": git_commit(ctx.project_root),
        "library_versions": library_versions(),
    }
    nb = nbformat.read(os.fspath(executed_tmp), as_version=4)
    cell = nbformat.v4.new_markdown_cell(provenance_markdown(entry))
    cell.metadata["tags"] = ["provenance"]
    nb.cells.append(cell)
    with atomic_path(ctx.run_dir / entry["executed_notebook"]) as tmp:
        nbformat.write(nb, os.fspath(tmp))
    executed_tmp.unlink()
    write_json(entry, ctx.state_path(chapter.key))
    return entry


def write_manifest(ctx: BookContext, *, renderer: str | None = None) -> dict[str, Any]:
    """Write ``runs/<profile>/manifest.json`` from the chapters' states, in book order."""
    entries = []
    for chapter in book_chapters(ctx.project_root):
        state = load_state(ctx, chapter.key)
        entries.append(state or {"name": chapter.key, "notebook": chapter.notebook.as_posix(), "status": "not run"})
    previous = read_json(ctx.run_dir / "manifest.json") if (ctx.run_dir / "manifest.json").is_file() else {}
    manifest = {
        "profile": ctx.profile,
        "project_version": skinmap.__version__,
        "git_commit": git_commit(ctx.project_root),
        "generated_at": _now(),
        "renderer": renderer or previous.get("renderer"),
        "chapters": entries,
    }
    write_json(manifest, ctx.run_dir / "manifest.json")
    return manifest


def build_book(
    ctx: BookContext,
    *,
    force: bool = False,
    only: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Run every chapter in dependency order (book order where free), then write the manifest.

    Parameters are validated for all chapters before the first one runs. Stops at the first
    failing chapter (later chapters may depend on it) after updating the manifest.
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
    bar = tqdm(order, desc=f"book [{ctx.profile}]", unit="chapter")
    try:
        for chapter in bar:
            bar.set_postfix_str(chapter.key)
            entry = run_chapter(ctx, chapter, params=all_params[chapter.key], force=force)
            took = "cached" if entry["status"] == "cached" else f"{entry['run_seconds']:.1f} s"
            ctx.log(f"  {chapter.stem}: {entry['status']} ({took})")
            entries.append(entry)
    finally:
        bar.close()
        write_manifest(ctx)
    return entries
