"""Server robustness with real aiortc peers: bad offers, tokens, uploads, capacity, connect/disconnect churn.

The per-peer pipeline here is the real graph with no edit stages (frames pass through), because these
tests are about the server, not the edit; the edit itself is covered in test_webrtc_session.py.
"""
from __future__ import annotations

import asyncio
import struct
import threading
import time
import zlib

import aiohttp
import cv2
import numpy as np
import pytest

from pipeline.config import EditControls, EngineConfig
from stages.edit.engine import Style
from webrtc.client import ClipCameraTrack, connect, decode_clip
from webrtc.peer import PeerLimits
from webrtc.server import PEERS, ServerConfig, running_server

TOKEN = "s3cret-token"


class PassThroughEngine:
    name, device = "pass-through", "cpu"

    def prepare(self, prompt):
        if prompt == "unknown":
            raise ValueError("unknown style 'unknown'")
        if prompt is None:
            return Style(key="none", kind="none", label="none")
        return Style(key=f"preset:{prompt}", kind="preset", label=prompt)


def pass_through(controls: EditControls, on_style_error):
    return [], PassThroughEngine()


def config(**overrides) -> ServerConfig:
    base = dict(make_pipeline=pass_through, presets=["marble"], token=TOKEN, max_peers=2,
                limits=PeerLimits(connect_timeout_s=4.0, disconnect_grace_s=1.0))
    return ServerConfig(**{**base, **overrides})


def peer_threads() -> set[str]:
    """Threads a session or its graph owns (the loop's default executor is not ours)."""
    return {t.name for t in threading.enumerate() if not t.name.startswith("asyncio_") and t.name != "MainThread"}


async def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return predicate()


def png_bytes(size=64) -> bytes:
    image = np.zeros((size, size, 3), np.uint8)
    image[:, : size // 2] = (0, 128, 255)
    return cv2.imencode(".png", image)[1].tobytes()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width×height (a decompression bomb decodes to gigabytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(4096)))


@pytest.fixture(scope="module")
def clip_frames(clips):
    return decode_clip(clips / "d10.mp4", limit=60)[0]


def camera(frames, max_frames=300) -> ClipCameraTrack:
    return ClipCameraTrack(frames, fps=30.0, max_frames=max_frames)


async def test_malformed_offers_get_400_with_a_message():
    async with running_server(config()) as (app, url), aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        cases = [
            (b"not json", "application/json"),
            (b'["a list"]', "application/json"),
            (b'{"type": "offer"}', "application/json"),
            (b'{"sdp": "v=0", "type": "answer"}', "application/json"),
            (b"[" * 100_000, "application/json"),          # nesting deeper than the JSON parser's recursion
            (b'{"sdp": "v=0\\r\\nm=video 9 x 96\\r\\nm=video 9 x 96\\r\\n", "type": "offer"}', "application/json"),
            (b'{"sdp": "garbage m=video garbage", "type": "offer"}', "application/json"),
            (b'{"sdp": "v=0\\r\\no=- 0 0 IN IP4 127.0.0.1\\r\\ns=-\\r\\nt=0 0\\r\\nm=video 9 UDP/TLS/RTP/SAVPF 96\\r\\n", '
             b'"type": "offer"}', "application/json"),
        ]
        for body, content_type in cases:
            async with http.post(f"{url}/offer", data=body, headers={**auth, "Content-Type": content_type}) as r:
                assert r.status == 400, (body, await r.text())
                assert (await r.json())["error"]
        assert not app[PEERS].sessions                 # nothing left half-open
        async with http.get(f"{url}/api/health") as r:
            assert (await r.json())["status"] == "ok"


async def test_token_required_and_checked(clip_frames):
    async with running_server(config()) as (app, url), aiohttp.ClientSession() as http:
        for headers, query in [({}, ""), ({"Authorization": "Bearer wrong"}, ""), ({}, "?token=wrong")]:
            async with http.post(f"{url}/offer{query}", json={"sdp": "x", "type": "offer"}, headers=headers) as r:
                assert r.status == 401
                assert "token" in (await r.json())["error"]
            async with http.post(f"{url}/prompt{query}", data=png_bytes(), headers=headers) as r:
                assert r.status == 401
        async with http.post(f"{url}/prompt?token={TOKEN}", data=png_bytes()) as r:
            assert r.status == 200 and (await r.json())["id"]
        client = await connect(url, camera(clip_frames, 60), token=TOKEN)
        await client.wait_frames(5, timeout=20)
        assert len(client.frames) >= 5
        await client.close()


