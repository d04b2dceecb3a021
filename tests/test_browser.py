"""The page in a real headless Chromium with a fake camera fed from a clip: edited frames arrive and differ
from the camera, the controls and shortcuts steer the peer within the server's limits, style feedback has
one honest place, the camera inset never covers the edited picture in side-by-side and grid modes (checked
on screenshots), and the header tells the truth when the server goes away and comes back."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.browser import CHROMIUM, launch, still_y4m
from pipeline.config import CAMERA_LIMITS, EngineConfig
from stages.edit.classic import ClassicEngine
from webrtc.client import decode_clip
from webrtc.fair_share import ShareLimits
from webrtc.pipeline_factory import edit_pipeline_factory, preset_names
from webrtc.server import PEERS, ServerConfig, running_server

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")]
GRAB = 64                                        # pixel grabs are scaled to GRAB×GRAB
DESKTOP, PHONE = (1280, 800), (390, 844)
CAMERA_SIZE = "[document.getElementById('raw').videoWidth, document.getElementById('raw').videoHeight]"


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


def classic_server() -> ServerConfig:
    # Full resolution whatever the load: these tests check sizes, and Chromium on the same busy cores would
    # otherwise let the shared budget lower the resolution (that is tested in test_webrtc_overload.py).
    return ServerConfig(make_pipeline=edit_pipeline_factory(EngineConfig(name="classic")), presets=preset_names(),
                        share=ShareLimits(scales=(1.0,)))


async def open_page(browser, url: str, viewport: tuple[int, int] = DESKTOP):
    page = await browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(url + "/")
    await page.wait_for_selector("#presets button[data-style='none']")
    return page, errors


async def start_streaming(page, frames: int = 20) -> None:
    await page.click("#start")
    await page.wait_for_function("window.live3dpe.connected", timeout=15_000)
    await page.wait_for_function(f"window.live3dpe.framesReceived >= {frames}", timeout=20_000)


async def pressed_presets(page) -> list[str]:
    return await page.eval_on_selector_all("#presets button[aria-pressed='true']", "bs => bs.map(b => b.dataset.style)")


async def test_page_streams_edited_video_and_controls_follow_the_server(fake_camera):
    from playwright.async_api import async_playwright

    async with running_server(classic_server()) as (app, url), async_playwright() as pw:
        browser = await launch(pw, fake_camera)
        try:
            page, errors = await open_page(browser, url)
            # before streaming: a visible default, the server's range on the sliders, help matching the presets
            assert await pressed_presets(page) == ["none"]
            assert "No style: pick one above (keys 1–8)" in await page.text_content("#style-status")
            for axis in ("yaw", "pitch"):
                limit = f"{CAMERA_LIMITS[axis]:g}"
                assert (await page.get_attribute(f"#{axis}", "max"), await page.get_attribute(f"#{axis}", "min")) \
                    == (limit, f"-{limit}")
            assert await page.text_content("#preset-keys") == f"1–{len(preset_names())} presets, in the order shown"
            assert await page.get_by_label("Describe a style").count() == 1
            assert await page.get_attribute("#edited", "aria-label") and await page.get_attribute("#raw", "aria-label")
            icon = await page.get_attribute("link[rel='icon']", "href")
            assert (await page.request.get(url + icon)).ok

            await start_streaming(page)
            assert await page.evaluate("document.getElementById('raw').srcObject.getAudioTracks().length") == 0
            sender = await page.evaluate("window.live3dpe.cameraParameters()")     # keep the camera sharp
            assert sender["degradationPreference"] == "maintain-resolution", sender
            assert sender["encodings"][0]["maxBitrate"] >= 1_000_000, sender
            await page.keyboard.press("1")                   # shortcut: first preset, while streaming
            await page.wait_for_function("window.live3dpe.lastStyle && window.live3dpe.lastStyle.status === 'ready'"
                                         " && window.live3dpe.lastStyle.preset === 'bronze statue'"
                                         " && window.live3dpe.lastStats && window.live3dpe.lastStats.fps_out > 0",
                                         timeout=20_000)
            assert await pressed_presets(page) == ["bronze statue"]
            await asyncio.sleep(2.0)                     # a few frames with the style applied

            raw, edited = await grab(page, "raw"), await grab(page, "edited")
            assert raw and edited and edited["width"] > 0
            style_change = np.abs(face_region(edited) - face_region(raw)).mean()
            assert style_change > 12, f"edited face region barely differs from the camera ({style_change:.1f})"

            await asyncio.sleep(1.0)
            edited_again = await grab(page, "edited")
            noise = np.abs(face_region(edited_again) - face_region(edited)).mean()   # same still input
            await page.focus("#yaw")                     # a focused slider steps as the page's arrows do
            await page.keyboard.press("ArrowRight")
            assert await page.input_value("#yaw") == "5"
            yaw = CAMERA_LIMITS["yaw"]
            for _ in range(int(yaw // 5) + 2):           # and stops at the server's limit
                await page.keyboard.press("ArrowRight")
            assert float(await page.input_value("#yaw")) == yaw
            await page.wait_for_function(f"window.live3dpe.lastStats && window.live3dpe.lastStats.settings.yaw === {yaw}",
                                         timeout=10_000)
            await asyncio.sleep(2.0)
            turned = await grab(page, "edited")
            yaw_change = np.abs(face_region(turned) - face_region(edited_again)).mean()
            assert yaw_change > max(3 * noise, 4.0), (yaw_change, noise)
            await page.evaluate("window.live3dpe.set({yaw: 80})")            # beyond the range: held at its end
            await asyncio.sleep(0.5)
            assert (await page.evaluate("window.live3dpe.lastStats.settings.yaw"), await page.input_value("#yaw")) \
                == (yaw, f"{yaw:g}")
            await page.evaluate("document.activeElement.blur()")             # the page's own arrows: the same step
            await page.keyboard.press("ArrowLeft")
            assert float(await page.input_value("#yaw")) == yaw - 5
            yaw -= 5

            await page.click("#style-text")             # typing a style: the shortcut keys are just letters
            await page.keyboard.type("m l 0 n")
            assert await page.input_value("#style-text") == "m l 0 n"
            assert await page.input_value("#mode") == "paste" and float(await page.input_value("#yaw")) == yaw
            assert not await page.is_checked("#look-at-lens") and await page.is_checked("#enabled")
            assert "bronze statue" in await page.text_content("#style-status")

            await page.focus("#shortcuts summary")      # Space on the shortcuts heading folds the list
            await page.keyboard.press(" ")
            assert not await page.evaluate("document.getElementById('shortcuts').open")
            assert await page.is_checked("#enabled")    # … and is not the edit on/off shortcut there

            await page.wait_for_function("document.getElementById('stats-detail').textContent.includes('drops')",
                                         timeout=10_000)
            summary, detail = await page.text_content("#stats-summary"), await page.text_content("#stats-detail")
            assert "fps" in summary and "latency" in summary and "drops" not in summary      # short by default
            assert not await page.is_visible("#stats-detail")                               # the detail folded
            width, height = await page.evaluate(CAMERA_SIZE)
            assert f"server → page: {width}×{height}" in detail and "kbps" in detail

            assert await page.is_hidden("#ema-row")             # the classic engine has no triplane EMA
            assert await page.is_checked("#smoothing")
            await page.click("#smoothing")
            await page.wait_for_function("window.live3dpe.lastStats && "
                                         "window.live3dpe.lastStats.engine_options.smoothing === false", timeout=10_000)
            (session,) = app[PEERS].sessions
            assert next(s for s in session.stages if s.name == "face").smoothing is False

            await page.click("#stop")                    # a new session starts from what the page shows
            assert await page.text_content("#status") == "stopped" and await page.is_enabled("#start")
            assert await page.text_content("#stats-summary") == "not connected" and await page.is_hidden("#raw")
            await page.click("#start")
            await page.wait_for_function(f"window.live3dpe.lastStats && window.live3dpe.lastStats.settings.yaw === {yaw}"
                                         " && window.live3dpe.lastStats.settings.style === 'bronze statue'"
                                         " && window.live3dpe.lastStats.engine_options.smoothing === false",
                                         timeout=20_000)
            await page.evaluate("window.live3dpe.set({engine: {triplane_ema: 0.3}})")    # a 3dpe-only option
            await page.wait_for_function("(window.live3dpe.lastError || '').includes('3dpe engine')", timeout=10_000)
            assert "3dpe engine" in await page.text_content("#notice")
            assert await page.text_content("#status") == "connected"      # the header's state stays true
            assert not errors, errors
            await page.close()                           # closing the tab releases the peer quickly
            for _ in range(50):                          # well before the 6 s no-input watchdog
                if not app[PEERS].sessions:
                    break
                await asyncio.sleep(0.1)
            assert not app[PEERS].sessions
        finally:
            await browser.close()


async def test_style_feedback_has_one_place_and_describes_what_runs(fake_camera, tmp_path):
    """Refusals stay in the style box (not the header), replace each other, keep the running preset marked,
    and an upload error is not overwritten by the stats. The classic engine maps the text; frames pass through."""
    from playwright.async_api import async_playwright

    config = ServerConfig(make_pipeline=lambda controls, on_error: ([], ClassicEngine()), presets=preset_names())
    async with running_server(config) as (app, url), async_playwright() as pw:
        browser = await launch(pw, fake_camera)
        try:
            page, errors = await open_page(browser, url)
            assert await page.get_attribute("#style-status", "aria-live") == "polite"
            await page.click("#presets button[data-style='marble']")           # before Start: said, then applied
            assert "applied once the camera starts" in await page.text_content("#style-status")
            await start_streaming(page, frames=5)
            await page.wait_for_function("window.live3dpe.lastStyle && window.live3dpe.lastStyle.preset === 'marble'",
                                         timeout=10_000)

            async def describe(text: str, status: str) -> str:
                await page.fill("#style-text", text)
                await page.press("#style-text", "Enter")
                await page.wait_for_function(
                    "([text, status]) => { const s = window.live3dpe.lastStyle;"
                    " return s && s.style === text && s.status === status; }", arg=[text, status], timeout=10_000)
                return await page.text_content("#style-status")

            box = await describe("qwzx", "error")
            assert "“qwzx” was not applied" in box and "Still running: marble" in box and "path" not in box
            assert await pressed_presets(page) == ["marble"]
            box = await describe("c:/etc/passwd", "error")
            assert "“c:/etc/passwd”" in box and "qwzx" not in box and "Still running: marble" in box
            assert await page.text_content("#status") == "connected" and await page.is_hidden("#notice")
            assert await describe("golden statue.", "ready") == "Style: golden statue"
            assert await pressed_presets(page) == ["golden statue"]
            box = await describe("Van Gogh’s Starry Night", "ready")
            assert box == "Style: van gogh starry night → oil painting"
            assert await pressed_presets(page) == ["oil painting"]

            not_an_image = tmp_path / "notes.png"
            not_an_image.write_text("these are words, not pixels")
            await page.set_input_files("#prompt-file", str(not_an_image))
            await page.wait_for_function("document.getElementById('style-status').textContent.includes('notes.png')"
                                         " && document.getElementById('style-status').classList.contains('error')",
                                         timeout=10_000)
            seen = await page.evaluate("window.live3dpe.statsReceived")
            await page.wait_for_function(f"window.live3dpe.statsReceived >= {seen + 3}", timeout=10_000)
            box = await page.text_content("#style-status")                     # three stats messages later
            assert "“notes.png” was not applied" in box and "PNG, JPEG or WebP" in box, box
            assert "Still running: van gogh starry night → oil painting" in box
            assert not errors, errors
        finally:
            await browser.close()


PICTURE_AND_INSET = """() => {
    const video = document.getElementById("edited"), box = video.getBoundingClientRect();
    const scale = Math.min(box.width / video.videoWidth, box.height / video.videoHeight);
    const width = video.videoWidth * scale, height = video.videoHeight * scale;
    const raw = document.getElementById("raw"), inset = raw.getBoundingClientRect();
    return {picture: {x: box.x + (box.width - width) / 2, y: box.y + (box.height - height) / 2, width, height},
            inset: raw.hidden ? null : {x: inset.x, y: inset.y, width: inset.width, height: inset.height}};
}"""


def intersects(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and \
        a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


async def corner_mismatch(page, picture: dict) -> float:
    """Mean difference between a screenshot of the picture's bottom-right corner (where a corner inset sits)
    and the same corner of the edited frame itself: large when something covers the picture there."""
    clip = {k: round(v) for k, v in picture.items()}
    shot = cv2.imdecode(np.frombuffer(await page.screenshot(clip=clip), np.uint8), cv2.IMREAD_COLOR)
    shown = cv2.resize(cv2.cvtColor(shot, cv2.COLOR_BGR2RGB), (GRAB, GRAB), interpolation=cv2.INTER_AREA)
    frame = await grab(page, "edited")
    frame = np.asarray(frame["rgb"], np.float32).reshape(GRAB, GRAB, 3)
    corner = slice(int(GRAB * 0.7), GRAB), slice(int(GRAB * 0.7), GRAB)
    return float(np.abs(shown[corner].astype(np.float32) - frame[corner]).mean())


async def test_camera_inset_never_covers_the_picture_in_side_by_side_and_grid(fake_camera):
    from playwright.async_api import async_playwright

    async with running_server(classic_server()) as (app, url), async_playwright() as pw:
        browser = await launch(pw, fake_camera)
        try:
            page, errors = await open_page(browser, url)
            before = await page.eval_on_selector("#edited", "v => v.getBoundingClientRect().toJSON()")
            assert await page.is_hidden("#raw") and await page.is_visible("#placeholder")   # no black box sticking out
            assert abs(before["width"] / before["height"] - 4 / 3) < 0.02
            await start_streaming(page, frames=10)
            camera = await page.evaluate(CAMERA_SIZE)
            layout = await page.evaluate(PICTURE_AND_INSET)                    # paste: a corner inset the user can hide
            assert layout["inset"] and intersects(layout["inset"], layout["picture"])
            covered = await corner_mismatch(page, layout["picture"])
            await page.keyboard.press("c")
            assert await page.is_hidden("#raw") and not await page.is_checked("#show-raw")
            await asyncio.sleep(0.3)
            uncovered = await corner_mismatch(page, layout["picture"])
            assert covered > 2 * uncovered + 10, (covered, uncovered)
            await page.click("#show-raw")

            for mode, tiles in (("side-by-side", 2), ("grid", 3)):                 # the stream's shape changes
                await page.select_option("#mode", mode)
                await page.wait_for_function(f"document.getElementById('edited').videoWidth >= {tiles * camera[0]}",
                                             timeout=20_000)
                for viewport in (DESKTOP, PHONE):
                    await page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
                    await page.locator("#videos").scroll_into_view_if_needed()
                    await asyncio.sleep(0.3)
                    layout = await page.evaluate(PICTURE_AND_INSET)
                    assert layout["inset"], (mode, viewport)                   # still shown, beside the picture
                    assert not intersects(layout["inset"], layout["picture"]), (mode, viewport, layout)
                    mismatch = await corner_mismatch(page, layout["picture"])
                    assert mismatch < covered / 2, (mode, viewport, mismatch, covered)
                await page.set_viewport_size({"width": DESKTOP[0], "height": DESKTOP[1]})
            assert not errors, errors
        finally:
            await browser.close()


DEGRADED_STATS = """() => {
    showStats({health: "degraded inference", fps_in: 30, fps_out: 12, latency_ms: {p50: 80, p95: 120},
               graph: {drops: 3, stages: {}}, skipped_input: 0, engine: "classic", device: "cpu", video: {}});
    const summary = document.getElementById("stats-summary"), note = document.getElementById("health-note");
    return [summary.textContent, getComputedStyle(summary).color, note.hidden ? null : note.textContent];
}"""


async def test_status_follows_the_server_going_away_and_coming_back(fake_camera):
    from playwright.async_api import async_playwright

    config = ServerConfig(make_pipeline=lambda controls, on_error: ([], None), presets=[])
    async with async_playwright() as pw:
        browser = await launch(pw, fake_camera)
        try:
            async with running_server(config) as (app, url):
                port = int(url.rsplit(":", 1)[1])
                page, errors = await open_page(browser, url)
                await start_streaming(page, frames=5)
                await page.wait_for_function("window.live3dpe.lastStats !== null", timeout=10_000)
            stopped = time.monotonic()                                          # the server has shut down
            await page.wait_for_function("document.getElementById('status').textContent.startsWith('disconnected')",
                                         timeout=5_000)
            assert time.monotonic() - stopped < 2.0
            assert "retrying in" in await page.text_content("#status")
            assert await page.text_content("#stats-summary") == "not connected"   # the stats cleared
            assert await page.is_disabled("#start") and await page.is_enabled("#stop")
            assert not await page.evaluate("window.live3dpe.connected")
            await asyncio.sleep(1.5)                                            # a retry or two finds nobody
            async with running_server(config, port=port) as (app, url):
                await page.wait_for_function("window.live3dpe.connected", timeout=25_000)
                assert await page.text_content("#status") == "connected"
                await page.wait_for_function("window.live3dpe.lastStats !== null", timeout=10_000)
                frames = await page.evaluate("window.live3dpe.framesReceived")
                await page.wait_for_function(f"window.live3dpe.framesReceived > {frames + 5}", timeout=10_000)
                assert len(app[PEERS].sessions) == 1
                await page.click("#stop")
                assert await page.text_content("#status") == "stopped"
                assert await page.is_enabled("#start") and await page.is_disabled("#stop")
            summary, colour, note = await page.evaluate(DEGRADED_STATS)             # a degraded state is explained
            assert summary.startswith("degraded inference · 12 fps") and colour == "rgb(255, 210, 122)"
            assert note == "The server edits 12 of 30 frames a second: it is busy, so frames are skipped to stay live."
            assert not errors, errors
        finally:
            await browser.close()


async def test_page_says_when_the_server_is_full(fake_camera):
    from playwright.async_api import async_playwright

    config = ServerConfig(make_pipeline=lambda controls, on_error: ([], None), presets=[], max_peers=0)
    async with running_server(config) as (app, url), async_playwright() as pw:
        browser = await launch(pw, fake_camera)
        try:
            page, _ = await open_page(browser, url)
            await page.click("#start")
            await page.wait_for_function("window.live3dpe.lastError !== null", timeout=10_000)
            await page.wait_for_function("document.getElementById('status').textContent.includes('retrying')",
                                         timeout=5_000)
            assert "Server full" in await page.text_content("#status")
            assert await page.is_enabled("#stop")                               # the user can give up waiting
        finally:
            await browser.close()
