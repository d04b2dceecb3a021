"""How late the server's event loop runs: every peer's ICE consent replies, DTLS and RTP wait behind
whatever holds the loop (or the CPU, or the GIL), so this lateness is what the shared scheduler keeps low."""
from __future__ import annotations

import asyncio
import collections
import time

import numpy as np


class LoopLagMonitor:
    """A task that sleeps `interval_s` over and over and records how much later than asked it woke up."""

    def __init__(self, interval_s: float = 0.02, window_s: float = 2.0):
        self.interval_s = interval_s
        self._samples: collections.deque[tuple[float, float]] = collections.deque()   # (when, lag seconds)
        self._window_s = window_s

    async def run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            now = time.perf_counter()
            self.record(now, now - start - self.interval_s)

    def record(self, when: float, lag_s: float) -> None:
        self._samples.append((when, max(lag_s, 0.0)))
        while self._samples and self._samples[0][0] < when - self._window_s:
            self._samples.popleft()

    def p95_ms(self, since: float | None = None) -> float:
        """95th percentile of the lateness over the last window (or since `since`, a perf_counter time), ms;
        0 before any sample. A loop blocked right now counts too: the time since the last wake-up beyond one
        interval is lateness already."""
        lags = [lag for when, lag in self._samples if since is None or when >= since]
        if self._samples:
            lags.append(time.perf_counter() - self._samples[-1][0] - self.interval_s)
        return float(np.percentile(lags, 95)) * 1000.0 if lags else 0.0