async def test_uploads_checked_by_size_and_content():
    async with running_server(config(token=None, max_upload_bytes=100_000)) as (app, url), \
            aiohttp.ClientSession() as http:
        async with http.post(f"{url}/prompt", data=b"\x89PNG\r\n\x1a\n" + bytes(200_000)) as r:
            assert r.status == 413 and "too large" in (await r.json())["error"]
        form = aiohttp.FormData()
        form.add_field("image", b"\xff\xd8\xff" + bytes(150_000), filename="big.jpg", content_type="image/jpeg")
        async with http.post(f"{url}/prompt", data=form) as r:
            assert r.status == 413
        form = aiohttp.FormData()
        form.add_field("image", b"GIF89a not allowed", filename="photo.png", content_type="image/png")
        async with http.post(f"{url}/prompt", data=form) as r:      # the name says png, the content does not
            assert r.status == 400 and "PNG, JPEG or WebP" in (await r.json())["error"]
        async with http.post(f"{url}/prompt", data=png_bytes()[:40]) as r:
            assert r.status == 400 and "decoded" in (await r.json())["error"]
        async with http.post(f"{url}/prompt", data=png_claiming(30_000, 30_000)) as r:   # would inflate to 2.7 GB
            assert r.status == 400 and "4096 pixels" in (await r.json())["error"]
        for content_type in ("multipart/form-data", "multipart/form-data; boundary=xyz"):   # no / wrong boundary
            async with http.post(f"{url}/prompt", data=b"junk", headers={"Content-Type": content_type}) as r:
                assert r.status == 400 and "multipart" in (await r.json())["error"]
        form = aiohttp.FormData()
        form.add_field("image", png_bytes(), filename="x.bin", content_type="application/octet-stream")
        async with http.post(f"{url}/prompt", data=form) as r:
            assert r.status == 200
            first = (await r.json())["id"]
        async with http.post(f"{url}/prompt", data=png_bytes()) as r:
            assert (await r.json())["id"] == first     # content-addressed


async def test_over_capacity_gets_503_and_freed_slots_are_reused(clip_frames):
    # Watchdogs far away, so only the hang-up itself can release the peer within the wait below.
    limits = PeerLimits(connect_timeout_s=60.0, input_timeout_s=60.0, disconnect_grace_s=60.0)
    async with running_server(config(token=None, max_peers=1, limits=limits)) as (app, url):
        first = await connect(url, camera(clip_frames, 300))
        with pytest.raises(ConnectionError, match="503.*full"):
            await connect(url, camera(clip_frames, 30))
        await first.wait_frames(3, timeout=20)
        await first.close()
        # A connected peer that hangs up is released at once (DTLS close / data channel close).
        assert await wait_until(lambda: not app[PEERS].sessions, timeout=5)
        again = await connect(url, camera(clip_frames, 60))
        await again.wait_frames(3, timeout=20)
        assert len(again.frames) >= 3
        await again.close()


async def test_rapid_connect_disconnect_leaves_nothing_behind(clip_frames):
    before = peer_threads()
    async with running_server(config(token=None, max_peers=4)) as (app, url), aiohttp.ClientSession() as http:
        accepted = full = 0
        for _ in range(50):
            try:
                client = await connect(url, camera(clip_frames, 30))
            except ConnectionError as exc:             # churn may briefly hit the cap: a clean 503
                assert "503" in str(exc)
                full += 1
                await asyncio.sleep(0.2)
                continue
            accepted += 1
            await client.close()
        print(f'accepted {accepted}, refused while full {full}')
        assert accepted + full == 50 and accepted >= 10
        assert await wait_until(lambda: not app[PEERS].sessions, timeout=8), len(app[PEERS].sessions)
        assert await wait_until(lambda: peer_threads() <= before, timeout=5), peer_threads() - before
        async with http.get(f"{url}/api/health") as r:
            health = await r.json()
            assert (health["status"], health["peers"], health["connected"], health["max_peers"]) == ("ok", 0, 0, 4)
        client = await connect(url, camera(clip_frames, 60))   # still serves
        await client.wait_frames(3, timeout=20)
        assert len(client.frames) >= 3
        await client.close()


