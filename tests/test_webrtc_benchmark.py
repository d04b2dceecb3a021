"""The WebRTC benchmark runs end to end with both peers (briefly) and reports what docs/benchmarks.md quotes:
fps, latency, and the edited video's resolution against the camera's."""
from __future__ import annotations

import pytest

from benchmarks.browser import CHROMIUM
from benchmarks.webrtc import measure
from webrtc.client import decode_clip


@pytest.mark.slow
@pytest.mark.parametrize("browser", [False, pytest.param(True, marks=pytest.mark.browser)])
async def test_benchmark_measures_fps_and_latency(clips, browser):
    if browser and not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")
    result = await measure(str(clips / "d10.mp4"), seconds=3, warmup=2, style="bronze statue", engine="classic",
                           browser=browser)
    assert result["peer"] == ("chromium" if browser else "aiortc")
    assert 20 <= result["input_fps"] <= 40                      # the clip is sent at its own 30 fps
    assert 0 < result["fps_delivered"] <= result["input_fps"] + 2
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p95"]
    assert {"face", "edit", "render", "composite"} <= set(result["stages_p50_ms"])
    size = result["resolution"]                                 # sampled each second, the edited video vs the camera
    frame = decode_clip(clips / "d10.mp4", limit=1)[0][0]
    assert size["camera"] == ([640, 480] if browser else [frame.shape[1], frame.shape[0]])
    assert len(result["resolution_series"]) == 3
    assert size["edited_median"] is not None and 0 <= size["share_at_camera_size"] <= 1
