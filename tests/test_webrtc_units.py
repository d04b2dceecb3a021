"""The server's small parts alone: control protocol, engine options, offered media directions, health,
token, upload sniffing, the live input track (keeps only the newest frame), and the `live3dpe serve`
command on a real port."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import socket
import subprocess
import sys
import time
import types
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from aiohttp.test_utils import make_mocked_request
from test_edit_fakes import make_face, textured_frame

from pipeline.config import CAMERA_LIMITS, EngineConfig
from stages.edit.classic import ClassicEngine
from stages.edit.engine import Style
from stages.edit.stage import TEXT_STYLE, style_prompt
from stages.source_image import image_path_in
from stages.face import FaceConfig, FaceStage, FaceTracker
from webrtc import engine_options
from webrtc.auth import token_ok
from webrtc.client import ClipCameraTrack, decode_clip
from cli.serve import page_url, resolve_token
from webrtc.control import ControlError, health_state, parse_message
from webrtc.engine_options import EngineOptionError, EngineOptions
from webrtc.peer import offered_directions, running_style, setting_label
from webrtc.prompts import PromptError, PromptStore, image_kind
from webrtc.tracks import IncomingVideoSource


def test_control_messages_parse_validate_and_clamp():
    request = parse_message(json.dumps({"type": "set", "yaw": 500, "pitch": -3.5, "roll": -90, "mode": "grid",
                                        "look_at_lens": True, "style": "  marble "}))
    # the virtual camera's range is the engine's, the same the page's sliders get
    assert request.changes == {"yaw": CAMERA_LIMITS["yaw"], "pitch": -3.5, "roll": -CAMERA_LIMITS["roll"],
                               "mode": "grid", "look_at_lens": True}
    assert parse_message('{"type": "set", "pitch": -100}').changes == {"pitch": -CAMERA_LIMITS["pitch"]}
    assert request.style == "marble" and request.prompt_id is None
    assert parse_message('{"type": "set", "prompt": "0123456789abcdef0123"}').prompt_id == "0123456789abcdef0123"
    for text in ["Bronze, weathered (old)", "golden statue.", "Van Gogh’s Starry Night", "“Crème brûlée”: gold!"]:
        assert parse_message(json.dumps({"type": "set", "style": text})).style == text
    for bad, words in [("[" * 50_000, "not JSON"),
                       ('{"type": "set", "prompt": "abc123"}', "prompt"),
                       ('{"type": "set", "prompt": "%s"}' % ("a" * 300), "prompt"),
                       ("nope", "not JSON"), ("[1]", "type"), ('{"type": "get"}', "type"),
                       ('{"type": "set", "yaw": "left"}', "yaw"), ('{"type": "set", "yaw": NaN}', "yaw"),
                       ('{"type": "set", "enabled": 1}', "enabled"), ('{"type": "set", "mode": "mosaic"}', "mode"),
                       ('{"type": "set", "colour": 1}', "unknown"), ('{"type": "set", "prompt": "../x"}', "prompt"),
                       ('{"type": "set", "style": ""}', "style"),
                       ('{"type": "set", "style": "a", "prompt": "0123456789abcdef0123"}', "either")]:
        with pytest.raises(ControlError, match=words):
            parse_message(bad)


@pytest.mark.parametrize("text, refused", [
    ("image:/etc/secret.png", "“/”"), ("../photo.jpg", "“/”"), ("c:/etc/passwd", "“/”"), ("~/me.png", "“~”"),
    ("C:\\Users\\me.png", "“\\”"), ("a\u0000b", "cannot be part"), ("...", "at least one word"),
    ("x" * 201, "at most 200")])
def test_style_text_refusals_are_style_feedback(text, refused):
    with pytest.raises(ControlError, match=re.escape(refused)) as error:
        parse_message(json.dumps({"type": "set", "style": text}))
    assert error.value.style is not None and len(error.value.style) <= 40    # shown with the style status


def test_network_style_text_is_handed_to_the_engine_as_words_never_as_a_file(tmp_path, monkeypatch, images):
    """A description from the page is marked text ("text:…"): the engine gets its words only, so a file
    named like the text, sitting in the server's working directory, is never read."""
    monkeypatch.chdir(tmp_path)
    cv2.imwrite(str(tmp_path / "statue.png"), cv2.imread(str(images / "s1.jpg")))
    engine = ClassicEngine()
    assert engine.prepare("statue.png").kind == "image"             # the CLI's own style: a file, as documented
    for text, preset in [("statue.png", "marble"), ("image:statue.png", "marble"), ("golden statue.", "golden statue"),
                         ("Van Gogh’s Starry Night", "oil painting")]:
        prompt = style_prompt(TEXT_STYLE + parse_message(json.dumps({"type": "set", "style": text})).style)
        assert image_path_in(prompt) is None and not any(c in prompt for c in "./\\:~")
        style = engine.prepare(prompt)
        assert style.kind != "image" and style.key == f"preset:{preset}", (text, style)
    with pytest.raises(ValueError) as error:                         # refused in words the page can act on
        engine.prepare(style_prompt(TEXT_STYLE + "qwzx"))
    assert "no style is close to 'qwzx'" in str(error.value) and "path" not in str(error.value)
    assert "bronze statue" in str(error.value) and '"none"' in str(error.value)


