"""Null sink for benchmarks: counts frames, keeps nothing."""
from __future__ import annotations

from pipeline.packets import FramePacket
from pipeline.stage import Sink


class NullSink(Sink):
    """Discards every packet; `frames` counts them."""

    name = "null"

    def __init__(self):
        self.frames = 0

    def write(self, packet: FramePacket) -> None:
        self.frames += 1
