"""Admission and overload with real aiortc peers: an offer that never connects costs no pipeline and frees its
place; a video offer that cannot carry the edit back is refused; a server whose loop runs late slows every
peer down evenly (frame rate, then resolution), keeps every session, and refuses newcomers with a 503.

The per-peer pipeline passes frames through (the server is under test, not the edit)."""
from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiortc import RTCPeerConnection
from test_webrtc_bad_input import PassThroughEngine, camera, wait_until

from webrtc.client import connect, decode_clip
from webrtc.fair_share import ShareLimits
from webrtc.peer import PeerLimits
from webrtc.server import PEERS, ServerConfig, running_server


@pytest.fixture(scope="module")
def clip_frames(clips):
    return decode_clip(clips / "d10.mp4", limit=30)[0]


class CountingFactory:
    """A pass-through pipeline that counts how often a peer's pipeline was built (slowly, like a model load)."""

    def __init__(self, build_s: float = 0.0):
        self.built, self.build_s = 0, build_s

    def __call__(self, controls, on_style_error):
        time.sleep(self.build_s)
        self.built += 1
        return [], PassThroughEngine()


async def offer_only(url: str, frames, direction: str = "sendrecv") -> tuple[int, dict, RTCPeerConnection]:
    """POST an offer and read the answer, but never apply it: the peer never connects."""
    pc = RTCPeerConnection()
    pc.addTransceiver(camera(frames), direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"}) as r:
            return r.status, await r.json(), pc


async def health(url: str) -> dict:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/api/health") as r:
        return await r.json()


async def test_an_offer_that_never_connects_builds_no_pipeline_and_frees_its_place_soon(clip_frames):
    factory = CountingFactory(build_s=0.5)
    config = ServerConfig(make_pipeline=factory, presets=["marble"], max_peers=1,
                          limits=PeerLimits(connect_timeout_s=1.5))
    async with running_server(config) as (app, url):
        status, _, silent = await offer_only(url, clip_frames)
        assert status == 200
        state = await health(url)
        assert (state["peers"], state["connected"], factory.built) == (1, 0, 0)     # a place, no pipeline
        with pytest.raises(ConnectionError, match="503.*full"):
            await connect(url, camera(clip_frames))
        assert await wait_until(lambda: not app[PEERS].sessions, timeout=5)         # given up after 1.5 s
        await silent.close()
        assert factory.built == 0
        client = await connect(url, camera(clip_frames))
        await client.wait_message(lambda m: True, 10)
        client.send(style="marble")            # sent at once: the pipeline is still being built
        ready = await client.wait_message(lambda m: m["type"] == "style" and m["style"] == "marble"
                                          and m["status"] != "loading", 10)
        assert ready and ready["status"] == "ready" and ready["message"] == "", client.messages
        hello = await client.wait_message(lambda m: m["type"] == "hello", 5)
        assert hello["engine"] == "pass-through" and factory.built == 1
        await client.wait_frames(3, timeout=20)
        assert len(client.frames) >= 3
        await client.close()


@pytest.mark.parametrize("direction", ["sendonly", "recvonly"])
async def test_a_video_offer_that_cannot_carry_the_edit_both_ways_is_refused(clip_frames, direction):
    factory = CountingFactory()
    async with running_server(ServerConfig(make_pipeline=factory)) as (app, url):
        status, body, pc = await offer_only(url, clip_frames, direction)
        await pc.close()
        assert status == 400 and f"video is {direction}" in body["error"] and "sendrecv" in body["error"]
        assert not app[PEERS].sessions and factory.built == 0


@pytest.mark.slow
async def test_a_late_loop_slows_every_peer_evenly_keeps_every_session_and_refuses_newcomers(clip_frames):
    config = ServerConfig(make_pipeline=CountingFactory(), limits=PeerLimits(input_timeout_s=30.0))
    async with running_server(config) as (app, url):
        clients = [await connect(url, camera(clip_frames, 3000)) for _ in range(2)]
        await asyncio.gather(*(c.wait_frames(3, timeout=20) for c in clients))
        # From now on the loop counts as late whatever this machine does: the scheduler must throttle.
        scheduler = app[PEERS].scheduler
        scheduler.limits = late = ShareLimits(lag_high_ms=0.0, lag_low_ms=-1.0, interval_s=0.5, scale_hold_s=1.0)
        with pytest.raises(ConnectionError, match="503.*overloaded"):
            await connect(url, camera(clip_frames))
        gates = [s.gate for s in app[PEERS].sessions]
        # down to the floor (never below: a slow stream, not a dead one), resolution 1 → 0.75 → 0.5, alike
        assert await wait_until(lambda: [(g.fps, g.scale) for g in gates] == [(late.min_peer_fps, 0.5)] * 2, 20)
        counts = [len(c.frames) for c in clients]
        await asyncio.sleep(3.0)
        gained = [len(c.frames) - n for c, n in zip(clients, counts)]
        assert all(0 < g <= 3.0 * late.min_peer_fps + 3 for g in gained), gained     # slow, not stopped
        assert all(c.frames[-1].image.shape == (256, 256, 3) for c in clients)       # 512² at half scale
        stats = await clients[0].wait_message(lambda m: m["type"] == "stats" and m["share"]["scale"] == 0.5, 5)
        assert stats["share"]["fps"] == late.min_peer_fps
        state = await health(url)
        assert (state["peers"], state["connected"], state["scale"]) == (2, 2, 0.5)
        assert all(c.pc.connectionState == "connected" for c in clients) and len(app[PEERS].sessions) == 2
        for client in clients:
            await client.close()
