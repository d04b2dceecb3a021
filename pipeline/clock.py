"""Source clocks: the time base of generated frames, and real-time pacing like a camera's."""
from __future__ import annotations

import time
from fractions import Fraction


def frame_time_base(fps: float) -> Fraction:
    """1/fps when the rate is whole (pts then count frames), else milliseconds."""
    return Fraction(1, round(fps)) if float(fps).is_integer() else Fraction(1, 1000)


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
