"""Real-time pacing: deliver frames at their source time, as a camera would."""
from __future__ import annotations

import time


class Pacer:
    """Sleeps until a frame's source time (seconds since the first frame) has come on the wall clock."""

    def __init__(self) -> None:
        self._start: float | None = None
        self._first: float = 0.0

    def wait_until(self, seconds: float) -> None:
        now = time.perf_counter()
        if self._start is None:
            self._start, self._first = now, seconds
        due = self._start + (seconds - self._first)
        if due > now:
            time.sleep(due - now)
