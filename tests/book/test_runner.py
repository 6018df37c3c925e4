"""The runner executes chapters with papermill, caches them, and keeps outputs safe on failure.

One toy book (three tiny notebooks) is built once per module; each test then changes one thing.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pytest

from skinmap.book.render import render_book
from skinmap.book.runner import BookContext, ChapterFailed, build_book, run_chapter

from .toy_project import install_toy_schemas, write_toy_project


@pytest.fixture
def toy(tmp_path_factory, monkeypatch):
    install_toy_schemas(monkeypatch)
    root = write_toy_project(tmp_path_factory.mktemp("toy"))
    ctx = BookContext(project_root=root, profile="demo", log=lambda _m: None)
    return ctx


def _statuses(entries):
    return {e["name"]: e["status"] for e in entries}


def test_build_cache_rerun_and_failure(toy):
    ctx = toy
    entries = build_book(ctx)
    # Execution order: alpha before beta although beta comes first in the book.
    assert [e["name"] for e in entries] == ["index", "alpha", "beta"]
    assert set(_statuses(entries).values()) == {"executed"}
    total = json.loads((ctx.run_dir / "beta" / "total.json").read_text())["total"]
    assert total == pytest.approx(sum(np.arange(5) * 2.0))  # independent: 0+2+4+6+8 = 20
    assert (ctx.figures_dir / "alpha-values.png").is_file() and (ctx.figures_dir / "alpha-values.svg").is_file()

    manifest = json.loads((ctx.run_dir / "manifest.json").read_text())
    assert [c["name"] for c in manifest["chapters"]] == ["index", "beta", "alpha"]  # book order
    alpha = next(c for c in manifest["chapters"] if c["name"] == "alpha")
    for key in ("parameters", "params_hash", "input_fingerprints", "status", "run_seconds", "files",
                "git_commit", "project_version", "library_versions"):
        assert key in alpha
    assert alpha["files"] == ["values.npy"]
    beta = next(c for c in manifest["chapters"] if c["name"] == "beta")
    assert beta["input_fingerprints"] == {"chapter:alpha": alpha["output_fingerprint"]}

    # Provenance block appended to every executed notebook.
    nb_text = (ctx.run_dir / "notebooks" / "02-alpha.ipynb").read_text()
    assert 'class=\\"provenance\\"' in nb_text and alpha["params_hash"][:16] in nb_text

    # Nothing changed: everything cached, notebooks untouched.
    mtime = os.stat(ctx.run_dir / "notebooks" / "01-beta.ipynb").st_mtime_ns
    assert set(_statuses(build_book(ctx)).values()) == {"cached"}
    assert os.stat(ctx.run_dir / "notebooks" / "01-beta.ipynb").st_mtime_ns == mtime

    # A parameter change re-runs alpha and, through its changed output, beta; not index.
    (ctx.project_root / "params/demo/alpha.yml").write_text("n: 4\nscale: 2.0\n")
    assert _statuses(build_book(ctx)) == {"index": "cached", "alpha": "executed", "beta": "executed"}
    assert json.loads((ctx.run_dir / "beta" / "total.json").read_text())["total"] == 12.0

    # Editing a chapter's source re-runs it; --force re-runs everything.
    nb_path = ctx.project_root / "chapters/01-beta.ipynb"
    nb_path.write_text(nb_path.read_text().replace("A toy chapter.", "A toy chapter, edited."))
    assert _statuses(build_book(ctx))["beta"] == "executed"
    assert set(_statuses(build_book(ctx, force=True)).values()) == {"executed"}

    # Deleting an output invalidates the cache for that chapter.
    (ctx.run_dir / "alpha" / "values.npy").unlink()
    assert _statuses(build_book(ctx, only=["alpha"]))["alpha"] == "executed"

    # A failing run keeps the previous outputs and notebook, saves the failed notebook, names the chapter.
    before = (ctx.run_dir / "alpha" / "values.npy").read_bytes()
    good_nb = (ctx.run_dir / "notebooks" / "02-alpha.ipynb").read_bytes()
    with pytest.raises(ChapterFailed, match="chapter 'alpha' failed: alpha was asked to fail"):
        run_chapter(ctx, "alpha", overrides={"fail": True})
    assert (ctx.run_dir / "alpha" / "values.npy").read_bytes() == before
    assert (ctx.run_dir / "notebooks" / "02-alpha.ipynb").read_bytes() == good_nb
    assert (ctx.run_dir / "notebooks" / "02-alpha.failed.ipynb").is_file()
    state = json.loads((ctx.run_dir / "_state" / "alpha.json").read_text())
    assert state["status"] in ("executed", "cached") and "last_failure" in state

    # A rerun with new parameters through the one-chapter path.
    entry = run_chapter(ctx, "alpha", overrides={"n": 3, "scale": 1.0})
    assert entry["parameters"]["n"] == 3 and np.load(ctx.run_dir / "alpha" / "values.npy").tolist() == [0, 1, 2]


def test_chapter_needs_its_dependencies_first(toy):
    with pytest.raises(ChapterFailed, match="reads the outputs of 'alpha'.*skinmap run alpha"):
        run_chapter(toy, "beta")


def test_stale_files_from_an_earlier_run_are_removed(toy):
    build_book(toy, only=["alpha"])
    (toy.run_dir / "alpha" / "old_export.csv").write_text("stale\n")
    os.utime(toy.run_dir / "alpha" / "old_export.csv", ns=(0, 0))
    run_chapter(toy, "alpha", force=True)
    assert not (toy.run_dir / "alpha" / "old_export.csv").exists()


def test_a_chapters_cache_folder_survives_a_run_that_only_read_it(toy):
    build_book(toy, only=["alpha"])
    cached = toy.run_dir / "alpha" / "cache" / "vectors" / "part-0.npy"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cached vectors")
    os.utime(cached, ns=(0, 0))
    entry = run_chapter(toy, "alpha", force=True)
    assert cached.read_bytes() == b"cached vectors"
    assert not any(f.startswith("cache/") for f in entry["files"])  # a cache is not an output


def test_fallback_renderer_builds_a_browsable_site(toy):
    build_book(toy)
    site, renderer = render_book(toy, renderer="nbconvert")
    assert renderer == "nbconvert"
    pages = sorted(p.name for p in site.glob("*.html"))
    assert pages == ["01-beta.html", "02-alpha.html", "index.html"]
    alpha = (site / "02-alpha.html").read_text()
    # Sidebar lists every chapter in _quarto.yml order and marks the current page.
    links = re.findall(r'<nav class="skinmap-sidebar".*?</nav>', alpha, flags=re.S)[0]
    assert [h for h in re.findall(r'href="([^"]+)"', links)] == ["index.html", "index.html", "01-beta.html", "02-alpha.html"]
    assert 'href="02-alpha.html" class="active"' in alpha
    assert "<title>Alpha values" in alpha
    assert "data:image/png;base64" in alpha  # the figure is embedded
    assert 'class="provenance"' in alpha
    assert "nbconvert fallback" in alpha
    manifest = json.loads((toy.run_dir / "manifest.json").read_text())
    assert manifest["renderer"] == "nbconvert"
    # Rendering again replaces the site whole.
    render_book(toy, renderer="nbconvert")
    assert sorted(p.name for p in site.glob("*.html")) == pages


def test_quarto_renderer_is_used_when_on_path(toy, tmp_path, monkeypatch):
    """A stand-in `quarto` checks what it is given, so the Quarto path is tested without Quarto."""
    build_book(toy)
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    script = fake_bin / "quarto"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import sys, pathlib, yaml\n"
        "stage = pathlib.Path(sys.argv[2])\n"
        "cfg = yaml.safe_load((stage / '_quarto.yml').read_text())\n"
        "assert sys.argv[1] == 'render' and cfg['project']['type'] == 'book'\n"
        "site = stage / cfg['project']['output-dir']\n"
        "for ch in [c for e in cfg['book']['chapters'] for c in ([e] if isinstance(e, str) else e['chapters'])]:\n"
        "    assert (stage / ch).is_file(), ch\n"
        "    out = site / ch.replace('.ipynb', '.html'); out.parent.mkdir(parents=True, exist_ok=True)\n"
        "    out.write_text('quarto page')\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    site, renderer = render_book(toy)
    assert renderer == "quarto"
    assert (site / "chapters" / "02-alpha.html").read_text() == "quarto page"
    assert "chapters/index.html" in (site / "index.html").read_text()  # root page points at the index chapter


def test_kernels_talk_over_local_sockets_not_tcp(toy, capfd):
    from skinmap.book.runner import _ipc_kernel_manager

    assert _ipc_kernel_manager()().transport == "ipc"
    entry = run_chapter(toy, "alpha", force=True)
    assert entry["status"] == "executed"
    captured = capfd.readouterr()
    # ipykernel 7 warns on stderr for every kernel that listens on TCP without encryption
    assert "running over TCP" not in captured.err + captured.out
