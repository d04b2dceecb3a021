"""The page in a real headless Chromium with a fake camera fed from a clip: edited frames arrive, they
differ from the raw camera in the face region, the yaw slider changes the output, and the engine
options (smooth tracking; no EMA slider on classic) reach the peer's own face stage."""
from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from benchmarks.browser import CHROMIUM, launch, still_y4m
from pipeline.config import EngineConfig
from webrtc.client import decode_clip
from webrtc.pipeline_factory import edit_pipeline_factory, preset_names
from webrtc.server import PEERS, ServerConfig, running_server

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")]
GRAB = 64                                        # pixel grabs are scaled to GRAB×GRAB


def face_region(grab: dict) -> np.ndarray:
    image = np.asarray(grab["rgb"], np.float32).reshape(grab["size"], grab["size"], 3)
    q = grab["size"] // 4
    return image[q: 3 * q, q: 3 * q]


async def grab(page, which: str) -> dict:
    return await page.evaluate(f"window.live3dpe.grab('{which}', {GRAB})")


@pytest.fixture(scope="module")
def fake_camera(clips, tmp_path_factory) -> Path:
    frame = decode_clip(clips / "d10.mp4", limit=1)[0][0]
    return still_y4m(frame, tmp_path_factory.mktemp("camera") / "camera.y4m")


async def test_page_streams_edited_video_and_yaw_slider_changes_it(fake_camera):
    from playwright.async_api import async_playwright

    config = ServerConfig(make_pipeline=edit_pipeline_factory(EngineConfig(name="classic")), presets=preset_names())
    async with running_server(config) as (app, url), async_playwright() as pw:
        browser = await launch(pw, fake_camera)
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(url + "/")
            await page.wait_for_selector("#presets button[data-style='bronze statue']")
            await page.click("#start")
            await page.wait_for_function("window.live3dpe.connected", timeout=15_000)
            await page.wait_for_function("window.live3dpe.framesReceived >= 20", timeout=10_000)
            await page.keyboard.press("1")                   # shortcut: first preset, while streaming
            await page.wait_for_function("window.live3dpe.lastStyle && window.live3dpe.lastStyle.style === "
                                         "'bronze statue'", timeout=10_000)
            await page.wait_for_function("window.live3dpe.lastStyle && window.live3dpe.lastStyle.status === 'ready'"
                                         " && window.live3dpe.lastStats && window.live3dpe.lastStats.fps_out > 0",
                                         timeout=20_000)
            await asyncio.sleep(2.0)                     # a few frames with the style applied

            raw, edited = await grab(page, "raw"), await grab(page, "edited")
            assert raw and edited and edited["width"] > 0
            style_change = np.abs(face_region(edited) - face_region(raw)).mean()
            assert style_change > 12, f"edited face region barely differs from the camera ({style_change:.1f})"

            await asyncio.sleep(1.0)
            edited_again = await grab(page, "edited")
            noise = np.abs(face_region(edited_again) - face_region(edited)).mean()   # same still input
            await page.focus("#yaw")
            for _ in range(30):                          # drag the slider by keyboard: 0 → +30°
                await page.keyboard.press("ArrowRight")
            assert await page.input_value("#yaw") == "30"
            await page.wait_for_function("window.live3dpe.lastStats && window.live3dpe.lastStats.settings.yaw === 30",
                                         timeout=10_000)
            await asyncio.sleep(2.0)
            turned = await grab(page, "edited")
            yaw_change = np.abs(face_region(turned) - face_region(edited_again)).mean()
            assert yaw_change > max(3 * noise, 4.0), (yaw_change, noise)

            await page.click("#style-text")             # typing a style: the shortcut keys are just letters
            await page.keyboard.type("m l 0 n")
            assert await page.input_value("#style-text") == "m l 0 n"
            assert await page.input_value("#mode") == "paste" and await page.input_value("#yaw") == "30"
            assert not await page.is_checked("#look-at-lens") and await page.is_checked("#enabled")
            assert "bronze statue" in await page.text_content("#style-status")

            stats_line = await page.text_content("#stats")
            assert "fps" in stats_line and "latency" in stats_line and "drops" in stats_line

            assert await page.is_hidden("#ema-row")             # the classic engine has no triplane EMA
            assert await page.is_checked("#smoothing")
            await page.click("#smoothing")
            await page.wait_for_function("window.live3dpe.lastStats && "
                                         "window.live3dpe.lastStats.engine_options.smoothing === false", timeout=10_000)
            (session,) = app[PEERS].sessions
            assert next(s for s in session.stages if s.name == "face").smoothing is False

            await page.click("#stop")                    # a new session starts from what the page shows
            await page.evaluate("window.live3dpe.lastStats = null")
            await page.click("#start")
            await page.wait_for_function("window.live3dpe.lastStats && window.live3dpe.lastStats.settings.yaw === 30"
                                         " && window.live3dpe.lastStats.settings.style === 'bronze statue'"
                                         " && window.live3dpe.lastStats.engine_options.smoothing === false",
                                         timeout=20_000)
            await page.evaluate("window.live3dpe.set({engine: {triplane_ema: 0.3}})")    # a 3dpe-only option
            await page.wait_for_function("(window.live3dpe.lastError || '').includes('3dpe engine')", timeout=10_000)
            assert "3dpe engine" in await page.text_content("#status")
            assert not errors, errors
            await page.close()                           # closing the tab releases the peer quickly
            for _ in range(50):                          # well before the 6 s no-input watchdog
                if not app[PEERS].sessions:
                    break
                await asyncio.sleep(0.1)
            assert not app[PEERS].sessions
        finally:
            await browser.close()


async def test_page_says_when_the_server_is_full(fake_camera):
    from playwright.async_api import async_playwright

    config = ServerConfig(make_pipeline=lambda controls, on_error: ([], None), presets=[], max_peers=0)
    async with running_server(config) as (app, url), async_playwright() as pw:
        browser = await launch(pw, fake_camera)
        try:
            page = await browser.new_page()
            await page.goto(url + "/")
            await page.click("#start")
            await page.wait_for_function("window.live3dpe.lastError !== null", timeout=10_000)
            assert "Server full" in await page.text_content("#status")
        finally:
            await browser.close()
