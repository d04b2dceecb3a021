"""`serve --adapters DIR`: the folder lists its adapters by name (no paths over the network), the page's
"adapter" message prepares one off the stream — frames keep coming back while it loads — and unknown
names are refused. A real aiortc peer against the real server; the engine is a stub whose `prepare` is
held until the frames have come back (preparing a real adapter needs the 3dpe network: test_adapter.py)."""
from __future__ import annotations

import asyncio
import threading

import pytest
from aiohttp import ClientSession

from pipeline.errors import UserError
from stages.edit.engine import Style
from webrtc.adapters import AdapterFolder
from webrtc.client import ClipCameraTrack, connect, decode_clip
from webrtc.control import ControlError, parse_message
from webrtc.server import ServerConfig, running_server


class BlockedEngine:
    """`prepare` blocks until the test releases it, as a large adapter's loading would."""

    name, device = "3dpe", "cpu"

    def __init__(self):
        self.prepared: list[str] = []
        self.preparing, self.release = threading.Event(), threading.Event()

    def prepare(self, prompt):
        self.preparing.set()
        self.release.wait(30)
        self.prepared.append(prompt)
        return Style(str(prompt), "adapter", str(prompt))


def test_folder_lists_adapters_and_resolves_only_their_names(tmp_path):
    (tmp_path / "bronze.safetensors").write_bytes(b"x")
    (tmp_path / ".hidden.safetensors").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    folder = AdapterFolder(tmp_path)
    assert folder.names() == ["bronze"]
    assert folder.path("bronze") == tmp_path / "bronze.safetensors"
    (tmp_path / "clay.safetensors").write_bytes(b"x")
    assert folder.names() == ["bronze", "clay"]                          # read again on each listing
    for bad in ("../bronze", "/etc/passwd", "missing", 3):
        with pytest.raises(ValueError, match="no adapter named"):
            folder.path(bad)
    with pytest.raises(UserError, match="no such folder"):
        AdapterFolder(tmp_path / "nope")
    assert parse_message('{"type": "set", "adapter": "bronze"}').adapter == "bronze"
    with pytest.raises(ControlError, match="one of style, prompt or adapter"):
        parse_message('{"type": "set", "adapter": "bronze", "style": "marble"}')


@pytest.mark.slow
async def test_page_switches_adapters_without_stalling_the_stream(clips, tmp_path):
    (tmp_path / "bronze.safetensors").write_bytes(b"x")
    engine = BlockedEngine()
    config = ServerConfig(make_pipeline=lambda controls, on_error: ([], engine), presets=[],
                          adapters=AdapterFolder(tmp_path))
    async with running_server(config) as (app, url):
        async with ClientSession() as http:
            listing = await (await http.get(f"{url}/api/presets")).json()
        assert listing["adapters"] == ["bronze"]
        frames = decode_clip(clips / "d10.mp4", limit=30)[0]
        client = await connect(url, ClipCameraTrack(frames, fps=30.0))
        hello = await client.wait_message(lambda m: m["type"] == "hello", 30)
        assert hello["adapters"] == ["bronze"]
        await client.wait_frames(5, timeout=60)

        client.send(adapter="bronze")
        await asyncio.to_thread(engine.preparing.wait, 10)
        during = len(client.frames)
        await client.wait_frames(during + 10, timeout=30)                # the stream goes on while it loads
        assert len(client.frames) >= during + 10 and not engine.prepared
        engine.release.set()
        status = await client.wait_message(lambda m: m["type"] == "style" and m["status"] == "ready", 30)
        assert status["style"] == "adapter bronze"
        assert engine.prepared == [f"adapter:{tmp_path / 'bronze.safetensors'}"]

        client.send(adapter="../../etc/passwd")
        error = await client.wait_message(lambda m: m["type"] == "error", 10)
        assert error and "no adapter named" in error["message"]
        await client.close()
