"""`FaceStage`: the face tracker as a pipeline stage; fills `packet.face` from `packet.frame`."""
from __future__ import annotations

import asyncio
from dataclasses import replace

from pipeline.frame_size import MIN_FRAME_SIDE
from pipeline.packets import FaceResult, FramePacket
from pipeline.stage import Stage
from stages.face.config import FaceConfig
from stages.face.tracker import FaceTracker


class FaceStage(Stage):
    """Tracks faces in every packet. Time comes from the packet: source time (`packet.seconds`) when the
    source has a clock, else the capture time; the tracker keeps it strictly increasing for MediaPipe."""

    name = "face"

    def __init__(self, config: FaceConfig | None = None):
        self.config = config or FaceConfig()
        self.tracker: FaceTracker | None = None

    @property
    def smoothing(self) -> bool:
        return self.config.smoothing

    def set_smoothing(self, on: bool) -> None:
        """Switch the tracker's smoothing while the stage runs (thread-safe; takes effect from the next frame)."""
        self.config = replace(self.config, smoothing=bool(on))
        tracker = self.tracker
        if tracker is not None:
            tracker.set_smoothing(on)

    async def start(self) -> None:
        if self.tracker is None:     # loading the model takes a while: not on the event loop a server shares
            self.tracker = await asyncio.to_thread(FaceTracker, self.config)

    def process(self, packet: FramePacket) -> FramePacket:
        if self.tracker is None:      # used without the runtime calling start()
            self.tracker = FaceTracker(self.config)
        if min(packet.frame.shape[:2]) < MIN_FRAME_SIDE:     # a stream shrunk to a few pixels: no face in it
            packet.face = FaceResult(face=None)
            return packet
        seconds = packet.seconds
        packet.face = self.tracker.track(packet.frame, packet.capture_time if seconds is None else seconds)
        return packet

    async def close(self) -> None:
        if self.tracker is not None:
            self.tracker.close()
            self.tracker = None
