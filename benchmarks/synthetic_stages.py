"""Stages of known cost for benchmarking the runtime: sleep (no CPU) or numpy work (GIL released)."""
from __future__ import annotations

import time

import numpy as np

from pipeline.packets import FramePacket
from pipeline.stage import Stage

STAGE_KINDS = ("sleep", "numpy")


class SleepStage(Stage):
    """Waits `ms` milliseconds per packet without using the CPU (an ideal accelerator call)."""

    def __init__(self, name: str, ms: float):
        self.name, self.ms = name, ms

    def process(self, packet: FramePacket) -> FramePacket:
        time.sleep(self.ms / 1000.0)
        return packet


class NumpyStage(Stage):
    """A fixed amount of numpy math per packet: about `ms` milliseconds on an idle core.

    The work is calibrated once (iterations per millisecond, measured alone), so when stages compete
    for the cores they really slow down — the benchmark then shows what 2 cores can overlap. numpy
    releases the GIL inside each ufunc, so stages in different threads run in parallel.
    """

    def __init__(self, name: str, ms: float, elements: int = 65536):
        self.name, self.ms = name, ms
        self._a = np.linspace(1.0, 2.0, elements)
        self._b = np.empty_like(self._a)
        self.iterations = max(int(round(ms * self._iterations_per_ms())), 0)

    def _step(self) -> None:
        np.sqrt(self._a, out=self._b)
        np.multiply(self._b, self._b, out=self._b)

    def _iterations_per_ms(self, probe_ms: float = 30.0) -> float:
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < probe_ms / 1000.0:
            self._step()
            count += 1
        return count / (elapsed * 1000.0)

    def process(self, packet: FramePacket) -> FramePacket:
        for _ in range(self.iterations):
            self._step()
        return packet


def parse_costs(text: str) -> list[float]:
    """'10,20,15' → [10.0, 20.0, 15.0] (milliseconds per stage)."""
    try:
        costs = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"stage costs must be comma-separated milliseconds, like 10,20,15 (got {text!r})") from None
    if not costs or any(c < 0 for c in costs):
        raise ValueError(f"stage costs must be non-negative milliseconds, like 10,20,15 (got {text!r})")
    return costs


def make_stages(costs_ms: list[float], kind: str = "sleep") -> list[Stage]:
    """One stage per cost, named s1_10ms, s2_20ms, ..."""
    if kind not in STAGE_KINDS:
        raise ValueError(f"stage kind must be one of {', '.join(STAGE_KINDS)}")
    cls = SleepStage if kind == "sleep" else NumpyStage
    return [cls(f"s{i + 1}_{ms:g}ms", ms) for i, ms in enumerate(costs_ms)]
