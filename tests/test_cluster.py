"""A real Ray cluster of three simulated nodes on this machine (cluster/local.py), Ray Serve session hosts
running the classic engine (one peer each), the front on aiohttp and real aiortc peers: concurrent peers
land on different nodes and get edited frames back, /api/health shows them per node, a full cluster
answers 503, an uploaded image prompt reaches the node that runs the peer, and losing a node ends only
its session — reported as lost to its page (real Chromium: "session lost, reconnecting"), which reconnects
to a survivor. The cluster listens on loopback only and writes nothing in the home folder."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest

from benchmarks.browser import CHROMIUM, launch, still_y4m
from cluster.connect import ClusterSpec
from cluster.front import FRONT
from cluster.host import HostConfig
from cluster.service import deployed_cluster, front_app, front_config
from pipeline.config import EngineConfig
from stages.face import FaceConfig
from webrtc.client import ClipCameraTrack, connect, decode_clip
from webrtc.pipeline_factory import preset_names
from webrtc.server import running_app

pytestmark = pytest.mark.slow
NODES = 3
CAMERA_FPS = 10                 # enough to see frames come back, light on a shared 2-core machine


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """The processes the cluster starts get an empty home of their own: what they write there, we see."""
    fake = tmp_path_factory.mktemp("home")
    real_ray = Path.home() / ".ray"
    had_ray = real_ray.exists()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(fake))
        yield fake
    assert had_ray or not real_ray.exists(), "the cluster wrote ~/.ray in the real home"


@pytest.fixture(scope="module")
def cluster(home):
    host = HostConfig(engine=EngineConfig(name="classic"), face=FaceConfig(), presets=tuple(preset_names()),
                      max_peers=1)
    with deployed_cluster(ClusterSpec(local_nodes=NODES), host) as deployment:
        yield deployment, host


@pytest.fixture(scope="module")
def clip_frames(clips):
    return decode_clip(clips / "d10.mp4", limit=45)[0]


def camera(frames) -> ClipCameraTrack:
    return ClipCameraTrack(frames, fps=CAMERA_FPS)


async def get_json(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.json()


def listening_tcp(pids: set[int]) -> list[str]:
    """Local addresses of the TCP sockets in LISTEN state that processes `pids` hold (from /proc)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:                                  # the process ended meanwhile
            continue
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:        # 0A: LISTEN
                found.append(fields[1][:width])
    return found


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        found.update(kids := children.get(todo.pop(), []))
        todo.extend(kids)
    return found


LOOPBACK_HEX = ("0100007F",                                # 127.0.0.1 in /proc/net/tcp byte order
                "0000000000000000FFFF00000100007F",        # ::ffff:127.0.0.1
                "00000000000000000000000001000000")        # ::1


def test_cluster_listens_on_loopback_only_and_keeps_out_of_home(cluster, home):
    deployment, _ = cluster
    processes = descendants(os.getpid())
    assert len(processes) >= 2 * NODES                     # raylets, agents, GCS, Serve's controller and replicas
    addresses = listening_tcp(processes | {os.getpid()})
    assert addresses and not [a for a in addresses if not a.startswith(LOOPBACK_HEX)]
    # (matplotlib keeps its font cache in the home, as it does for a single server: not Ray's doing)
    assert not [p for p in home.rglob("*") if "ray" in p.name.lower()], sorted(home.rglob("*"))
    assert Path(deployment.local.temp_root, "ray").is_dir() and deployment.local.temp_root.startswith("/tmp/")


async def test_uploaded_image_prompt_reaches_the_node_running_the_peer(cluster, clip_frames, images):
    deployment, host = cluster
    async with running_app(front_app(front_config(host, None), deployment)) as (app, url):
        client = await connect(url, camera(clip_frames))
        await client.wait_message(lambda m: m["type"] == "hello", 60)
        async with aiohttp.ClientSession() as http:
            form = aiohttp.FormData()
            form.add_field("image", (images / "s7.jpg").read_bytes(), filename="s7.jpg", content_type="image/jpeg")
            async with http.post(f"{url}/prompt", data=form) as response:
                assert response.status == 200, await response.text()
                prompt_id = (await response.json())["id"]
        client.send(prompt=prompt_id)
        status = await client.wait_message(lambda m: m["type"] == "style" and m["style"] == "uploaded image"
                                           and m["status"] != "loading", 60)
        assert status and status["status"] == "ready", client.messages[-5:]
        await client.close()


