"""Shared benchmark harness: time a function in a fresh child process and read its peak memory.

Every benchmark prints ``BENCH <name>: ours=<s> baseline=<s> ratio=<x> peak_ours=<MiB>
peak_baseline=<MiB>`` so results compare within one run on one machine, never against a number
fixed in advance. Benchmarks are never asserted in the test suite.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from collections.abc import Callable
from typing import Any


def _child(conn, fn, args, kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    conn.send((seconds, peak_mib, result))
    conn.close()


def measure(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, float, Any]:
    """Run ``fn(*args, **kwargs)`` in a forked child; return (seconds, peak RSS MiB, result).

    The child's peak RSS includes the interpreter and whatever the parent had already loaded, so
    compare ours and the baseline's peaks with each other, not with zero.
    """
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, args, kwargs))
    proc.start()
    child.close()
    try:
        out = parent.recv()
    except EOFError as exc:
        raise RuntimeError(f"benchmark child died with exit code {proc.exitcode}") from exc
    proc.join()
    return out


def report(name: str, ours: tuple[float, float, Any], baseline: tuple[float, float, Any], **extra: Any) -> str:
    """Print and return the one-line benchmark report."""
    ratio = baseline[0] / ours[0] if ours[0] > 0 else float("inf")
    fields = " ".join(f"{k}={v}" for k, v in extra.items())
    line = (
        f"BENCH {name}: ours={ours[0]:.3f}s baseline={baseline[0]:.3f}s speedup={ratio:.1f}x "
        f"peak_ours={ours[1]:.0f}MiB peak_baseline={baseline[1]:.0f}MiB {fields}".rstrip()
    )
    print(line, flush=True)
    return line
