"""The server's shared frame budget. Every peer's graph takes its frames through a `PeerGate`; one
`FairShareScheduler` sets each gate's rate and the resolution all peers work at, so that

- the event loop (ICE consent, DTLS, RTP of every peer) stays on time whatever the stages cost: when it
  runs late, fewer frames enter the stages — stage work is what gives way, never a session;
- when the machine cannot keep up, every peer loses the same: a max-min fair share of the frames per
  second, then (all together) a lower resolution.

Once a second, from the loop's lateness (`LoopLagMonitor`) and the frames each peer offered, its graph took
and the peer was sent back:
  late (p95 above `lag_high_ms`)         → total rate = 0.75 × the frames sent back in the last second
  on time (p95 below `lag_low_ms`) while some peer is held back by its share → total rate × 1.1 + 1
and the resolution steps down (1 → 0.75 → 0.5) while the share per peer is under `scale_down_fps`, back up
over `scale_up_fps`. The same measurements give the capacity admission works from (webrtc/admission.py):
frames sent back per second — never frames taken, which a graph busier than its input may drop — at full
resolution, the median of the last `capacity_window` seconds.
"""
from __future__ import annotations

import asyncio
import collections
import math
import statistics
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

from webrtc.loop_lag import LoopLagMonitor


@dataclass(frozen=True)
class ShareLimits:
    lag_high_ms: float = 60.0       # consent checks give up after 0.5 s: stay far below
    lag_low_ms: float = 25.0
    min_peer_fps: float = 2.0       # the floor: a slow stream, never a dead one
    scale_down_fps: float = 10.0
    scale_up_fps: float = 20.0      # ≥ scale_down_fps / 0.75² (a step up costs ~1.8× per frame): no flapping
    scales: tuple[float, ...] = (1.0, 0.75, 0.5)
    scale_hold_s: float = 5.0       # between resolution steps down: let the rate settle first
    scale_up_hold_s: float = 15.0   # and before a step back up: degrade quickly, recover carefully
    interval_s: float = 1.0
    cpu_headroom: float = 0.8       # capacity estimates count on this much of the idle CPU
    capacity_window: int = 10       # capacity = the median of this many one-second estimates


class PeerGate:
    """One peer's tap on the budget (thread-safe): its source counts frames as they arrive, waits for its turn
    before taking one, and takes it at the scale the scheduler set; its output counts the edited frames sent."""

    def __init__(self):
        self._lock = threading.Lock()
        self.fps = math.inf             # allowed frames per second (inf: not limited)
        self.scale = 1.0                # resolution factor applied when the frame is taken
        self.arrived = 0                # frames the peer sent
        self.taken = 0                  # frames its graph took
        self.sent = 0                   # edited frames handed to the peer's encoder
        self._next_at = 0.0

    def arrive(self) -> None:
        with self._lock:
            self.arrived += 1

    def wait_turn(self, stopping: Callable[[], bool]) -> bool:
        """Block until this peer may take its next frame; False when `stopping()` turns true meanwhile."""
        while True:
            with self._lock:
                delay = self._next_at - time.perf_counter()
            if delay <= 0:
                break
            if stopping():
                return False
            time.sleep(min(delay, 0.05))
        with self._lock:
            now, interval = time.perf_counter(), (1.0 / self.fps if self.fps < math.inf else 0.0)
            self._next_at = max(self._next_at, now - interval) + interval     # no more than one frame of catch-up
            self.taken += 1
        return True

    def send(self) -> None:
        with self._lock:
            self.sent += 1

    def set(self, fps: float, scale: float) -> None:
        with self._lock:
            self.fps, self.scale = fps, scale


