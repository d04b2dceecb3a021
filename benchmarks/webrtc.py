"""WebRTC benchmark: fps delivered to one peer (an aiortc client, or headless Chromium with the clip as its
camera) and the server's internal latency (frame received from the peer → edited frame handed to the
encoder), p50/p95; and whether the picture stays sharp: the edited video's resolution, sampled every second,
against the camera's (Chromium lowers its camera's resolution when bandwidth or CPU run short, and the edited
video has the input's size). Latency and resolution over time are plotted.

    python -m benchmarks.webrtc --clip ../shared/clips/d10.mp4 --seconds 60 --style "bronze statue" --browser
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable

import numpy as np
from tqdm import tqdm

import testdata
from pipeline.config import EngineConfig
from pipeline.errors import UserError
from webrtc.client import ClipCameraTrack, connect, decode_clip
from webrtc.pipeline_factory import edit_pipeline_factory, preset_names
from webrtc.server import PEERS, ServerConfig, running_server


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clip", default=None, help="default: the reference clip d10.mp4 (testdata)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time after the warm-up")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds ignored at the start (model loading)")
    parser.add_argument("--style", default="bronze statue")
    parser.add_argument("--engine", default="classic")
    parser.add_argument("--browser", action="store_true",
                        help="the peer is headless Chromium (/usr/bin/chromium) showing the page, not an aiortc client")
    parser.add_argument("--out", default="benchmark-webrtc", help="writes OUT.json and OUT.png")


BROWSER_CAMERA = (640, 480)          # what the page asks for


@dataclass
class PeerProbe:
    """What the benchmark reads from a peer: edited frames received so far, and the video's current state
    ({"camera": [w, h], "edited": [w, h] or None, plus the browser's own "camera_limited_by" and kbps})."""

    frames_received: Callable[[], Awaitable[int]]
    video: Callable[[], Awaitable[dict]]


@asynccontextmanager
async def aiortc_peer(url: str, clip: str, style: str) -> AsyncIterator[PeerProbe]:
    """An in-process aiortc client sending the clip."""
    frames, fps = decode_clip(clip, limit=300)
    client = await connect(url, ClipCameraTrack(frames, fps=fps))
    try:
        while client.channel.readyState != "open":
            await asyncio.sleep(0.05)
        client.send(style=style)

        async def received() -> int:
            return len(client.frames)

        async def video() -> dict:
            last = next((f.image for f in reversed(client.frames) if f.image is not None), None)
            return {"camera": [frames[0].shape[1], frames[0].shape[0]],
                    "edited": None if last is None else [last.shape[1], last.shape[0]]}
        yield PeerProbe(received, video)
    finally:
        await client.close()


@asynccontextmanager
async def browser_peer(url: str, clip: str, style: str) -> AsyncIterator[PeerProbe]:
    """The page in headless Chromium, its camera playing the clip at 640×480; frames counted as the page's
    <video> showed them, sizes as its <video> elements decode them."""
    from playwright.async_api import async_playwright

    from benchmarks.browser import clip_y4m, launch

    with tempfile.TemporaryDirectory() as tmp:
        camera = clip_y4m(clip, Path(tmp) / "camera.y4m", seconds=10.0, size=BROWSER_CAMERA)
        async with async_playwright() as pw:
            browser = await launch(pw, camera)
            try:
                page = await browser.new_page()
                await page.goto(url + "/")
                await page.click("#start")
                await page.wait_for_function("window.live3dpe.connected", timeout=30_000)
                await page.evaluate(f"window.live3dpe.set({{style: {json.dumps(style)}}})")

                async def received() -> int:
                    return await page.evaluate("window.live3dpe.framesReceived")

                async def video() -> dict:
                    return await page.evaluate("""(() => {
                        const raw = document.getElementById("raw"), edited = document.getElementById("edited");
                        const v = window.live3dpe.video || {};
                        return {camera: [raw.videoWidth, raw.videoHeight],
                                edited: edited.videoWidth ? [edited.videoWidth, edited.videoHeight] : null,
                                camera_limited_by: v.camera ? v.camera.limitation : null,
                                camera_kbps: v.camera ? v.camera.kbps : null, edited_kbps: v.edited ? v.edited.kbps : null};
                    })()""")
                yield PeerProbe(received, video)
            finally:
                await browser.close()


async def measure(clip: str, seconds: float, warmup: float, style: str, engine: str, browser: bool = False) -> dict:
    config = ServerConfig(make_pipeline=edit_pipeline_factory(EngineConfig(name=engine)), presets=preset_names())
    peer = browser_peer if browser else aiortc_peer
    async with running_server(config) as (app, url), peer(url, clip, style) as probe:
        session = next(iter(app[PEERS].sessions))
        await asyncio.sleep(warmup)
        series: list[tuple[float, float]] = []          # (seconds, internal latency ms)
        samples: list[tuple[float, dict]] = []          # (seconds, probe.video())
        start, received0, sent0 = time.perf_counter(), await probe.frames_received(), session.output.sent
        arrived0 = session.source.received
        seen = session.output.sent
        with tqdm(total=int(seconds), desc="webrtc benchmark", unit="s") as progress:
            for _ in range(int(seconds)):
                await asyncio.sleep(1.0)
                new = session.output.sent - seen
                seen = session.output.sent
                now = time.perf_counter() - start
                series += [(now, ms) for ms in list(session.output.latencies_ms)[-new:]] if new else []
                samples.append((now, await probe.video()))
                progress.update(1)
        elapsed = time.perf_counter() - start
        received, stats = await probe.frames_received() - received0, session.stats({})
        arrived = session.source.received - arrived0
        graph = session.graph.metrics.snapshot()
    latencies = np.array([ms for _, ms in series]) if series else np.array([np.nan])
    half = len(series) // 2
    return {
        "clip": clip, "peer": "chromium" if browser else "aiortc", "engine": engine, "style": style,
        "seconds": elapsed, "input_fps": arrived / elapsed,
        "fps_delivered": received / elapsed, "fps_sent": (seen - sent0) / elapsed,
        "latency_ms": {"p50": float(np.nanpercentile(latencies, 50)), "p95": float(np.nanpercentile(latencies, 95))},
        "latency_p50_first_half_ms": float(np.median([ms for _, ms in series[:half]] or [np.nan])),
        "latency_p50_second_half_ms": float(np.median([ms for _, ms in series[half:]] or [np.nan])),
        "input_skipped": stats["skipped_input"], "graph_drops": graph["drops"],
        "stages_p50_ms": {k: round(v["p50_ms"], 1) for k, v in graph["stages"].items()},
        "resolution": resolution_summary([video for _, video in samples]),
        "series": series, "resolution_series": samples,
    }


def resolution_summary(samples: list[dict]) -> dict:
    """The camera's size, the edited video's median size (by pixel count) and the share of samples at the
    camera's size; for a browser peer also why its camera was limited and the median bitrates."""
    camera = samples[-1]["camera"] if samples else None
    edited = [s["edited"] for s in samples if s.get("edited")]
    by_pixels = sorted(edited, key=lambda wh: wh[0] * wh[1])
    summary = {
        "camera": camera, "edited_median": by_pixels[len(by_pixels) // 2] if by_pixels else None,
        "edited_smallest": by_pixels[0] if by_pixels else None,
        "share_at_camera_size": sum(wh == camera for wh in edited) / len(samples) if samples else 0.0,
    }
    reasons = [s["camera_limited_by"] for s in samples if s.get("camera_limited_by")]
    if reasons:
        summary["camera_limited_by"] = {r: reasons.count(r) for r in sorted(set(reasons))}
    for key in ("camera_kbps", "edited_kbps"):
        values = [s[key] for s in samples if s.get(key) is not None]
        if values:
            summary[key + "_median"] = float(np.median(values))
    return summary


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, ms = zip(*result["series"]) if result["series"] else ((), ())
    fig, (ax, res) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax.plot(t, ms, ".", markersize=3)
    ax.set_ylabel("internal latency, ms")
    ax.set_title(f"WebRTC to {result['peer']}, {result['engine']}: {result['fps_delivered']:.1f} fps delivered, "
                 f"p50 {result['latency_ms']['p50']:.0f} ms, p95 {result['latency_ms']['p95']:.0f} ms")
    seconds = [s for s, _ in result["resolution_series"]]
    res.step(seconds, [v["edited"][1] if v.get("edited") else 0 for _, v in result["resolution_series"]],
             where="post", label="edited video height")
    res.step(seconds, [v["camera"][1] for _, v in result["resolution_series"]], where="post", linestyle="--",
             label="camera height")
    res.set_ylim(bottom=0)
    res.set_xlabel("seconds"), res.set_ylabel("pixels")
    res.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    args.clip = args.clip or str(testdata.path("clips/d10.mp4"))
    if not Path(args.clip).is_file():
        raise UserError(f"clip not found: {args.clip} (pass --clip)")
    if args.seconds < 1:
        raise UserError("--seconds must be at least 1")
    result = asyncio.run(measure(args.clip, args.seconds, args.warmup, args.style, args.engine, args.browser))
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({k: v for k, v in result.items() if not k.endswith("series")},
                                                   indent=2))
    plot(result, out.with_suffix(".png"))
    size = result["resolution"]
    print(f"edited video median {_size(size['edited_median'])} (camera {_size(size['camera'])}, smallest "
          f"{_size(size['edited_smallest'])}, {size['share_at_camera_size']:.0%} of seconds at the camera's size)")
    print(f"fps delivered {result['fps_delivered']:.1f} (input {result['input_fps']:.0f}); internal latency "
          f"p50 {result['latency_ms']['p50']:.0f} ms, p95 {result['latency_ms']['p95']:.0f} ms; "
          f"p50 first half {result['latency_p50_first_half_ms']:.0f} ms, second half "
          f"{result['latency_p50_second_half_ms']:.0f} ms; wrote {out}.json, {out}.png")
    return 0


def _size(wh: list[int] | None) -> str:
    return "×".join(map(str, wh)) if wh else "none"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
