"""Test one stage alone through the real runtime: `run_stage(stage, packets) -> list[FramePacket]`."""
from __future__ import annotations

import asyncio
import time
from fractions import Fraction
from typing import Iterable

import numpy as np

from pipeline.graph import Graph
from pipeline.packets import FramePacket
from pipeline.stage import Sink, Source, Stage


def as_packet(item: FramePacket | np.ndarray, seq: int, fps: int = 30) -> FramePacket:
    """A packet as is, or a frame wrapped in one (seq, pts at `fps`)."""
    if isinstance(item, FramePacket):
        return item
    return FramePacket(seq=seq, frame=item, pts=seq, time_base=Fraction(1, fps))


class ListSource(Source):
    """Replays a list of packets (capture_time stamped when read)."""

    name = "list"

    def __init__(self, packets: Iterable[FramePacket | np.ndarray], live: bool = False):
        self._packets = [as_packet(p, i) for i, p in enumerate(packets)]
        self._next = 0
        self.live = live

    def read(self) -> FramePacket | None:
        if self._next >= len(self._packets):
            return None
        packet = self._packets[self._next]
        self._next += 1
        packet.capture_time = time.perf_counter()
        return packet


class ListSink(Sink):
    """Collects every packet it is given."""

    name = "collect"

    def __init__(self):
        self.packets: list[FramePacket] = []

    def write(self, packet: FramePacket) -> None:
        self.packets.append(packet)


async def arun_stage(stage: Stage | list[Stage], packets: Iterable[FramePacket | np.ndarray]) -> list[FramePacket]:
    """Async form of `run_stage`, for tests that already run an event loop."""
    sink = ListSink()
    stages = stage if isinstance(stage, list) else [stage]
    await Graph(ListSource(packets), stages, sink, policy="offline", name="harness").run()
    return sink.packets


def run_stage(stage: Stage | list[Stage], packets: Iterable[FramePacket | np.ndarray]) -> list[FramePacket]:
    """Run `packets` (or bare RGB frames) through `stage` (start → process each → close); return the outputs."""
    return asyncio.run(arun_stage(stage, packets))