def test_the_page_is_told_the_running_style_not_server_paths():
    assert setting_label("image:/srv/secret/prompts/abc.png") == "image abc.png"
    assert setting_label("text:Van Gogh’s Starry Night") == "Van Gogh’s Starry Night"
    assert setting_label("marble") == "marble"
    preset = Style(key="preset:oil painting", kind="text", label="van gogh starry night → oil painting")
    assert running_style("Van Gogh’s Starry Night", preset) == {"label": "van gogh starry night → oil painting",
                                                                 "preset": "oil painting"}
    assert running_style("uploaded image", Style("image:1f", "image", "image 1f.png")) == {
        "label": "uploaded image", "preset": None}
    assert running_style("none", Style("none", "none", "none"))["preset"] == "none"


def test_engine_options_parse_as_one_typed_object():
    request = parse_message('{"type": "set", "engine": {"smoothing": false, "triplane_ema": 0.25}, "yaw": 5}')
    assert request.engine == EngineOptions(smoothing=False, triplane_ema=0.25) and request.changes == {"yaw": 5.0}
    assert parse_message('{"type": "set", "engine": {"triplane_ema": 0}}').engine == EngineOptions(triplane_ema=0.0)
    assert parse_message('{"type": "set", "yaw": 1}').engine is None
    for bad, words in [('{"type": "set", "engine": true}', "object"), ('{"type": "set", "engine": {}}', "object"),
                       ('{"type": "set", "engine": {"smoothing": 1}}', "smoothing must be true or false"),
                       ('{"type": "set", "engine": {"triplane_ema": 1}}', r"\[0, 1\)"),
                       ('{"type": "set", "engine": {"triplane_ema": -0.1}}', r"\[0, 1\)"),
                       ('{"type": "set", "engine": {"triplane_ema": NaN}}', r"\[0, 1\)"),
                       ('{"type": "set", "engine": {"triplane_ema": true}}', r"\[0, 1\)"),
                       ('{"type": "set", "engine": {"weights": "/etc/passwd"}}', "unknown engine option")]:
        with pytest.raises(ControlError, match=words):
            parse_message(bad)


class StubModel:
    """Stands in for the 3DPE network (weights are not needed to test the EMA): encode returns known planes."""

    label = "stub network: not an edit"

    def __init__(self, values):
        self._planes = iter(torch.full((1, 2, 4, 4), float(v)) for v in values)

    def encode(self, image, tokens):
        return next(self._planes)


