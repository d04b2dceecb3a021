"""Synthetic moving pattern of a given size/fps/count, for tests and benchmarks; optionally live-paced."""
from __future__ import annotations

import time

import numpy as np

from pipeline.clock import Pacer, frame_time_base
from pipeline.packets import FramePacket
from pipeline.stage import Source


class SyntheticSource(Source):
    """A colour gradient with a white square that moves one step per frame; pts in 1/fps.

    `live=True` delivers frames at `fps` in wall-clock time (like a camera) and makes the graph
    use live queues. The frame number is also written into the top-left pixel row so tests can
    check order after a run.
    """

    name = "synthetic"

    def __init__(self, width: int = 640, height: int = 480, fps: float = 30.0, count: int | None = 300,
                 live: bool = False):
        if width < 8 or height < 8 or fps <= 0:
            raise ValueError("synthetic frames need width, height >= 8 and fps > 0")
        self.width, self.height, self.fps = width, height, float(fps)
        self.frame_count = count
        self.live = live
        self.time_base = frame_time_base(fps)
        self.has_audio, self.audio_path = False, None
        ys, xs = np.mgrid[0:height, 0:width]
        self._base = np.stack([xs * 255 // max(width - 1, 1), ys * 255 // max(height - 1, 1),
                               np.full_like(xs, 96)], axis=-1).astype(np.uint8)
        self._side = max(4, min(width, height) // 8)
        self._seq = 0
        self._pacer = Pacer()

    def frame_at(self, seq: int) -> np.ndarray:
        frame = self._base.copy()
        x = (seq * 7) % (self.width - self._side)
        y = (seq * 3) % (self.height - self._side)
        frame[y:y + self._side, x:x + self._side] = 255
        frame[0, :4, 0] = np.frombuffer(np.uint32(seq).tobytes(), np.uint8)   # seq, little-endian
        return frame

    def read(self) -> FramePacket | None:
        if self.frame_count is not None and self._seq >= self.frame_count:
            return None
        seconds = self._seq / self.fps
        if self.live:
            self._pacer.wait_until(seconds)
        packet = FramePacket(seq=self._seq, frame=self.frame_at(self._seq), pts=round(seconds / self.time_base),
                             time_base=self.time_base, capture_time=time.perf_counter())
        self._seq += 1
        return packet


def frame_number(frame: np.ndarray) -> int:
    """The frame number a `SyntheticSource` wrote into the frame."""
    return int(np.frombuffer(np.ascontiguousarray(frame[0, :4, 0]).tobytes(), np.uint32)[0])
