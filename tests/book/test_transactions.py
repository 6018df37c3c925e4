"""Runs are transactions: a failed or killed chapter never leaves a mix of old and new outputs.

Fault injection: a child process re-runs the toy chapter ``alpha`` (5 values -> 3 values) and is
SIGKILLed before its N-th file-system change in the run directory (N drawn by seed over every
change the run makes), or at a random time. Afterwards the run directory must hold either the old
or the new run, with outputs, state, manifest and executed notebook agreeing, checked here by
recomputing the fingerprints with hashlib, as soon as the runner's watchdog has pointed the
chapter's folder back (milliseconds); then the next run cleans every leftover.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from skinmap.book.runner import BookContext, ChapterFailed, build_book, run_chapter

from .toy_project import install_toy_schemas, write_toy_project

CHILD = Path(__file__).with_name("toy_child.py")
OLD_N, NEW_N = 5, 3


@pytest.fixture
def toy(tmp_path, monkeypatch):
    install_toy_schemas(monkeypatch)
    root = write_toy_project(tmp_path / "toy")
    return BookContext(project_root=root, profile="demo", log=lambda _m: None)


def _child(ctx: BookContext, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(CHILD), str(ctx.project_root), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _run_child(ctx: BookContext, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    proc = _child(ctx, *args)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fingerprint(files: dict[str, str]) -> str:
    text = json.dumps(files, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _wait_for_watchdog(ctx: BookContext, timeout: float = 15.0) -> None:
    """A killed runner's watchdog settles the chapter's folder (its journal entry goes last)."""
    journal = ctx.run_dir / ".book" / "journal" / "alpha.json"
    deadline = time.monotonic() + timeout
    while journal.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not journal.exists(), f"alpha not settled {timeout} s after its runner died"


def _assert_consistent(ctx: BookContext) -> int:
    """Outputs, state, manifest and notebook of alpha describe one and the same run; returns its n."""
    run = ctx.run_dir
    state = json.loads((run / "_state" / "alpha.json").read_text())
    n = state["parameters"]["n"]
    assert n in (OLD_N, NEW_N)
    assert np.load(run / "alpha" / "values.npy").tolist() == [2.0 * i for i in range(n)]
    on_disk = sorted(
        p.relative_to(run / "alpha").as_posix() for p in (run / "alpha").rglob("*")
        if p.is_file() and not any(part.startswith(".") or part.endswith("cache")
                                   for part in p.relative_to(run / "alpha").parts)
    )
    assert on_disk == state["files"] == ["values.npy"]
    assert _fingerprint({rel: _sha256(run / "alpha" / rel) for rel in on_disk}) == state["output_fingerprint"]
    manifest = {c["name"]: c for c in json.loads((run / "manifest.json").read_text())["chapters"]}
    assert manifest["alpha"]["cache_key"] == state["cache_key"]
    assert manifest["alpha"]["parameters"] == state["parameters"]
    assert state["params_hash"][:16] in (run / "notebooks" / "02-alpha.ipynb").read_text()
    return n


def _leftovers(ctx: BookContext) -> list[str]:
    """Files and folders neither the current generation nor a run in progress references."""
    book = ctx.run_dir / ".book"
    current = (book / os.readlink(book / "current")).name
    out = [p.name for p in (book / "generations").iterdir() if p.name != current]
    for folder in ("staging", "aside", "journal", "versions"):
        out += [p.name for p in (book / folder).glob("*")]
    out += [p.name for p in book.iterdir() if ".tmp" in p.name or p.name.endswith(".link")]
    out += [p.name for p in ctx.run_dir.iterdir() if p.name.startswith(".") and p.name != ".book"]
    out += [p.name for p in (ctx.project_root / "chapters").iterdir() if "kernel" in p.name]
    return out


def _kernels_of(pid: int) -> list[int]:
    """Processes started by ``pid`` as Jupyter kernels (JPY_PARENT_PID in their environment)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                env = (proc / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"JPY_PARENT_PID={pid}".encode() in env:
                found.append(int(proc.name))
    return found


def _measure_mutations(ctx: BookContext) -> int:
    """Build alpha (n=5) and count the file-system changes of a re-run with n=3; reset to n=5."""
    build_book(ctx, only=["alpha"])
    done = _run_child(ctx, "run", "alpha", json.dumps({"n": NEW_N}), "0")
    assert done.returncode == 0, done.stderr
    n_mutations = int(done.stdout.split("MUTATIONS")[1].split()[0])
    assert _assert_consistent(ctx) == NEW_N
    run_chapter(ctx, "alpha", force=True)
    assert _assert_consistent(ctx) == OLD_N
    return n_mutations


def test_sigkill_at_any_file_system_step_leaves_old_or_new(toy):
    n_mutations = _measure_mutations(toy)
    assert n_mutations > 10
    seen = set()
    for seed in range(4):
        # Half of the draws land in the commit (the last steps), where a mix would appear.
        rng = random.Random(seed)
        kill_at = rng.randint(max(1, n_mutations - 25), n_mutations) if seed % 2 else rng.randint(1, n_mutations)
        killed = _run_child(toy, "run", "alpha", json.dumps({"n": NEW_N}), str(kill_at))
        assert killed.returncode == -signal.SIGKILL, (kill_at, killed.stderr)
        _wait_for_watchdog(toy)
        seen.add(_assert_consistent(toy))
        # The next run recovers under the lock: no leftover anywhere, the outputs still consistent.
        entry = run_chapter(toy, "alpha")
        assert entry["parameters"]["n"] == OLD_N
        assert _assert_consistent(toy) == OLD_N
        assert _leftovers(toy) == []
    assert seen <= {OLD_N, NEW_N}


def test_sigkill_at_a_random_time_ends_the_kernel_too(toy):
    build_book(toy, only=["alpha"])
    for seed in (11, 12):
        proc = _child(toy, "run", "alpha", json.dumps({"n": NEW_N, "sleep": 1.0}))
        time.sleep(random.Random(seed).uniform(0.5, 4.0))
        kernels = _kernels_of(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        _wait_for_watchdog(toy)
        _assert_consistent(toy)
        deadline = time.monotonic() + 15
        while any(Path(f"/proc/{k}").exists() for k in kernels) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [k for k in kernels if Path(f"/proc/{k}/status").exists()
                    and "zombie" not in Path(f"/proc/{k}/status").read_text()], "orphan kernel outlived its runner"
        lock = json.loads((toy.run_dir / ".book" / "lock").read_text() or "{}")
        run_chapter(toy, "alpha", overrides={"n": NEW_N})
        assert _assert_consistent(toy) == NEW_N
        assert _leftovers(toy) == []
        if lock.get("kernel_dir"):
            assert not Path(lock["kernel_dir"]).exists()  # the killed run's private kernel folder


def test_a_late_failing_cell_keeps_the_old_run_and_the_failed_notebook(toy):
    build_book(toy, only=["alpha"])
    before = {p: p.read_bytes() for p in (toy.run_dir / "alpha").rglob("*") if p.is_file()}
    manifest_before = json.loads((toy.run_dir / "manifest.json").read_text())
    with pytest.raises(ChapterFailed, match="alpha failed after writing its outputs"):
        run_chapter(toy, "alpha", overrides={"n": NEW_N, "fail_late": True})
    # The failing run had written its new values.npy: none of it is visible.
    assert {p: p.read_bytes() for p in (toy.run_dir / "alpha").rglob("*") if p.is_file()} == before
    assert _assert_consistent(toy) == OLD_N
    state = json.loads((toy.run_dir / "_state" / "alpha.json").read_text())
    assert state["status"] == "executed" and state["last_failure"]["parameters"]["n"] == NEW_N
    manifest = json.loads((toy.run_dir / "manifest.json").read_text())
    alpha_before = next(c for c in manifest_before["chapters"] if c["name"] == "alpha")
    alpha_after = next(c for c in manifest["chapters"] if c["name"] == "alpha")
    assert alpha_after["output_fingerprint"] == alpha_before["output_fingerprint"]
    failed = (toy.run_dir / "notebooks" / "02-alpha.failed.ipynb").read_text()
    assert "alpha failed after writing its outputs" in failed
    assert _leftovers(toy) == []
    # A downstream chapter runs on the last good alpha (0+2+4+6+8), not on the failed attempt.
    run_chapter(toy, "beta")
    assert json.loads((toy.run_dir / "beta" / "total.json").read_text())["total"] == 20.0


def test_two_runs_at_once_on_one_run_dir_the_second_gets_the_lock_message(toy):
    build_book(toy, only=["alpha"])
    first = _child(toy, "run", "alpha", json.dumps({"sleep": 4.0}))
    lock_file = toy.run_dir / ".book" / "lock"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = json.loads(lock_file.read_text() or "{}") if lock_file.is_file() else {}
        if info.get("pid") == first.pid and info.get("state") == "held":
            break
        time.sleep(0.1)
    second = _run_child(toy, "cli", "run", "alpha", "-p", f"n={NEW_N}")
    assert second.returncode == 2
    message = second.stderr.strip().splitlines()[-1]
    assert f"is in use by pid {first.pid}" in message and "toy_child.py" in message and "--wait" in message
    waited = _run_child(toy, "cli", "run", "alpha", "-p", f"n={NEW_N}", "--wait")
    assert first.wait(timeout=120) == 0
    assert waited.returncode == 0, waited.stderr
    assert _assert_consistent(toy) == NEW_N


def test_runs_on_two_profiles_at_once_use_private_kernel_folders(toy):
    other = toy.project_root / "params" / "other"
    other.mkdir()
    for path in (toy.project_root / "params" / "demo").iterdir():
        (other / path.name).write_text(path.read_text())
    procs = [_child(toy, "cli", "run", "alpha", "--profile", p, "-p", "sleep=2.0") for p in ("demo", "other")]
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    folders = []
    for profile in ("demo", "other"):
        text = (toy.project_root / "runs" / profile / "notebooks" / "02-alpha.ipynb").read_text()
        connection = Path(text.split("connection file: ")[1].split("\\n")[0])
        folders.append(connection.parent)
        assert not connection.parent.exists()  # removed when the chapter ended
        assert toy.project_root not in connection.parents
    assert folders[0] != folders[1]
    assert not [p for p in (toy.project_root / "chapters").iterdir() if "kernel" in p.name]


def test_a_chapter_refuses_an_upstream_that_is_stale(tmp_path, monkeypatch):
    install_toy_schemas(monkeypatch, with_gamma=True)
    ctx = BookContext(project_root=write_toy_project(tmp_path / "toy", with_gamma=True), log=lambda _m: None)
    build_book(ctx)
    run_chapter(ctx, "alpha", overrides={"n": NEW_N})  # alpha changes; beta has not re-run
    with pytest.raises(ChapterFailed) as info:
        run_chapter(ctx, "gamma", overrides={"factor": 2})
    message = str(info.value)
    assert "'beta', which is stale" in message and "'alpha'" in message
    assert "python -m skinmap run beta" in message
    run_chapter(ctx, "beta")
    entry = run_chapter(ctx, "gamma", overrides={"factor": 2})
    assert entry["status"] == "executed"
    assert json.loads((ctx.run_dir / "gamma" / "scaled.json").read_text())["scaled"] == 2 * (0 + 2 + 4)


def test_every_cache_folder_survives_runs(toy):
    build_book(toy, only=["alpha"])
    app_file = toy.run_dir / "alpha" / "app_cache" / "upload" / "a.npy"  # as the atlas app writes it
    app_file.parent.mkdir(parents=True)
    app_file.write_bytes(b"app")
    cache_file = toy.run_dir / "alpha" / "cache" / "vectors.npy"
    cache_file.parent.mkdir(parents=True)
    cache_file.write_bytes(b"vectors")
    for overrides in ({"n": NEW_N}, {"n": OLD_N}):
        entry = run_chapter(toy, "alpha", overrides=overrides)
        assert entry["files"] == ["values.npy"]
        assert app_file.read_bytes() == b"app" and cache_file.read_bytes() == b"vectors"
    with pytest.raises(ChapterFailed):
        run_chapter(toy, "alpha", overrides={"fail": True})
    assert app_file.read_bytes() == b"app" and cache_file.read_bytes() == b"vectors"


def test_files_are_created_with_the_process_umask(toy):
    old = os.umask(0o002)
    try:
        build_book(toy, only=["alpha"])
    finally:
        os.umask(old)
    run = toy.run_dir
    for path in (run / "alpha" / "values.npy", run / "_state" / "alpha.json", run / "manifest.json",
                 run / "notebooks" / "02-alpha.ipynb", toy.figures_dir / "alpha-values.png"):
        assert path.stat().st_mode & 0o777 == 0o664, path


def _make_read_only(path: Path, read_only: bool) -> None:
    if os.geteuid() == 0:  # root ignores permissions: the immutable attribute stops root too
        subprocess.run(["chattr", "-R", "+i" if read_only else "-i", str(path)], capture_output=True, check=False)
    else:
        for p in [path, *path.rglob("*")]:
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o555 if read_only else 0o755)


def test_a_read_only_run_dir_serves_cached_chapters_and_names_the_problem(toy):
    if os.geteuid() == 0 and subprocess.run(["which", "chattr"], capture_output=True).returncode:
        pytest.skip("running as root without chattr: cannot make a folder read-only")
    build_book(toy, only=["alpha"])
    snapshot = {p: p.read_bytes() for p in toy.run_dir.rglob("*") if p.is_file()}
    _make_read_only(toy.run_dir, True)
    try:
        probe = toy.run_dir / ".book" / "probe"
        with pytest.raises(OSError):
            probe.write_text("x")
        assert run_chapter(toy, "alpha")["status"] == "cached"
        with pytest.raises(Exception) as info:
            run_chapter(toy, "alpha", overrides={"n": NEW_N})
        message = str(info.value)
        assert "read-only" in message and "'alpha'" in message and "\n" not in message
    finally:
        _make_read_only(toy.run_dir, False)
    assert {p: p.read_bytes() for p in toy.run_dir.rglob("*") if p.is_file()} == snapshot


def test_figures_follow_the_run_dir_and_profiles_are_names(toy, tmp_path):
    elsewhere = BookContext(project_root=toy.project_root, run_dir=tmp_path / "elsewhere", log=lambda _m: None)
    assert elsewhere.figures_dir == (tmp_path / "elsewhere" / "figures").resolve()
    build_book(elsewhere, only=["alpha"])
    assert (tmp_path / "elsewhere" / "figures" / "alpha-values.png").is_file()
    assert not (toy.project_root / "figures").exists()
    assert toy.figures_dir == toy.project_root / "figures" / "demo"
    from skinmap.book.params import ParamsError

    for bad in ("../params/demo", "demo/../x", "", ".hidden", "a b"):
        with pytest.raises(ParamsError, match="not a profile name"):
            BookContext(project_root=toy.project_root, profile=bad)


def test_a_run_dir_from_before_versioning_is_adopted(toy):
    """Real folders (the old layout) become the first generation; caches are kept."""
    build_book(toy, only=["alpha"])
    run = toy.run_dir
    legacy = toy.project_root / "legacy"
    legacy.mkdir()
    for name in ("alpha", "_state", "notebooks", "manifest.json"):
        src = run / name
        dst = legacy / name
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            dst.write_bytes(src.read_bytes())
    shutil.rmtree(run)
    shutil.copytree(legacy, run)
    (run / "alpha" / "cache").mkdir()
    (run / "alpha" / "cache" / "kept.bin").write_bytes(b"kept")
    assert run_chapter(toy, "alpha")["status"] == "cached"
    assert (run / "_state").is_symlink() and (run / "alpha" / "cache").is_symlink()
    assert (run / "alpha" / "cache" / "kept.bin").read_bytes() == b"kept"
    assert _assert_consistent(toy) == OLD_N
    assert _leftovers(toy) == []
