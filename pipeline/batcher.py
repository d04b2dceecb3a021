"""Micro-batching: callers in many threads submit single requests; one worker runs them in batches.

`MicroBatcher(run_batch, max_batch, max_wait_s)`: `submit(item)` returns a Future; the worker takes the
first waiting request, waits up to `max_wait_s` for more (never longer than needed to fill `max_batch`),
calls `run_batch(items) -> results` once and resolves each future with its result (or the batch's
exception). The engine-specific part — how items are stacked — lives in `run_batch`, so the same class
serves a process with several streams, and a serving layer (e.g. Ray Serve) can call `run_batch` directly.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any


class MicroBatcher:
    """Collects requests from any thread and runs them `max_batch` at a time in one worker thread."""

    def __init__(self, run_batch: Callable[[list[Any]], Sequence[Any]], max_batch: int = 8,
                 max_wait_s: float = 0.002, name: str = "batcher"):
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError("MicroBatcher needs max_batch >= 1 and max_wait_s >= 0")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.batch_sizes: deque[int] = deque(maxlen=1000)     # recent batch sizes, for stats
        self._queue: deque[tuple[Any, Future]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._loop, name=name, daemon=True)
        self._worker.start()

    def submit(self, item: Any) -> Future:
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("MicroBatcher is closed")
            self._queue.append((item, future))
            self._cond.notify()
        return future

    def __call__(self, item: Any) -> Any:
        """Submit and wait for the result (re-raises the batch's exception)."""
        return self.submit(item).result()

    def _take(self) -> list[tuple[Any, Future]] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            if len(self._queue) < self.max_batch and self.max_wait_s > 0:
                # a short wait for the other streams' requests of this frame
                self._cond.wait_for(lambda: len(self._queue) >= self.max_batch or self._closed, self.max_wait_s)
            return [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            items = [item for item, _ in batch]
            futures = [f for _, f in batch if f.set_running_or_notify_cancel()]
            self.batch_sizes.append(len(items))
            try:
                results = list(self.run_batch(items))
                if len(results) != len(items):
                    raise RuntimeError(f"run_batch returned {len(results)} results for {len(items)} requests")
            except BaseException as exc:             # handed to every caller of this batch
                for future in futures:
                    future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results):
                if future in futures:
                    future.set_result(result)

    def close(self) -> None:
        """Finish the queued requests, then stop the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._worker.join()
