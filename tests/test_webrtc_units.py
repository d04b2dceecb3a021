"""The server's small parts alone: control protocol, health, token, upload sniffing, the live input
track (keeps only the newest frame), and the `live3dpe serve` command on a real port."""
from __future__ import annotations

import asyncio
import io
import json
import socket
import subprocess
import sys
import time
import urllib.request

import cv2
import numpy as np
import pytest
from aiohttp.test_utils import make_mocked_request

from webrtc.auth import token_ok
from webrtc.client import ClipCameraTrack
from webrtc.command import page_url, resolve_token
from webrtc.control import ControlError, health_state, parse_message
from webrtc.prompts import PromptError, PromptStore, image_kind
from webrtc.tracks import IncomingVideoSource


def test_control_messages_parse_validate_and_clamp():
    request = parse_message(json.dumps({"type": "set", "yaw": 500, "pitch": -3.5, "mode": "grid",
                                        "look_at_lens": True, "style": "  marble "}))
    assert request.changes == {"yaw": 90.0, "pitch": -3.5, "mode": "grid", "look_at_lens": True}
    assert request.style == "marble" and request.prompt_id is None
    assert parse_message('{"type": "set", "prompt": "0123456789abcdef0123"}').prompt_id == "0123456789abcdef0123"
    assert parse_message('{"type": "set", "style": "Bronze, weathered (old)"}').style == "Bronze, weathered (old)"
    for bad, words in [("[" * 50_000, "not JSON"),
                       ('{"type": "set", "prompt": "abc123"}', "prompt"),
                       ('{"type": "set", "prompt": "%s"}' % ("a" * 300), "prompt"),
                       # engines read these as image files on the server: never from the network
                       ('{"type": "set", "style": "image:/etc/secret.png"}', "preset name"),
                       ('{"type": "set", "style": "../photo.jpg"}', "preset name"),
                       ('{"type": "set", "style": "~/me.png"}', "preset name"),
                       ('{"type": "set", "style": "face.png"}', "preset name"),("nope", "not JSON"), ("[1]", "type"), ('{"type": "get"}', "type"),
                       ('{"type": "set", "yaw": "left"}', "yaw"), ('{"type": "set", "yaw": NaN}', "yaw"),
                       ('{"type": "set", "enabled": 1}', "enabled"), ('{"type": "set", "mode": "mosaic"}', "mode"),
                       ('{"type": "set", "colour": 1}', "unknown"), ('{"type": "set", "prompt": "../x"}', "prompt"),
                       ('{"type": "set", "style": ""}', "style"),
                       ('{"type": "set", "style": "a", "prompt": "0123456789abcdef0123"}', "either")]:
        with pytest.raises(ControlError, match=words):
            parse_message(bad)


def test_health_is_derived_from_rates():
    assert health_state(30, 29, 0.1) == "online"
    assert health_state(5, 5, 0.1) == "degraded input"
    assert health_state(30, 8, 0.1) == "degraded inference"
    assert health_state(0, 0, 5.0) == "offline"


def test_token_from_header_or_query_constant_time():
    assert token_ok(make_mocked_request("POST", "/offer"), None)
    assert token_ok(make_mocked_request("POST", "/offer?token=abc"), "abc")
    assert token_ok(make_mocked_request("POST", "/offer", headers={"Authorization": "Bearer abc"}), "abc")
    assert not token_ok(make_mocked_request("POST", "/offer"), "abc")
    assert not token_ok(make_mocked_request("POST", "/offer?token=abd"), "abc")


def test_uploads_are_sniffed_by_content():
    png = cv2.imencode(".png", np.full((32, 32, 3), 200, np.uint8))[1].tobytes()
    webp = cv2.imencode(".webp", np.full((32, 32, 3), 200, np.uint8))[1].tobytes()
    jpeg = cv2.imencode(".jpg", np.full((32, 32, 3), 200, np.uint8))[1].tobytes()
    assert [image_kind(png), image_kind(webp), image_kind(jpeg)] == ["png", "webp", "jpeg"]
    assert image_kind(b"GIF89a....") is None
    store = PromptStore(max_bytes=10_000)
    try:
        ids = [store.add(data) for data in (png, webp, jpeg)]
        assert all(store.path(i).exists() for i in ids)
        with pytest.raises(PromptError, match="between 16"):
            store.add(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes())
        with pytest.raises(PromptError, match="too large"):
            store.add(png + bytes(20_000))
        with pytest.raises(PromptError, match="unknown"):
            store.path("0123abcd")
    finally:
        store.close()


async def test_incoming_source_keeps_only_the_newest_frame_and_counts_skips():
    frames = [np.full((32, 32, 3), i * 20, np.uint8) for i in range(10)]
    track = ClipCameraTrack(frames, fps=1000.0, loop=False)          # faster than anyone reads
    source = IncomingVideoSource(track)
    await source.start()
    deadline = time.monotonic() + 10
    while source.received < 10 and time.monotonic() < deadline:     # all ten arrive before anyone reads
        await asyncio.sleep(0.01)
    packet = await asyncio.to_thread(source.read)
    assert packet.frame[0, 0, 0] == 180 and packet.seq == 0         # the newest, not the oldest
    assert packet.pts == track.sent * 90 - 90 and packet.time_base.denominator == 90000
    assert source.received == 10 and source.skipped == 9
    assert await asyncio.to_thread(source.read) is None              # track ended
    await source.close()


def test_non_local_bind_without_token_warns_and_generates_one():
    out = io.StringIO()
    assert resolve_token("127.0.0.1", None, out) is None
    assert resolve_token("0.0.0.0", "given", out) == "given"
    assert out.getvalue() == ""
    token = resolve_token("0.0.0.0", None, out)
    assert token and len(token) >= 24 and "WARNING" in out.getvalue()
    assert page_url("0.0.0.0", 8080, token) == f"http://127.0.0.1:8080/?token={token}"
    assert page_url("0.0.0.0", 8080, "a&b c") == "http://127.0.0.1:8080/?token=a%26b%20c"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_command_serves_the_page_on_localhost():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, page = time.monotonic() + 60, None
        while time.monotonic() < deadline and page is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
            except OSError:
                time.sleep(0.3)
        assert page is not None and "live3dpe" in page and "app.js" in page
        presets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/presets", timeout=5))
        assert "bronze statue" in presets["presets"]
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert f"open http://127.0.0.1:{port}/" in output


def test_serve_rejects_bad_arguments():
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "serve", "--max-peers", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--max-peers" in result.stderr and "Traceback" not in result.stderr
