"""Who may join: a new peer is admitted only while the measured capacity at full resolution leaves everyone,
the newcomer included, at least `min_fps`, and while the event loop is on time; otherwise the offer gets a 503
whose message the page shows. Capacity is what the peers were sent back, not what the graphs took in, and a
server already working at a lower resolution counts it at that resolution's share of the pixels
(webrtc/fair_share.py): peers who are already degraded make no room for one more. Sessions still connecting
count too (for the few seconds they may take).
Before anything has been measured (a fresh server) peers are admitted and the shared scheduler slows
everyone down if need be; `max_peers` (optional) is a hard cap on top."""
from __future__ import annotations

from webrtc.fair_share import FairShareScheduler

ADMIT_MIN_FPS = 10.0                # a newcomer must leave everyone at least this many frames a second


class Admission:
    def __init__(self, scheduler: FairShareScheduler, max_peers: int | None = None, min_fps: float = ADMIT_MIN_FPS):
        self.scheduler = scheduler
        self.max_peers, self.min_fps = max_peers, min_fps

    def refusal(self, peers: int) -> str | None:
        """Why one more peer cannot join `peers` sessions now (None: it can)."""
        if self.max_peers is not None and peers >= self.max_peers:
            return f"the server is full ({peers} people connected, at most {self.max_peers}); try again later"
        if peers == 0:
            return None
        if self.scheduler.lag.p95_ms() > self.scheduler.limits.lag_high_ms:
            return "the server is overloaded right now and cannot take anyone else; try again in a minute"
        capacity = self.scheduler.capacity_fps()
        if capacity is not None and capacity / (peers + 1) < self.min_fps:
            return (f"the server is at capacity: {peers} people are connected and one more would leave everyone "
                    f"under {self.min_fps:g} frames a second; try again later")
        return None

    def status(self, peers: int) -> dict:
        """What admission works from, for /api/health."""
        tick, capacity = self.scheduler.last, self.scheduler.capacity_fps()
        return {"max_peers": self.max_peers, "capacity_fps": None if capacity is None else round(capacity, 1),
                "peers_at_min_fps": None if capacity is None else int(capacity // self.min_fps),
                "share_fps": None if not peers or tick.rate_fps == float("inf") else round(tick.rate_fps / peers, 1),
                "scale": self.scheduler.scale, "loop_lag_p95_ms": round(tick.lag_p95_ms, 1),
                "cpu_cores": round(tick.cpu_cores, 2),
                "idle_cores": None if tick.idle_cores is None else round(tick.idle_cores, 2)}