def test_engine_options_apply_to_the_peers_own_face_stage_and_3dpe_engine_stub_network():
    from stages.edit.threedpe_engine import ThreeDPEEngine

    face = FaceStage(FaceConfig(smoothing=True))              # not started: no MediaPipe needed here
    engine = ThreeDPEEngine(EngineConfig(name="3dpe", device="cpu", triplane_ema=0.6), model=StubModel([0, 10, 20]))
    other = ThreeDPEEngine(EngineConfig(name="3dpe", device="cpu", triplane_ema=0.6), model=StubModel([]))
    stages = [types.SimpleNamespace(name="render"), face]
    assert engine_options.current(stages, engine) == {"smoothing": True, "triplane_ema": 0.6}
    engine_options.apply(EngineOptions(smoothing=False, triplane_ema=0.5), stages, engine)
    assert engine_options.current(stages, engine) == {"smoothing": False, "triplane_ema": 0.5}
    assert face.config.smoothing is False and other.triplane_ema == 0.6     # per engine instance
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        engine.set_triplane_ema(1.0)
    # the new weight is what encode blends with: 0 → 0.5·0 + 0.5·10 → 0.5·5 + 0.5·20
    style, frame = Style("image:t", "image", "t", data=torch.zeros(1)), textured_frame()
    values = [float(engine.encode(make_face(frame), frame, style).triplane.mean()) for _ in range(3)]
    assert values == pytest.approx([0.0, 5.0, 12.5])


def test_engine_options_a_pipeline_lacks_are_refused_and_nothing_is_applied():
    from stages.edit.classic import ClassicEngine

    face = FaceStage(FaceConfig(smoothing=True))
    classic = ClassicEngine()
    assert engine_options.current([face], classic) == {"smoothing": True}     # no EMA control on the page
    with pytest.raises(EngineOptionError, match="3dpe engine.*classic engine"):
        engine_options.apply(EngineOptions(smoothing=False, triplane_ema=0.3), [face], classic)
    assert face.smoothing is True                              # all or nothing
    with pytest.raises(EngineOptionError, match="no face tracker"):
        engine_options.apply(EngineOptions(smoothing=False), [], classic)


def test_switching_smoothing_on_a_running_tracker_matches_a_tracker_built_that_way(clips):
    """Real MediaPipe on a talking clip: after set_smoothing(False) the crop is the raw one (equal to an
    unsmoothed tracker's); switched back on, smoothing restarts from the current frame."""
    frames = decode_clip(clips / "d10.mp4", limit=12)[0]
    with FaceTracker(FaceConfig(smoothing=True)) as switched, FaceTracker(FaceConfig(smoothing=False)) as raw:
        def both(i):
            return (switched.track(frames[i], i / 30).face.crop_matrix, raw.track(frames[i], i / 30).face.crop_matrix)
        smoothed = [both(i) for i in range(6)]
        assert max(np.abs(a - b).max() for a, b in smoothed[1:]) > 1e-3     # smoothing was on
        switched.set_smoothing(False)
        assert switched.smoothing is False
        for i in range(6, 9):
            a, b = both(i)
            np.testing.assert_allclose(a, b, atol=1e-6)
        switched.set_smoothing(True)
        a, b = both(9)                                          # the filters restart: no glide from old state
        np.testing.assert_allclose(a, b, atol=1e-6)
        assert max(np.abs(a - b).max() for a, b in (both(10), both(11))) > 1e-3
        assert switched.config.smoothing is True


def test_offered_directions_per_media_section():
    sdp = ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
           "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendrecv\r\n"
           "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=sendonly\r\n"
           "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:2\r\n")
    assert offered_directions(sdp) == {"0": "sendrecv", "1": "sendonly", "2": "sendrecv"}
    assert offered_directions(sdp.replace("t=0 0\r\n", "t=0 0\r\na=recvonly\r\n"))["2"] == "recvonly"


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


def test_prompt_quota_keeps_the_most_recently_used_and_stores_an_image_once():
    rng = np.random.default_rng(0)
    noise = [cv2.imencode(".jpg", rng.integers(0, 255, (2048, 2048, 3), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95])[1]
             .tobytes() for _ in range(4)]
    store = PromptStore(max_bytes=len(max(noise, key=len)), max_prompts=3, max_stored_bytes=10 * 1024 * 1024)
    try:
        ids = [store.add(data) for data in noise[:3]]
        assert store.stored_bytes <= 3 * 4 * 1024 * 1024              # kept at 1024² (engines read ≤ 512 px)
        assert cv2.imread(str(store.path(ids[0]))).shape == (1024, 1024, 3)   # ...and ids[0] is now the newest
        fourth = store.add(noise[3])                                       # count quota: the oldest use goes
        with pytest.raises(PromptError, match="upload it again"):
            store.path(ids[1])
        assert {p.name for p in Path(store.path(fourth)).parent.iterdir()} == {f"{i}.png" for i in (ids[0], ids[2], fourth)}
        flat = np.full((64, 64, 3), 90, np.uint8)
        as_png, as_webp = (cv2.imencode(ext, flat, flags)[1].tobytes() for ext, flags in
                           ((".png", []), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101])))
        assert store.add(as_png) == store.add(as_webp)                     # same pixels, stored once
        assert len(list(Path(store.path(fourth)).parent.iterdir())) == 3
    finally:
        store.close()
    small = PromptStore(max_bytes=len(max(noise, key=len)), max_stored_bytes=5 * 1024 * 1024)   # byte quota
    try:
        kept = [small.add(data) for data in noise]
        assert small.stored_bytes <= 5 * 1024 * 1024 and small.path(kept[-1]).exists()
        with pytest.raises(PromptError):
            small.path(kept[0])
    finally:
        small.close()


