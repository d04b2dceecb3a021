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
    """Keeps a core busy with numpy math for `ms` milliseconds of wall time per packet.

    Time-bounded rather than a fixed amount of work, so the nominal cost holds on any machine;
    numpy releases the GIL inside each ufunc, so stages in different threads overlap.
    """

    def __init__(self, name: str, ms: float, elements: int = 65536):
        self.name, self.ms = name, ms
        self._a = np.linspace(1.0, 2.0, elements)
        self._b = np.empty_like(self._a)

    def process(self, packet: FramePacket) -> FramePacket:
        deadline = time.perf_counter() + self.ms / 1000.0
        while time.perf_counter() < deadline:
            np.sqrt(self._a, out=self._b)
            np.multiply(self._b, self._b, out=self._b)
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
