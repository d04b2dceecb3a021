"""A small aiortc client for the server: plays a video file as a live camera (raw frames, or VP8 packets
encoded once so that many clients cost little CPU), collects the edited frames coming back, and speaks
the control protocol. Used by the benchmarks and the tests."""
from __future__ import annotations

import asyncio
import fractions
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import av
import numpy as np
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

VIDEO_CLOCK = fractions.Fraction(1, 90000)


def decode_clip(path: str | Path, limit: int | None = None) -> tuple[list[np.ndarray], float]:
    """The first `limit` frames of a video as RGB arrays, and its frame rate."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if limit is not None and len(frames) >= limit:
                break
        return frames, float(stream.average_rate or 30)


class ClipCameraTrack(MediaStreamTrack):
    """A video file played as a live camera: frames paced at the clip's rate, looped, 90 kHz pts."""

    kind = "video"

    def __init__(self, frames: list[np.ndarray], fps: float = 30.0, loop: bool = True, max_frames: int | None = None):
        super().__init__()
        if not frames:
            raise ValueError("a camera track needs at least one frame")
        self.frames, self.fps = frames, fps
        self.loop, self.max_frames = loop, max_frames
        self.sent = 0
        self.send_times: dict[int, float] = {}       # pts → perf_counter when handed to the encoder
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.perf_counter()
        index = self.sent
        if (not self.loop and index >= len(self.frames)) or (self.max_frames and index >= self.max_frames):
            self.stop()
            raise MediaStreamError
        delay = self._start + index / self.fps - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = av.VideoFrame.from_ndarray(self.frames[index % len(self.frames)], format="rgb24")
        frame.pts, frame.time_base = int(index * 90000 / self.fps), VIDEO_CLOCK
        self.send_times[frame.pts] = time.perf_counter()
        self.sent += 1
        return frame


def encode_vp8(frames: list[np.ndarray], fps: float, bitrate: int = 1_000_000, keyframe_s: float = 2.0) -> list[bytes]:
    """`frames` as a VP8 stream that starts with a keyframe (so it can loop), one packet per frame."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = frames[0].shape[1], frames[0].shape[0]
    codec.pix_fmt, codec.bit_rate = "yuv420p", bitrate
    codec.time_base = fractions.Fraction(1, round(fps))
    codec.gop_size = max(1, round(keyframe_s * fps))
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    packets = []
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets += [bytes(p) for p in codec.encode(frame)]
    packets += [bytes(p) for p in codec.encode(None)]
    return packets


class EncodedClipTrack(MediaStreamTrack):
    """A camera that sends pre-encoded VP8 packets, looped and paced at `fps` (offer it with codec="video/VP8"):
    aiortc sends them as they are, so a client costs no encoding."""

    kind = "video"

    def __init__(self, packets: list[bytes], fps: float = 30.0):
        super().__init__()
        self.packets, self.fps = packets, fps
        self.sent = 0
        self._start: float | None = None

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.perf_counter()
        delay = self._start + self.sent / self.fps - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(self.packets[self.sent % len(self.packets)])
        packet.pts, packet.time_base = int(self.sent * 90000 / self.fps), VIDEO_CLOCK
        self.sent += 1
        return packet


@dataclass
class ReceivedFrame:
    pts: int
    image: np.ndarray
    arrived: float


@dataclass
class EditClient:
    """One connected client: the peer connection, the data channel and what came back."""

    pc: RTCPeerConnection
    channel: object
    frames: list[ReceivedFrame] = field(default_factory=list)
    audio: list[np.ndarray] = field(default_factory=list)         # received audio frames (samples)
    messages: list[dict] = field(default_factory=list)
    keep_images: int = 60
    _tasks: list[asyncio.Task] = field(default_factory=list)

    def send(self, **settings) -> None:
        self.channel.send(json.dumps({"type": "set", **settings}))

    def last(self, kind: str) -> dict | None:
        return next((m for m in reversed(self.messages) if m.get("type") == kind), None)

    async def wait_frames(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.frames) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def wait_message(self, predicate, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((m for m in reversed(self.messages) if predicate(m)), None)
            if found is not None:
                return found
            await asyncio.sleep(0.05)
        return None

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()

    async def _collect(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if track.kind == "audio":
                    self.audio.append(frame.to_ndarray())
                    continue
                self.frames.append(ReceivedFrame(frame.pts, frame.to_ndarray(format="rgb24"), time.perf_counter()))
                if len(self.frames) > self.keep_images:      # keep memory flat on long runs
                    self.frames[-self.keep_images - 1].image = None
        except MediaStreamError:
            pass


async def connect(base_url: str, camera: MediaStreamTrack, token: str | None = None,
                  microphone: MediaStreamTrack | None = None, microphone_direction: str = "sendrecv",
                  codec: str | None = None) -> EditClient:
    """Offer `camera` (and `microphone`: "sendrecv" to hear it back, "sendonly" not) to the server at
    `base_url`, with only `codec` (e.g. "video/VP8") for the video when given; return the connected client
    (raises ConnectionError with the server's message on HTTP errors)."""
    pc = RTCPeerConnection()
    channel = pc.createDataChannel("control")
    client = EditClient(pc, channel)
    channel.on("message", lambda m: client.messages.append(json.loads(m)))

    @pc.on("track")
    def on_track(track):
        client._tasks.append(asyncio.ensure_future(client._collect(track)))

    video = pc.addTransceiver(camera, direction="sendrecv")
    if codec is not None:
        video.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                   if c.mimeType.lower() == codec.lower()])
    if microphone is not None:
        pc.addTransceiver(microphone, direction=microphone_direction)
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base_url}/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"},
                             headers=headers) as response:
            body = await response.json()
            if response.status != 200:
                await pc.close()
                raise ConnectionError(f"HTTP {response.status}: {body.get('error')}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
    return client
