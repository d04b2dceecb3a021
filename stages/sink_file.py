"""Video file sink (PyAV): H.264/yuv420p with the source's pts, and the input's audio remuxed in sync.
A failed write (disk full, device gone) ends the run with one line and removes the incomplete file."""
from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from pipeline.errors import UserError
from pipeline.outputs import check_output_path, write_error
from pipeline.packets import FramePacket
from pipeline.stage import Sink

log = logging.getLogger(__name__)

# Audio codecs the mp4/mov muxer takes as they are; anything else is transcoded to AAC.
MP4_AUDIO_CODECS = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}


def even_size(frame: np.ndarray) -> np.ndarray:
    """yuv420p needs even width and height: repeat the last row/column when one is odd."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


class AudioPassthrough:
    """Copies the audio of `path` into `out`, up to a given time, remuxed (or AAC-transcoded if it must be).

    Packets keep their own pts, so audio stays where it was relative to the video's (kept) pts,
    whatever video frames a live graph dropped.
    """

    def __init__(self, path: str | Path, out: av.container.OutputContainer):
        self._src = av.open(str(path))
        source = self._src.streams.audio[0]
        mp4_like = any(n in out.format.name for n in ("mp4", "mov"))
        self.remux = not mp4_like or source.codec_context.name in MP4_AUDIO_CODECS
        if self.remux:
            self.stream = out.add_stream_from_template(source)
        else:
            self.stream = out.add_stream("aac", rate=source.codec_context.sample_rate or 48000)
        self._out = out
        self._packets = (p for p in self._src.demux(source) if p.size and p.pts is not None)
        self._held: av.Packet | None = None

    def mux_until(self, seconds: float | None) -> None:
        """Write every audio packet that starts before `seconds` (all remaining ones for None)."""
        while True:
            packet = self._held or next(self._packets, None)
            self._held = None
            if packet is None:
                return
            if seconds is not None and float(packet.pts * packet.time_base) >= seconds:
                self._held = packet
                return
            self._write(packet)

    def _write(self, packet: av.Packet) -> None:
        if self.remux:
            packet.stream = self.stream
            self._out.mux(packet)
            return
        for frame in packet.decode():
            for out_packet in self.stream.encode(frame):
                self._out.mux(out_packet)

    def close(self, flush: bool = True) -> None:
        try:
            if flush and not self.remux:
                for out_packet in self.stream.encode(None):
                    self._out.mux(out_packet)
        finally:
            self._src.close()


class FileSink(Sink):
    """Writes `packet.out_frame` to an H.264 file at the packet's pts; `audio_from` adds that file's audio."""

    name = "file-out"

    def __init__(self, path: str | Path, audio_from: str | Path | None = None, fps: float = 30.0,
                 crf: int = 20, preset: str = "veryfast"):
        self.path = Path(path)
        self.audio_from = Path(audio_from) if audio_from else None
        self.fps, self.crf, self.preset = fps, crf, preset
        self.frames_written = 0
        self._out: av.container.OutputContainer | None = None
        self._video: av.VideoStream | None = None
        self._audio: AudioPassthrough | None = None
        self._size: tuple[int, int] | None = None
        self._last_pts: int | None = None
        self._time_base: Fraction | None = None
        self._frame_seconds = 1.0 / fps
        self._resized = False
        self._failed = False
        check_output_path(self.path)               # fail before any model loads or frame is read

    async def start(self) -> None:
        try:
            self._out = av.open(str(self.path), "w")
        except OSError as exc:
            raise UserError(f"cannot write {self.path}: {write_error(exc)}") from None
        except (av.FFmpegError, ValueError) as exc:
            raise UserError(f"cannot write {self.path} ({exc}); use a .mp4 output") from None

    def _open_streams(self, frame: np.ndarray, time_base: Fraction) -> None:
        h, w = frame.shape[:2]
        rate = Fraction(self.fps).limit_denominator(1001)
        video = self._out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.time_base = time_base
        video.codec_context.time_base = time_base
        video.options = {"crf": str(self.crf), "preset": self.preset}
        self._video, self._size, self._time_base = video, (w, h), time_base
        if self.audio_from is not None:
            self._audio = AudioPassthrough(self.audio_from, self._out)

    def write(self, packet: FramePacket) -> None:
        frame = even_size(np.ascontiguousarray(packet.out_frame))
        time_base = packet.time_base or Fraction(1, round(self.fps))
        pts = packet.pts if packet.pts is not None else packet.seq
        if self._video is None:
            self._open_streams(frame, time_base)
        elif time_base != self._time_base:
            pts = round(pts * time_base / self._time_base)
        if (frame.shape[1], frame.shape[0]) != self._size:
            if not self._resized:
                log.warning("%s: frame size changed to %dx%d; scaling to the first size %dx%d",
                            self.path, frame.shape[1], frame.shape[0], *self._size)
                self._resized = True
            frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1          # the encoder needs strictly increasing pts
        self._last_pts = pts
        video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        video_frame.pts, video_frame.time_base = pts, self._time_base
        try:
            for out_packet in self._video.encode(video_frame):
                self._out.mux(out_packet)
            if self._audio is not None:
                self._audio.mux_until(float(pts * self._time_base))
        except OSError as exc:                # av.error.OSError too: ENOSPC, EFBIG, EIO
            self._failed = True
            raise self._write_failed(exc) from None
        self.frames_written += 1

    def _write_failed(self, exc: OSError) -> UserError:
        return UserError(f"cannot write {self.path}: {write_error(exc)} (after {self.frames_written} frames); "
                         "the incomplete file was removed")

    async def close(self) -> None:
        """Finish the file; after a failed write only release it and remove it (flushing the encoder into a
        container whose write failed crashes FFmpeg)."""
        if self._out is None:
            return
        out, self._out = self._out, None
        error: OSError | None = None
        try:
            if not self._failed and self._video is not None:
                for out_packet in self._video.encode(None):
                    out.mux(out_packet)
            if not self._failed and self._audio is not None:
                self._audio.mux_until(float(self._last_pts * self._time_base) + self._frame_seconds)
        except OSError as exc:
            error = exc
        finally:
            if self._audio is not None:
                try:
                    self._audio.close(flush=not self._failed and error is None)
                except OSError as exc:
                    error = error or exc
            try:
                out.close()                   # writes the index (moov) of a healthy file
            except OSError as exc:
                error = error or exc
            if self._failed or error is not None or self.frames_written == 0:
                self.path.unlink(missing_ok=True)   # half a file or an empty one would only confuse players
        if error is not None and not self._failed:
            self._failed = True
            raise self._write_failed(error)
