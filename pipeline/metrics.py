"""Run metrics recorded by the graph runtime: per-stage latency percentiles, fps, drops, end-to-end latency."""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

WINDOW = 4096          # samples kept per series: enough for stable p99, bounded for long live runs


def percentiles(samples_s) -> dict[str, float]:
    """p50/p95/p99/mean in milliseconds of a sequence of durations in seconds (zeros when empty)."""
    values = np.asarray(list(samples_s), dtype=np.float64) * 1000.0
    if values.size == 0:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "mean_ms": 0.0}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99), "mean_ms": float(values.mean())}


@dataclass
class StageStats:
    """Counters and recent durations of one node (source, stage or sink)."""

    name: str
    kind: str                                   # "source", "stage" or "sink"
    processed: int = 0
    dropped: int = 0                            # dropped from this node's input queue (live policy)
    filtered: int = 0                           # the stage returned None
    durations: deque = field(default_factory=lambda: deque(maxlen=WINDOW))
    first_exit: float | None = None
    last_exit: float | None = None

    def fps(self) -> float:
        if self.processed < 2 or self.first_exit is None or self.last_exit == self.first_exit:
            return 0.0
        return (self.processed - 1) / (self.last_exit - self.first_exit)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "processed": self.processed, "dropped": self.dropped,
                "filtered": self.filtered, "fps": self.fps(), **percentiles(self.durations)}


@dataclass
class RunMetrics:
    """What a finished run measured; `as_dict()` for JSON, `table()` for people."""

    name: str
    stages: dict[str, dict[str, Any]]
    frames_in: int
    frames_out: int
    drops: int
    seconds: float
    fps: float                                  # sink frames per second, steady state (first → last write)
    e2e: dict[str, float]                       # capture → sink write latency percentiles
    e2e_series: list[tuple[float, float]]       # (seconds since start, latency ms) per written frame
    policy: str = "offline"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "policy": self.policy, "frames_in": self.frames_in,
                "frames_out": self.frames_out, "drops": self.drops, "seconds": self.seconds,
                "fps": self.fps, "e2e": self.e2e, "stages": self.stages,
                "e2e_series": [list(p) for p in self.e2e_series]}

    def table(self) -> str:
        head = f"{'stage':<22}{'frames':>8}{'drops':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'fps':>8}"
        rows = [head, "-" * len(head)]
        for name, s in self.stages.items():
            rows.append(f"{name:<22}{s['processed']:>8}{s['dropped']:>7}{s['p50_ms']:>9.1f}"
                        f"{s['p95_ms']:>9.1f}{s['p99_ms']:>9.1f}{s['fps']:>8.1f}")
        rows.append("-" * len(head))
        rows.append(f"{'end-to-end':<22}{self.frames_out:>8}{self.drops:>7}{self.e2e['p50_ms']:>9.1f}"
                    f"{self.e2e['p95_ms']:>9.1f}{self.e2e['p99_ms']:>9.1f}{self.fps:>8.1f}")
        rows.append(f"{self.policy} run '{self.name}': {self.frames_in} frames in, {self.frames_out} out, "
                    f"{self.seconds:.2f} s")
        return "\n".join(rows)


class GraphMetrics:
    """Thread-safe recorder the graph writes into while running; `snapshot()` reads it live."""

    def __init__(self, name: str = "run", policy: str = "offline"):
        self.name = name
        self.policy = policy
        self._lock = threading.Lock()
        self._nodes: dict[str, StageStats] = {}
        self._e2e: deque = deque(maxlen=WINDOW)
        self._e2e_series: deque = deque(maxlen=WINDOW)
        self.started = time.perf_counter()
        self.frames_in = 0
        self.frames_out = 0

    def add_node(self, name: str, kind: str) -> None:
        with self._lock:
            self._nodes[name] = StageStats(name, kind)

    def reset_clock(self) -> None:
        self.started = time.perf_counter()

    def record(self, name: str, enter: float, exit_: float, filtered: bool = False) -> None:
        with self._lock:
            node = self._nodes[name]
            node.processed += 1
            node.filtered += int(filtered)
            node.durations.append(exit_ - enter)
            node.first_exit = exit_ if node.first_exit is None else node.first_exit
            node.last_exit = exit_
            if node.kind == "source":
                self.frames_in += 1

    def record_drops(self, name: str, count: int) -> None:
        with self._lock:
            self._nodes[name].dropped = count

    def record_output(self, capture_time: float, written: float) -> None:
        with self._lock:
            self.frames_out += 1
            self._e2e.append(written - capture_time)
            self._e2e_series.append((written - self.started, (written - capture_time) * 1000.0))

    def _sink_fps(self) -> float:
        sinks = [n for n in self._nodes.values() if n.kind == "sink"]
        return sinks[0].fps() if sinks else 0.0

    def snapshot(self) -> dict[str, Any]:
        """Live stats: per node counters and p50/p95/p99 ms, e2e latency, fps, drops."""
        with self._lock:
            return {"name": self.name, "policy": self.policy, "frames_in": self.frames_in,
                    "frames_out": self.frames_out, "fps": self._sink_fps(),
                    "drops": sum(n.dropped for n in self._nodes.values()),
                    "seconds": time.perf_counter() - self.started,
                    "e2e": percentiles(self._e2e),
                    "stages": {name: n.as_dict() for name, n in self._nodes.items()}}

    def finish(self) -> RunMetrics:
        snap = self.snapshot()
        with self._lock:
            series = list(self._e2e_series)
        return RunMetrics(name=self.name, policy=self.policy, stages=snap["stages"],
                          frames_in=snap["frames_in"], frames_out=snap["frames_out"], drops=snap["drops"],
                          seconds=snap["seconds"], fps=snap["fps"], e2e=snap["e2e"], e2e_series=series)