async def test_bad_control_messages_are_answered_not_fatal(clip_frames):
    async with running_server(config(token=None)) as (app, url):
        client = await connect(url, camera(clip_frames, 300))
        assert await wait_until(lambda: client.channel.readyState == "open", timeout=10)
        client.channel.send("{broken")
        assert await client.wait_message(lambda m: m["type"] == "error" and "JSON" in m["message"], 5)
        client.send(yaw="left")
        assert await client.wait_message(lambda m: m["type"] == "error" and "yaw" in m["message"], 5)
        # style refusals are style feedback (the page shows them in one place), with the style still running
        client.send(style="unknown")
        status = await client.wait_message(lambda m: m["type"] == "style" and m["status"] == "error", 5)
        assert "unknown" in status["message"] and status["style"] == "unknown"

        def style_error(words):
            return lambda m: m["type"] == "style" and m["status"] == "error" and words in m["message"]
        client.send(prompt="deadbeef")
        assert (await client.wait_message(style_error("prompt"), 5))["style"] == "uploaded image"
        client.send(prompt="0123456789abcdef0123")         # well-formed, never uploaded
        assert await client.wait_message(style_error("upload it again"), 5)
        client.send(style="image:/etc/hostname.png")       # a path on the server: refused, never read
        status = await client.wait_message(style_error("“/” cannot be part"), 5)
        assert status["style"] == "image:/etc/hostname.png" and status["label"] == "none"
        n = len(client.frames)
        await client.wait_frames(n + 3, timeout=10)
        assert len(client.frames) >= n + 3              # the stream kept going
        await client.close()


class BrokenStage:
    """A stage whose model cannot load: the page must hear why, and the peer must be released."""

    name = "broken"

    async def start(self):
        raise RuntimeError("model file missing")

    def process(self, packet):
        return packet

    async def close(self):
        pass


async def test_a_failing_pipeline_is_reported_to_the_page_and_released(clip_frames):
    async with running_server(config(token=None, make_pipeline=lambda c, e: ([BrokenStage()], PassThroughEngine()))) \
            as (app, url):
        client = await connect(url, camera(clip_frames, 300))
        error = await client.wait_message(lambda m: m["type"] == "error", 10)
        assert error and "broken" in error["message"] and "model file missing" in error["message"]
        assert await wait_until(lambda: not app[PEERS].sessions, timeout=5)
        await client.close()


async def test_a_peer_whose_camera_goes_silent_is_released(clip_frames):
    """Network lost / tab killed: no DTLS goodbye, ICE consent would take ~30 s; the input watchdog acts."""
    limits = PeerLimits(connect_timeout_s=10.0, input_timeout_s=1.5)
    async with running_server(config(token=None, limits=limits)) as (app, url):
        track = camera(clip_frames, 300)
        client = await connect(url, track)
        await client.wait_frames(3, timeout=20)
        assert app[PEERS].sessions
        track.stop()                                   # frames stop; the connection itself stays up
        assert await wait_until(lambda: not app[PEERS].sessions, timeout=5)
        await client.close()


@pytest.mark.slow
async def test_text_never_reaches_an_engine_that_reads_text_as_a_file(clip_frames, images, tmp_path, monkeypatch):
    """The 3dpe engine (random weights: only `prepare` runs) reads any text as an image file name. Files named
    like the texts sit in the server's working directory: the peer refuses the texts before the engine sees them."""
    from stages.edit.threedpe_engine import ThreeDPEEngine

    monkeypatch.chdir(tmp_path)
    for name in ("marble", "golden statue"):
        (tmp_path / name).write_bytes((images / "s1.jpg").read_bytes())
    engine = ThreeDPEEngine(EngineConfig(name="3dpe", random_weights=True, device="cpu"))
    assert engine.prepare("marble").kind == "image"              # what it would do with the text
    async with running_server(config(token=None, make_pipeline=lambda c, e: ([], engine))) as (app, url):
        client = await connect(url, camera(clip_frames, 300))
        hello = await client.wait_message(lambda m: m["type"] == "hello", 10)
        assert hello and hello["takes_text"] is False
        for text in ("marble", "golden statue."):
            client.send(style=text)
            status = await client.wait_message(lambda m: m["type"] == "style" and m["style"] == text
                                               and m["status"] != "loading", 5)
            assert status["status"] == "error" and "image prompts only" in status["message"], status
        client.send(style="none")
        assert await client.wait_message(lambda m: m["type"] == "style" and m["style"] == "none"
                                         and m["status"] == "ready", 5)
        await client.close()
