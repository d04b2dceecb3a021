"""A real aiortc client against the server running the real edit chain (MediaPipe face + classic engine):
edited frames come back in order with the input's timestamps, the data channel changes the style and the
engine options, and the microphone comes back only when the offer asks for it (else it is drained)."""
from __future__ import annotations

import asyncio
import fractions
import time

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamTrack

from pipeline.config import CAMERA_LIMITS, EngineConfig
from webrtc.client import ClipCameraTrack, connect, decode_clip
from webrtc.control import HEALTH_STATES
from webrtc.pipeline_factory import edit_pipeline_factory, preset_names
from webrtc.server import PEERS, ServerConfig, running_server

FRAME_TICKS = 3000                      # 90 kHz RTP clock / 30 fps


def face_colour(image: np.ndarray) -> np.ndarray:
    """Mean RGB of the central face box: a statue style moves it far more than the talking head's motion does."""
    h, w = image.shape[:2]
    return image[h // 4: 3 * h // 4, w // 4: 3 * w // 4].reshape(-1, 3).astype(np.float32).mean(axis=0)


@pytest.fixture(scope="module")
def clip_frames(clips):
    return decode_clip(clips / "d10.mp4", limit=90)[0]


@pytest.mark.slow
async def test_edited_frames_come_back_in_order_and_style_changes_output(clip_frames):
    config = ServerConfig(make_pipeline=edit_pipeline_factory(EngineConfig(name="classic")), presets=preset_names())
    async with running_server(config) as (app, url):
        camera = ClipCameraTrack(clip_frames, fps=30.0)
        client = await connect(url, camera)
        await client.wait_frames(15, timeout=60)
        assert len(client.frames) >= 15, (f"only {len(client.frames)} frames came back", client.last("error"))
        # Returned frames carry the input's pts: consecutive ones differ by whole input frame periods
        # (the live path may skip frames, never reorder or re-stamp them). RTP adds a random offset,
        # and aiortc's time-base conversions round by a tick or two.
        deltas = np.diff([f.pts for f in client.frames]) % (1 << 32)
        off_grid = np.minimum(deltas % FRAME_TICKS, FRAME_TICKS - deltas % FRAME_TICKS)
        assert (deltas > FRAME_TICKS // 2).all() and (off_grid <= 3).all(), deltas[:20]
        assert len(client.frames) <= camera.sent
        before = np.median([face_colour(f.image) for f in client.frames[-8:] if f.image is not None], axis=0)

        client.send(style="bronze statue")
        status = await client.wait_message(lambda m: m["type"] == "style" and m["style"] == "bronze statue"
                                           and m["status"] != "loading", 30)
        assert status == {"type": "style", "status": "ready", "style": "bronze statue", "message": "",
                          "label": "bronze statue", "preset": "bronze statue"}, \
            [m for m in client.messages if m["type"] in ("style", "error")]
        count = len(client.frames)
        await client.wait_frames(count + 12, timeout=60)
        after = np.median([face_colour(f.image) for f in client.frames[-6:]], axis=0)
        assert np.linalg.norm(after - before) > 20, (before, after)

        stats = await client.wait_message(lambda m: m["type"] == "stats" and m["fps_out"] > 0, 10)
        assert stats["engine"] == "classic" and stats["device"] == "cpu"
        assert stats["health"] in HEALTH_STATES
        assert stats["style"]["style"] == "bronze statue"
        height, width = clip_frames[0].shape[:2]             # the negotiated video, both ways, and its bitrate
        assert stats["video"]["input"] == stats["video"]["output"] == [width, height]
        assert await client.wait_message(lambda m: m["type"] == "stats" and (m["video"]["sent_kbps"] or 0) > 50, 5)
        hello = client.last("hello")
        assert hello["camera_limits"] == CAMERA_LIMITS and hello["takes_text"] is True
        stages = stats["graph"]["stages"]
        assert {"webrtc-in", "webrtc-out"} <= set(stages) and len(stages) >= 6    # source, 4 edit stages, sink
        assert stats["latency_ms"]["p50"] > 0
        await client.close()
        for _ in range(50):
            if not app[PEERS].sessions:
                break
            await asyncio.sleep(0.1)
        assert not app[PEERS].sessions


class ToneMicrophone(MediaStreamTrack):
    """A 440 Hz tone as a microphone: 20 ms frames of 48 kHz mono s16, paced in real time."""

    kind = "audio"

    def __init__(self, hz: float = 440.0):
        super().__init__()
        self.hz, self.samples, self._start = hz, 0, None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.perf_counter()
        await asyncio.sleep(max(0.0, self._start + self.samples / 48000 - time.perf_counter()))
        t = (self.samples + np.arange(960)) / 48000
        frame = av.AudioFrame.from_ndarray((8000 * np.sin(2 * np.pi * self.hz * t)).astype(np.int16)[None],
                                           format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self.samples, fractions.Fraction(1, 48000)
        self.samples += 960
        return frame


async def test_microphone_comes_back_untouched(clip_frames):
    config = ServerConfig(make_pipeline=lambda controls, on_error: ([], None), presets=[])
    async with running_server(config) as (app, url):
        client = await connect(url, ClipCameraTrack(clip_frames, fps=30.0), microphone=ToneMicrophone(440.0))
        for _ in range(100):
            if len(client.audio) >= 60:
                break
            await asyncio.sleep(0.1)
        assert len(client.audio) >= 60 and client.frames
        # aiortc decodes Opus to packed stereo s16 (L R L R ...) at 48 kHz: keep the left channel
        channels = client.audio[-1].size // 960
        mono = np.concatenate([a.reshape(-1, channels)[:, 0] for a in client.audio[-40:]]).astype(np.float32)
        spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
        peak_hz = np.argmax(spectrum) * 48000 / len(mono)
        assert abs(peak_hz - 440.0) < 5, peak_hz
        assert remote_audio_queue(app) <= 5                    # the relay reads it as it arrives
        await client.close()


@pytest.mark.slow
async def test_engine_options_switch_the_peers_own_face_stage_and_3dpe_only_options_are_refused(clip_frames):
    config = ServerConfig(make_pipeline=edit_pipeline_factory(EngineConfig(name="classic")), presets=preset_names())
    async with running_server(config) as (app, url):
        client = await connect(url, ClipCameraTrack(clip_frames, fps=30.0))
        hello = await client.wait_message(lambda m: m["type"] == "hello", 30)
        assert hello["engine"] == "classic" and hello["engine_options"] == {"smoothing": True}   # no EMA on classic
        await client.wait_frames(5, timeout=60)
        (session,) = app[PEERS].sessions
        face = next(s for s in session.stages if s.name == "face")
        assert face.tracker.config.smoothing is True

        client.send(engine={"smoothing": False})
        reply = await client.wait_message(lambda m: m["type"] == "engine_options", 10)
        assert reply["options"] == {"smoothing": False}
        count = len(client.frames)
        await client.wait_frames(count + 5, timeout=60)
        # the tracking thread picked it up: frames are now tracked without smoothing
        assert face.smoothing is False and face.tracker.config.smoothing is False

        client.send(engine={"smoothing": True, "triplane_ema": 0.3})
        error = await client.wait_message(lambda m: m["type"] == "error", 10)
        assert error and "3dpe engine" in error["message"] and "classic" in error["message"], client.messages[-5:]
        assert face.smoothing is False                          # refused as a whole: smoothing untouched
        seen = len(client.messages)                             # stats sent from now on (on a busy machine the
        stats = await client.wait_message(                      # shared budget may leave a second without output)
            lambda m: m["type"] == "stats" and any(m is later for later in client.messages[seen:]), 10)
        assert stats["engine_options"] == {"smoothing": False}
        await client.close()


def remote_audio_queue(app) -> int:
    """Frames waiting in the server's incoming audio track. aiortc keeps them in an unbounded asyncio
    queue (a private attribute: nothing public tells how much is waiting)."""
    (session,) = app[PEERS].sessions
    (audio,) = [t for t in session.pc.getTransceivers() if t.kind == "audio"]
    return audio.receiver.track._queue.qsize()


async def test_send_only_microphone_is_consumed_not_relayed_and_nothing_piles_up(clip_frames):
    config = ServerConfig(make_pipeline=lambda controls, on_error: ([], None), presets=[])
    async with running_server(config) as (app, url):
        client = await connect(url, ClipCameraTrack(clip_frames, fps=30.0), microphone=ToneMicrophone(440.0),
                               microphone_direction="sendonly")
        audio_answer = client.pc.remoteDescription.sdp.split("m=audio")[1].split("m=")[0]
        assert "a=recvonly" in audio_answer                    # the server sends no audio back
        (session,) = app[PEERS].sessions
        (receiver,) = [t.receiver for t in session.pc.getTransceivers() if t.kind == "audio"]
        packets = 0
        for _ in range(100):                                   # ~2 s of the tone reaching the server
            stats = [s for s in (await receiver.getStats()).values() if s.type == "inbound-rtp"]
            packets = stats[0].packetsReceived if stats else 0
            if packets >= 100:
                break
            await asyncio.sleep(0.1)
        assert packets >= 100 and client.frames
        assert remote_audio_queue(app) <= 5                    # read and dropped as it arrives
        assert client.audio == []
        await client.close()