async def test_peers_spread_over_nodes_full_cluster_503_and_a_lost_node_ends_only_its_session(cluster, clip_frames):
    deployment, host = cluster
    async with running_app(front_app(front_config(host, None), deployment)) as (app, url):
        front = app[FRONT]
        clients = [await connect(url, camera(clip_frames)) for _ in range(NODES)]
        sessions = list(front.sessions.values())
        assert len({s.node for s in sessions}) == NODES     # one peer per node: Serve honours each host's limit
        for client in clients:
            await client.wait_frames(5, timeout=90)
            assert len(client.frames) >= 5, client.last("error")

        with pytest.raises(ConnectionError, match="HTTP 503: the cluster is full"):
            await connect(url, camera(clip_frames))

        for _ in range(30):                                  # each host reports its session's rates every second
            status, health = await get_json(f"{url}/api/health")
            if sum(n["fps_out"] > 0 for n in health["nodes"]) == NODES:
                break
            await asyncio.sleep(1.0)
        assert status == 200 and health["peers"] == NODES and health["capacity"] == NODES
        serving = {n["node"]: n for n in health["nodes"] if n["peers"]}
        assert set(serving) == {s.node for s in sessions} and all(n["fps_out"] > 0 for n in serving.values())
        # each host measures its own load for its admission and fair share, as a single server does
        reports = [r for n in serving.values() for r in n["sessions"]]
        assert all(r["host"]["cpu_cores"] > 0 and r["host"]["max_peers"] == 1 and r["share"]["scale"] > 0
                   for r in reports), reports

        # the third peer leaves: its slot frees; then the first peer's node is lost
        leaving, lost, kept = sessions[2], sessions[0], sessions[1]
        await clients[2].close()
        _, state = await get_json(f"{url}/api/session/{leaving.id}?wait=20")
        assert state["state"] == "ended"
        await asyncio.to_thread(deployment.local.remove_node, lost.node)
        _, state = await get_json(f"{url}/api/session/{lost.id}?wait=30")
        assert state["state"] == "lost" and "session lost" in state["message"], state

        before = len(clients[1].frames)
        _, state = await get_json(f"{url}/api/session/{kept.id}?wait=3")
        assert state["state"] == "live" and len(clients[1].frames) > before      # the other session undisturbed

        await clients[0].close()                             # its page reconnects: a survivor takes it
        again = await connect(url, camera(clip_frames))
        newest = list(front.sessions.values())[-1]
        assert newest.node == leaving.node and newest.node != lost.node
        await again.wait_frames(5, timeout=90)
        assert len(again.frames) >= 5
        await asyncio.gather(again.close(), clients[1].close())


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
async def test_page_says_session_lost_and_reconnects_to_a_surviving_node(cluster, clip_frames, tmp_path):
    from playwright.async_api import async_playwright

    deployment, host = cluster
    assert len(deployment.local.node_ids) >= 2, "needs a node to lose and one to survive"
    fake_camera = still_y4m(clip_frames[0], tmp_path / "camera.y4m")
    async with running_app(front_app(front_config(host, None), deployment)) as (app, url), async_playwright() as pw:
        browser = await launch(pw, fake_camera)
        try:
            page = await browser.new_page()
            await page.goto(url + "/")
            await page.click("#start")
            await page.wait_for_function("window.live3dpe.connected && window.live3dpe.framesReceived >= 5",
                                         timeout=60_000)
            first = await page.evaluate("window.live3dpe.node")
            assert first in deployment.local.node_ids
            await asyncio.to_thread(deployment.local.remove_node, first)
            await page.wait_for_function("document.getElementById('status').textContent"
                                         ".includes('session lost, reconnecting')", timeout=30_000)
            await page.wait_for_function(f"window.live3dpe.connected && window.live3dpe.node !== {first!r}",
                                         timeout=60_000)
            frames = await page.evaluate("window.live3dpe.framesReceived")
            await page.wait_for_function(f"window.live3dpe.framesReceived >= {frames + 10}", timeout=30_000)
            assert await page.evaluate("window.live3dpe.sessionsLost") == 1
            assert await page.evaluate("window.live3dpe.node") in deployment.local.node_ids
        finally:
            await browser.close()
