"""Video file source (PyAV): decoded RGB frames with their own pts, optionally paced like a live camera.
Frames larger than the working size are scaled down as they are decoded; a damaged or truncated file
passes its decodable frames through and `incomplete()` says what was missing."""
from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av

from pipeline.clock import Pacer
from pipeline.errors import UserError
from pipeline.frame_size import check_input_size, working_size
from pipeline.packets import FramePacket
from pipeline.stage import Source


def open_video(path: str | Path) -> av.container.InputContainer:
    """Open a container that has a video stream, or raise a UserError that says what is wrong."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"input file not found: {path}")
    if not path.is_file():
        raise UserError(f"input is not a file: {path}")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise UserError(f"cannot read {path} as a video ({_reason(exc)}); is it a complete video file?") from None
    if not container.streams.video:
        container.close()
        raise UserError(f"{path} has no video stream")
    return container


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc).splitlines()[0]


class FileSource(Source):
    """Frames of a video file in order; `realtime=True` paces them by pts and makes the source live."""

    name = "file"

    def __init__(self, path: str | Path, realtime: bool = False, max_frames: int | None = None):
        self.path = Path(path)
        self.live = realtime
        self.realtime = realtime
        self.max_frames = max_frames
        self._container = open_video(self.path)
        stream = self._container.streams.video[0]
        # Slice threads only: frame threads report a damaged packet late or never, so a truncated file
        # would look complete. One core decodes H.264 at the working size in a few ms.
        stream.thread_type = "SLICE"
        self.time_base: Fraction = stream.time_base or Fraction(1, 90000)
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else 30.0
        self.width, self.height = stream.codec_context.width, stream.codec_context.height
        if self.width and self.height:
            try:
                check_input_size(self.width, self.height, str(self.path))
            except UserError:
                self._container.close()
                raise
        self.listed_frames = stream.frames or None        # what the container's index promises
        self.frame_count = min(self.listed_frames or max_frames, max_frames) if max_frames else self.listed_frames
        self.has_audio = bool(self._container.streams.audio)
        self.audio_path = self.path if self.has_audio else None
        self.damaged_packets = 0
        self._error: str | None = None                   # FFmpeg's first complaint, if any
        self._frames = self._decode(stream)
        self._seq = 0
        self._pacer = Pacer()
        self._pending = self._next_frame()
        if self._pending is None:
            self._container.close()
            raise UserError(f"{self.path} contains no decodable video frames")

    def _decode(self, stream):
        for packet in self._container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:     # a damaged packet: skip it; H.264 recovers at the next keyframe
                self.damaged_packets += 1
                self._error = self._error or _reason(exc)
                continue
            yield from frames

    def _next_frame(self) -> av.VideoFrame | None:
        try:
            return next(self._frames)
        except StopIteration:
            return None
        except av.FFmpegError as exc:         # the container itself cannot be read on: keep what decoded
            self._error = self._error or _reason(exc)
            return None

    def incomplete(self) -> str | None:
        """Once the source has ended: what fell short of the file's own promise (frames its index lists,
        packets that would not decode), in one sentence; None when nothing did."""
        problems = []
        expected = self.listed_frames if self.max_frames is None else None
        if expected and self._seq < expected:
            problems.append(f"{self.path} ended early: {self._seq} of the {expected} frames its index lists "
                            "could be decoded (truncated or damaged file?)")
        if self.damaged_packets:
            problems.append(f"{self.damaged_packets} damaged video packet(s) were skipped")
        if problems and self._error:
            problems[-1] += f" ({self._error})"
        return "; ".join(problems) or None

    def read(self) -> FramePacket | None:
        if self.max_frames is not None and self._seq >= self.max_frames:
            return None
        frame, self._pending = self._pending, None
        if frame is None:
            frame = self._next_frame()
        if frame is None:
            return None
        if frame.pts is not None:
            pts = frame.pts
        else:       # raw streams (.h264, some AVI) have no timestamps: place frames at the stream's rate
            pts = round(self._seq / self.fps / self.time_base)
        if self.realtime:
            self._pacer.wait_until(float(pts * self.time_base))
        width, height = working_size(frame.width, frame.height)
        packet = FramePacket(seq=self._seq, frame=frame.to_ndarray(format="rgb24", width=width, height=height,
                                                                   interpolation="AREA"),
                             pts=pts, time_base=self.time_base, capture_time=time.perf_counter())
        self._seq += 1
        return packet

    async def close(self) -> None:
        self._container.close()