def test_a_store_keeps_another_stores_prompt_under_its_id_within_its_own_quota():
    front, node = PromptStore(), PromptStore(max_prompts=2)         # a cluster's front and one of its nodes
    try:
        ids = [front.add(cv2.imencode(".png", np.full((64, 64, 3), v, np.uint8))[1].tobytes()) for v in (10, 20, 30)]
        for prompt_id in ids:
            node.put(prompt_id, front.path(prompt_id).read_bytes())
        assert node.path(ids[2]).read_bytes() == front.path(ids[2]).read_bytes()
        with pytest.raises(PromptError, match="upload it again"):
            node.path(ids[0])
        with pytest.raises(PromptError, match="unknown"):
            node.put("../../outside", b"png")
    finally:
        front.close()
        node.close()


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
def test_serve_command_serves_the_page_on_localhost_and_never_logs_the_token():
    port, token = free_port(), "s3cret-T0ken"
    proc = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port), "--token", token],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, page = time.monotonic() + 60, None
        while time.monotonic() < deadline and page is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/?token={token}", timeout=2).read().decode()
            except OSError:
                time.sleep(0.3)
        assert page is not None and "live3dpe" in page and "app.js" in page
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/presets",   # as the page asks: Referer has it
                                         headers={"Referer": f"http://127.0.0.1:{port}/?token={token}"})
        presets = json.load(urllib.request.urlopen(request, timeout=5))
        assert "bronze statue" in presets["presets"]
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert f"open http://127.0.0.1:{port}/?token={token}" in output          # told once, to whoever started it
    access = [line for line in output.splitlines() if "aiohttp.access" in line]
    assert any('"GET /?token=[redacted] HTTP/1.1" 200' in line for line in access), output
    assert any('"http://127.0.0.1:%d/?token=[redacted]"' % port in line for line in access), output
    assert [line for line in output.splitlines() if token in line] == [
        f"live3dpe serve: open http://127.0.0.1:{port}/?token={token}  (Ctrl-C to stop)"]


def test_access_log_redacts_the_token_in_urls_and_headers(caplog):
    from aiohttp import web

    from webrtc.auth import RedactingAccessLogger, redact_token

    assert redact_token("POST /offer?token=abc&x=1 HTTP/1.1") == "POST /offer?token=[redacted]&x=1 HTTP/1.1"
    assert redact_token("/?a=1&Token=abc#top") == "/?a=1&Token=[redacted]#top"
    assert redact_token("/offer?tokens_left=3") == "/offer?tokens_left=3"
    logger = RedactingAccessLogger(logging.getLogger("test.access"), '"%r" "%{Referer}i" "%{Authorization}i"')
    request = make_mocked_request("POST", "/offer?token=abc", headers={"Referer": "http://h/?token=abc",
                                                                       "Authorization": "Bearer abc"})
    with caplog.at_level(logging.INFO, logger="test.access"):
        logger.log(request, web.Response(status=401), 0.01)
    assert caplog.messages == ['"POST /offer?token=[redacted] HTTP/1.1" "http://h/?token=[redacted]" "[redacted]"']


def test_serve_rejects_bad_arguments():
    result = subprocess.run([sys.executable, "-m", "cli", "serve", "--max-peers", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--max-peers" in result.stderr and "Traceback" not in result.stderr
