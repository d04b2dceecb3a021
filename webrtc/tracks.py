"""Media glue between aiortc and the graph: a live Source fed by the incoming video track (paced and scaled
by the server's shared frame budget), the outgoing edited MediaStreamTrack, and the Sink that hands the
graph's frames to it."""
from __future__ import annotations

import asyncio
import collections
import fractions
import threading
import time
from typing import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from pipeline.frame_size import MIN_FRAME_SIDE, working_size
from pipeline.packets import FramePacket
from pipeline.stage import Sink, Source
from webrtc.fair_share import PeerGate


class IncomingVideoSource(Source):
    """Live source over a remote video track. aiortc's receive queue is unbounded, so a task drains
    `recv()` continuously and keeps only the newest frame; the skipped ones are counted. With a `gate`,
    the graph takes frames only as often as the gate allows, at the gate's scale (of the working size)."""

    name = "webrtc-in"
    live = True

    def __init__(self, track: MediaStreamTrack, gate: PeerGate | None = None):
        self._track = track
        self.gate = gate
        self._cond = threading.Condition()
        self._latest: tuple[av.VideoFrame, float] | None = None
        self._ended = False
        self._task: asyncio.Task | None = None
        self._seq = 0
        self.received = 0                # frames taken off the track
        self.size: tuple[int, int] | None = None    # (width, height) of the newest frame
        self.skipped = 0                 # frames replaced by a newer one before the graph read them
        self.last_input_time = time.perf_counter()
        # The graph joins the source thread when it ends (also after a stage error) while the drain
        # task needs the loop, so a blocked read() must notice on its own that the graph is stopping.
        self.stopping: Callable[[], bool] = lambda: False

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="webrtc-in-drain")

    async def _drain(self) -> None:
        try:
            while True:
                frame = await self._track.recv()
                now = time.perf_counter()
                if self.gate is not None:
                    self.gate.arrive()
                with self._cond:
                    if self._latest is not None:
                        self.skipped += 1
                    self._latest = (frame, now)
                    self.received += 1
                    self.size = (frame.width, frame.height)
                    self.last_input_time = now
                    self._cond.notify()
        except MediaStreamError:
            pass                         # the remote track ended
        finally:
            self.end()

    def end(self) -> None:
        """No more frames: a blocked `read` returns None (thread-safe)."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def read(self) -> FramePacket | None:
        if self.gate is not None and not self.gate.wait_turn(self.stopping):
            return None
        with self._cond:
            while self._latest is None and not self._ended and not self.stopping():
                self._cond.wait(0.05)
            if self._latest is None:
                return None
            frame, received_at = self._latest
            self._latest = None
        width, height = self._size(frame.width, frame.height)
        packet = FramePacket(seq=self._seq, frame=frame.to_ndarray(format="rgb24", width=width, height=height),
                             pts=frame.pts, time_base=frame.time_base, capture_time=received_at)
        self._seq += 1
        return packet

    def _size(self, width: int, height: int) -> tuple[int, int]:
        """The working size at the gate's scale, in even numbers (what the VP8 encoder takes back)."""
        width, height = working_size(width, height)
        scale = self.gate.scale if self.gate is not None else 1.0
        if scale >= 1.0 or min(width, height) * scale < MIN_FRAME_SIDE:
            return width, height
        return max(round(width * scale / 2) * 2, 2), max(round(height * scale / 2) * 2, 2)

    async def close(self) -> None:
        self.end()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class EditedVideoTrack(MediaStreamTrack):
    """The video sent back to the peer: always the newest edited frame, with the input's pts/time_base.
    Records the internal latency (frame received from the peer → frame handed to the encoder) and counts the
    frames sent on the peer's `gate` (what the shared budget measures capacity by)."""

    kind = "video"

    def __init__(self, history: int = 300, gate: PeerGate | None = None):
        super().__init__()
        self._gate = gate
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self._latest: tuple[np.ndarray, int | None, fractions.Fraction | None, float] | None = None
        self.sent = 0
        self.replaced = 0                # finished frames overwritten before the encoder asked
        self.size: tuple[int, int] | None = None    # (width, height) of the newest frame sent
        self.latencies_ms: collections.deque[float] = collections.deque(maxlen=history)

    def push(self, rgb: np.ndarray, pts: int | None, time_base, capture_time: float) -> None:
        """Offer a finished frame (thread-safe; called from the sink's thread)."""
        try:
            self._loop.call_soon_threadsafe(self._store, (rgb, pts, time_base, capture_time))
        except RuntimeError:
            pass                         # the loop is closing: the peer is gone

    def _store(self, item) -> None:
        if self._latest is not None:
            self.replaced += 1
        self._latest = item
        self._ready.set()

    async def recv(self) -> av.VideoFrame:
        while self._latest is None:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        rgb, pts, time_base, capture_time = self._latest
        self._latest = None
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        self.size = (frame.width, frame.height)
        self.latencies_ms.append((time.perf_counter() - capture_time) * 1000.0)
        self.sent += 1
        if self._gate is not None:
            self._gate.send()
        return frame

    def stop(self) -> None:
        super().stop()
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._ready.set)    # wake a pending recv so it ends


class TrackSink(Sink):
    """Graph sink that hands each finished frame (`packet.out_frame`) to an EditedVideoTrack."""

    name = "webrtc-out"

    def __init__(self, track: EditedVideoTrack):
        self._track = track

    def write(self, packet: FramePacket) -> None:
        self._track.push(packet.out_frame, packet.pts, packet.time_base, packet.capture_time)