def idle_cpu_seconds() -> float | None:
    """CPU time the whole machine has spent idle so far (Linux /proc/stat; None elsewhere)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")      # idle + iowait
    except (OSError, ValueError, IndexError):
        return None


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def fair_shares(total: float, demands: list[float]) -> list[float]:
    """Max-min fair split of `total` frames/s: nobody gets more than they ask, the rest is split evenly."""
    shares = [0.0] * len(demands)
    left = total
    for k, i in enumerate(sorted(range(len(demands)), key=demands.__getitem__)):
        shares[i] = min(demands[i], left / (len(demands) - k))
        left -= shares[i]
    return shares


@dataclass
class Tick:
    """What the scheduler measured over its last interval (also shown in /api/health)."""

    peers: int = 0
    lag_p95_ms: float = 0.0
    offered_fps: float = 0.0        # frames/s the peers sent, all together
    taken_fps: float = 0.0          # frames/s the graphs took
    sent_fps: float = 0.0           # edited frames/s sent back (a busy graph drops some of what it took)
    cpu_cores: float = 0.0          # the process's CPU use, in cores
    idle_cores: float | None = None # the machine's idle CPU, in cores (None: unknown)
    rate_fps: float = math.inf      # the budget now (inf: not limiting)
    scale: float = 1.0


class FairShareScheduler:
    """Owns the total frame rate and the resolution scale; `run()` adjusts them once a second."""

    def __init__(self, lag: LoopLagMonitor, limits: ShareLimits | None = None):
        self.lag = lag
        self.limits = limits or ShareLimits()
        self.gates: list[PeerGate] = []
        self.rate = math.inf
        self.scale = 1.0
        self.throttled_at = -math.inf   # perf_counter when lateness last pulled the rate down
        self.last = Tick()
        self._scaled_at = -math.inf
        self._estimates: collections.deque[float] = collections.deque(maxlen=self.limits.capacity_window)
        self._counts: dict[PeerGate, tuple[int, int, int]] = {}
        self._clock = (time.perf_counter(), time.process_time(), idle_cpu_seconds())   # at the previous step

    def add(self) -> PeerGate:
        gate = PeerGate()
        gate.set(self._even_share(len(self.gates) + 1), self.scale)
        self.gates.append(gate)
        self._counts[gate] = (0, 0, 0)
        return gate

    def remove(self, gate: PeerGate) -> None:
        if gate in self.gates:
            self.gates.remove(gate)
        self._counts.pop(gate, None)

    def _even_share(self, peers: int) -> float:
        return max(self.rate / max(peers, 1), self.limits.min_peer_fps)

    async def run(self) -> None:
        while True:
            since = time.perf_counter()
            await asyncio.sleep(self.limits.interval_s)
            self.step(self.lag.p95_ms(since))        # this interval only: the last step's effect, not older

    def step(self, lag_p95_ms: float, now: float | None = None, cpu: float | None = None,
             idle: float | None = None) -> Tick:
        """One control step from the lateness just measured; sets every gate. `now`, `cpu`, `idle`
        (perf_counter, process CPU seconds, machine idle seconds) are read from the clocks unless given."""
        limits = self.limits
        now = time.perf_counter() if now is None else now
        cpu = time.process_time() if cpu is None else cpu
        idle = idle_cpu_seconds() if idle is None else idle
        dt = max(now - self._clock[0], 1e-3)
        cpu_cores = (cpu - self._clock[1]) / dt
        idle_cores = None if idle is None or self._clock[2] is None else max(idle - self._clock[2], 0.0) / dt
        self._clock = (now, cpu, idle)
        offered, taken, sent = [], [], []
        for gate in self.gates:
            arrived0, taken0, sent0 = self._counts[gate]
            offered.append((gate.arrived - arrived0) / dt)
            taken.append((gate.taken - taken0) / dt)
            sent.append((gate.sent - sent0) / dt)
            self._counts[gate] = (gate.arrived, gate.taken, gate.sent)
        peers, floor, scale = len(self.gates), limits.min_peer_fps * len(self.gates), self.scale
        if lag_p95_ms > limits.lag_high_ms and peers:
            self.rate = max(0.75 * min(sum(sent), self.rate), floor)
            self.throttled_at = now
        elif lag_p95_ms < limits.lag_low_ms and self.rate < math.inf:
            held_back = any(o > 1.05 * g.fps and t >= 0.85 * g.fps - 1.0      # a frame of slack: counts are whole
                            for o, t, g in zip(offered, taken, self.gates))
            if held_back:
                self.rate = self.rate * 1.1 + 1.0
            elif not peers or self.rate * 1.05 >= sum(offered):
                self.rate = math.inf            # it covers what everyone sends (the same slack): stop limiting
        self._step_scale(now, peers)
        demands = [max(o, limits.min_peer_fps) for o in offered]
        for gate, demand, share in zip(self.gates, demands, fair_shares(self.rate, demands)):
            gate.set(math.inf if share >= demand else max(share, limits.min_peer_fps), self.scale)
        self.last = Tick(peers, lag_p95_ms, sum(offered), sum(taken), sum(sent), cpu_cores, idle_cores, self.rate,
                         self.scale)
        estimate = self._estimate(now)
        if estimate is not None:
            self._estimates.append(estimate * scale ** 2)
        return self.last

    def _step_scale(self, now: float, peers: int) -> None:
        limits, scales = self.limits, self.limits.scales
        if not peers:
            return
        share, level, since = self.rate / peers, scales.index(self.scale), now - self._scaled_at
        if share < limits.scale_down_fps and level + 1 < len(scales) and since >= limits.scale_hold_s:
            self.scale, self._scaled_at = scales[level + 1], now
        elif (share > limits.scale_up_fps or self.rate == math.inf) and level > 0 and since >= limits.scale_up_hold_s:
            self.scale, self._scaled_at = scales[level - 1], now

    def capacity_fps(self) -> float | None:
        """Frames/s the stages can send back at full resolution without the loop running late: the median of
        the last `capacity_window` estimates made while frames flowed (kept while nobody is connected); None
        until then. An estimate made at a lower resolution counts as scale² of it at full resolution: no more
        than a frame's pixels shrank by, so a lower resolution never makes room for a newcomer on paper."""
        return statistics.median(self._estimates) if self._estimates else None

    def _estimate(self, now: float) -> float | None:
        """From the last interval, at the resolution it ran at: the frames sent back, extrapolated to the CPU
        this process could use — what it used plus `cpu_headroom` of what the machine left idle (others' work
        counts against it), never beyond `cpu_headroom` of its cores — and no more than the budget while
        lateness limited it in the last 10 s."""
        tick, headroom = self.last, self.limits.cpu_headroom
        if tick.sent_fps < 1.0 or tick.cpu_cores <= 0.0:
            return None
        budget = headroom * usable_cores()
        if tick.idle_cores is not None:
            budget = min(budget, tick.cpu_cores + headroom * tick.idle_cores)
        estimate = max(tick.sent_fps * budget / tick.cpu_cores, tick.sent_fps)
        if now - self.throttled_at < 10.0 and self.rate < math.inf:
            estimate = min(estimate, self.rate)
        return estimate
