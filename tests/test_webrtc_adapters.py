"""`serve --adapters DIR`: the folder lists its adapters by name (no paths over the network), the page's
"adapter" message prepares one off the stream — frames keep coming back while it loads — unknown names
are refused, and the real page (headless Chromium) shows the adapters and marks the running one.

Real aiortc peers and the real server; the engines are stubs (one holds `prepare` until the frames have
come back): preparing a real adapter needs the 3dpe network, which test_adapter.py and test_adapt.py do.
"""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from aiohttp import ClientSession

from benchmarks.browser import CHROMIUM, launch, still_y4m
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
        if prompt is None:                                   # the session's starting style
            return Style("none", "none", "none")
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
    with pytest.raises(ControlError, match="either a style, a prompt or an adapter"):
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
        refused = await client.wait_message(lambda m: m["type"] == "style" and m["status"] == "error", 10)
        assert refused and "no adapter named" in refused["message"] and refused["label"] == "adapter bronze"
        assert len(engine.prepared) == 1
        await client.close()


class AdapterEngine:
    """Prepares adapter styles at once (frames pass through: no stages)."""

    name, device, takes_text = "3dpe", "cpu", False

    def prepare(self, prompt):
        if prompt is None:
            return Style("none", "none", "none")
        return Style(prompt, "adapter", f"adapter {Path(prompt).stem}")


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
async def test_page_lists_adapters_and_marks_the_running_one(clips, tmp_path):
    from playwright.async_api import async_playwright

    for name in ("bronze", "clay"):
        (tmp_path / f"{name}.safetensors").write_bytes(b"x")
    camera = still_y4m(decode_clip(clips / "d10.mp4", limit=1)[0][0], tmp_path / "camera.y4m")
    config = ServerConfig(make_pipeline=lambda controls, on_error: ([], AdapterEngine()), presets=[],
                          adapters=AdapterFolder(tmp_path))
    pressed = "bs => bs.filter(b => b.getAttribute('aria-pressed') === 'true').map(b => b.dataset.adapter)"
    async with running_server(config) as (app, url), async_playwright() as pw:
        browser = await launch(pw, camera)
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(url + "/")
            await page.wait_for_selector("#adapters button[data-adapter='clay']")
            assert await page.is_visible("#adapters-box")
            await page.click("#start")
            await page.wait_for_function("window.live3dpe.connected", timeout=15_000)
            for name in ("clay", "bronze"):
                await page.click(f"#adapters button[data-adapter='{name}']")
                await page.wait_for_function(
                    "name => { const s = window.live3dpe.lastStyle; return s && s.status === 'ready'"
                    " && s.label === 'adapter ' + name; }", arg=name, timeout=10_000)
                assert await page.eval_on_selector_all("#adapters button", pressed) == [name]
                assert await page.text_content("#style-status") == f"Style: adapter {name}"
            assert not errors, errors
        finally:
            await browser.close()
