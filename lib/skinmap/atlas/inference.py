"""A bounded, single-flight queue in front of the embedding model.

Why each property:

* **one worker thread**: the embedding models (torch / ONNX sessions) are not re-entrant, and on a
  CPU machine two inferences at once only share the same cores;
* **single flight**: uploads are content-addressed (the key is the SHA-256 of the bytes), so
  concurrent uploads of the same image join the one job already running or waiting for it
  instead of embedding the picture again (200 simultaneous uploads of one image cost one
  inference);
* **bounded**: at most ``max_pending`` distinct jobs wait or run. Beyond that :meth:`submit`
  raises :class:`QueueFull` at once, with a ``retry_after`` estimate (seconds) from the mean time
  of recent jobs, so the server answers ``503`` with ``Retry-After`` instead of letting requests
  pile up behind the model with no bound on their wait.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["QueueFull", "InferenceQueue"]


class QueueFull(RuntimeError):
    """The queue holds ``max_pending`` jobs already; ``retry_after`` seconds is a fair wait."""

    def __init__(self, pending: int, retry_after: int):
        super().__init__(f"the embedding queue is full ({pending} images waiting); retry in {retry_after} s")
        self.pending = pending
        self.retry_after = retry_after


class InferenceQueue:
    """Run ``job(*args)`` on one worker thread, at most ``max_pending`` distinct keys at a time.

    Parameters
    ----------
    max_pending : int
        Jobs that may wait or run at once (distinct keys); must be at least 1.
    initial_seconds : float
        Assumed duration of one job before any has been timed (used for ``Retry-After``).
    """

    def __init__(self, *, max_pending: int = 8, initial_seconds: float = 1.0):
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self.max_pending = int(max_pending)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atlas-inference")
        self._lock = threading.Lock()
        self._inflight: dict[Hashable, Future] = {}
        self._mean_seconds = float(initial_seconds)
        self._n_timed = 0

    @property
    def pending(self) -> int:
        """Distinct jobs waiting or running now."""
        with self._lock:
            return len(self._inflight)

    @property
    def mean_seconds(self) -> float:
        """Mean duration of the last jobs (exponential average, weight 0.2 on the newest)."""
        return self._mean_seconds

    def retry_after(self, pending: int) -> int:
        """Whole seconds until ``pending`` queued jobs are likely done (at least 1)."""
        return max(1, math.ceil(self._mean_seconds * pending))

    def submit(self, key: Hashable, job: Callable[..., Any], *args: Any) -> Future:
        """The future of ``job(*args)`` for ``key``: the running one if ``key`` is in flight.

        Raises :class:`QueueFull` when ``max_pending`` other keys are in flight.
        """
        with self._lock:
            running = self._inflight.get(key)
            if running is not None:
                return running
            if len(self._inflight) >= self.max_pending:
                n = len(self._inflight)
                raise QueueFull(n, self.retry_after(n))
            future = self._executor.submit(self._run, key, job, args)
            self._inflight[key] = future
            return future

    def _run(self, key: Hashable, job: Callable[..., Any], args: tuple) -> Any:
        start = time.perf_counter()
        try:
            return job(*args)
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                # The job has stored its result before this point, so a request for the same
                # key arriving after the pop finds it in the cache instead of a new job.
                self._inflight.pop(key, None)
                self._n_timed += 1
                weight = 1.0 if self._n_timed == 1 else 0.2
                self._mean_seconds += weight * (elapsed - self._mean_seconds)

    def close(self) -> None:
        """Stop accepting jobs; running ones finish."""
        self._executor.shutdown(wait=False, cancel_futures=True)
