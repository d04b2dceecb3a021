"""The `Stage`, `Source` and `Sink` abstractions; none of them knows about the graph."""
from __future__ import annotations

from pipeline.packets import FramePacket


class Stage:
    """Gets a packet, returns a packet (or None to drop it). `process` runs in the stage's own thread."""

    name: str = "stage"

    async def start(self) -> None:
        """Acquire resources (models, devices). Called once before the first packet."""

    def process(self, packet: FramePacket) -> FramePacket | None:
        raise NotImplementedError

    async def close(self) -> None:
        """Release resources. Called once, also after errors."""


class Source:
    """Produces packets. `read` runs in the source's own thread and returns None at end of stream."""

    name: str = "source"
    live: bool = False              # live sources (camera, WebRTC) get drop-oldest queues

    async def start(self) -> None:
        pass

    def read(self) -> FramePacket | None:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class Sink:
    """Consumes packets. `write` runs in the sink's own thread."""

    name: str = "sink"

    async def start(self) -> None:
        pass

    def write(self, packet: FramePacket) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        pass
