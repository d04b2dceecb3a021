"""Stand-ins for the CPU-only ends of the stage graph on the GPU machine: a source replaying prepared frames,
a stage attaching the face tracks prepared on CPU (benchmarks.gpu_inputs), and serialised CUDA handoff."""
from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import torch

from pipeline.packets import FaceObservation, FaceResult, FramePacket
from pipeline.stage import Sink, Source, Stage
from stages.face.alignment import warp_crop


class PreparedSource(Source):
    """The clip's decoded frames in order, looped to `frames` packets, as fast as the graph takes them."""

    name = "prepared"

    def __init__(self, clip, frames: int):
        self.clip, self.frames, self._seq = clip, frames, 0
        self.time_base = Fraction(1, max(int(round(clip.fps)), 1))

    def read(self) -> FramePacket | None:
        if self._seq >= self.frames:
            return None
        seq, self._seq = self._seq, self._seq + 1
        return FramePacket(seq=seq, frame=self.clip.frames[seq % len(self.clip.frames)], pts=seq,
                           time_base=self.time_base, capture_time=time.perf_counter())


class TrackStage(Stage):
    """Attaches the prepared track of each frame as the face stage would (its crop warped here, on CPU)."""

    name = "face"

    def __init__(self, clip):
        self.clip = clip
        shape = clip.frames[0].shape[:2]
        self._mask = np.zeros(shape, np.float32)           # the 3dpe paste uses the render's mask, not this
        self._landmarks = np.zeros((478, 3), np.float32)

    def process(self, packet: FramePacket) -> FramePacket:
        track = self.clip.faces[packet.seq % len(self.clip.faces)]
        if track is None:
            packet.face = FaceResult(None, [])
            return packet
        yaw, pitch, roll = (float(v) for v in track["pose"])
        face = FaceObservation(landmarks=self._landmarks, box=tuple(float(v) for v in track["box"]), confidence=1.0,
                               yaw=yaw, pitch=pitch, roll=roll, camera=track["camera"].astype(np.float32),
                               crop_matrix=track["crop_matrix"], crop_inverse=track["crop_inverse"],
                               crop=warp_crop(packet.frame, track["crop_matrix"]), mask=self._mask)
        packet.face = FaceResult(face, [face])
        return packet


class SerialCuda:
    """torch.cuda for `pipeline.graph.Graph(cuda=...)` with the stages serialised: every stage on the default
    stream and the host waits for each stage's GPU work (the 'serial' reference for stream overlap)."""

    def __getattr__(self, name):
        return getattr(torch.cuda, name)

    def Stream(self):                                       # noqa: N802 (torch.cuda's name)
        return torch.cuda.default_stream()

    def Event(self):                                        # noqa: N802
        return _SyncEvent()


class _SyncEvent(torch.cuda.Event):
    """A real CUDA event (streams can wait on it) whose `record` also waits for the recorded work on the host."""

    def record(self, stream=None) -> None:
        super().record(stream)
        self.synchronize()


class CountingSink(Sink):
    """Counts the frames that arrive and those that carry an edit (a render) — a decoupled encoder has no
    scene for the first frames, and the suite reports how many frames were really edited."""

    name = "sink"

    def __init__(self):
        self.frames = self.rendered = 0

    def write(self, packet: FramePacket) -> None:
        self.frames += 1
        self.rendered += packet.render is not None
