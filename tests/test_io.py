"""Sources and sinks on real media: frame count, pts and audio preserved; odd sizes; image/synthetic/webcam sources."""
import asyncio
import time
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.graph import Graph
from pipeline.harness import ListSink
from stages.sink_file import FileSink
from stages.source_file import FileSource
from stages.source_image import ImageSource
from stages.source_synthetic import SyntheticSource, frame_number
from stages.source_webcam import WebcamSource, parse_camera
from stages.sources import open_source


def probe(path):
    """Per stream: video pts (seconds, display order) and audio packets (pts seconds, duration seconds)."""
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        audio = c.streams.audio[0] if c.streams.audio else None
        vpts, apk = [], []
        for packet in c.demux():
            if packet.size == 0 or packet.pts is None:
                continue
            seconds = float(packet.pts * packet.time_base)
            if packet.stream is video:
                vpts.append(seconds)
            elif packet.stream is audio:
                apk.append((seconds, float(packet.duration * packet.time_base)))
        return {"frames": len(vpts), "pts": sorted(vpts), "audio": apk,
                "audio_codec": audio.codec_context.name if audio else None,
                "size": (video.codec_context.width, video.codec_context.height),
                "codec": video.codec_context.name}


def copy_video(src, dst, realtime=False, max_frames=None):
    """src → dst through the graph with no stages (the I/O path of `live3dpe run`)."""
    source = FileSource(src, realtime=realtime, max_frames=max_frames)
    sink = FileSink(dst, audio_from=source.audio_path, fps=source.fps)
    return asyncio.run(Graph(source, [], sink).run())


def test_file_round_trip_keeps_frame_count_pts_and_audio_of_a_real_clip(clips, tmp_path):
    out = tmp_path / "d12.mp4"
    metrics = copy_video(clips / "d12.mp4", out)
    assert metrics.frames_out == 183 and metrics.policy == "offline"
    src, dst = probe(clips / "d12.mp4"), probe(out)
    assert dst["frames"] == src["frames"] == 183
    assert dst["pts"] == pytest.approx(src["pts"], abs=1e-4)
    assert dst["codec"] == "h264" and dst["audio_codec"] == "aac"
    assert len(dst["audio"]) == len(src["audio"])
    assert [p for p, _ in dst["audio"]] == pytest.approx([p for p, _ in src["audio"]], abs=1e-4)
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"


def test_max_frames_cuts_audio_at_the_video_end_and_clip_without_audio_stays_silent(clips, tmp_path):
    out = tmp_path / "cut.mp4"
    copy_video(clips / "d12.mp4", out, max_frames=25)
    dst = probe(out)
    assert dst["frames"] == 25
    video_end = dst["pts"][-1] + 1 / 25
    audio_end = dst["audio"][-1][0] + dst["audio"][-1][1]
    assert abs(audio_end - video_end) < 0.05            # audio covers the video, and no more
    out0 = tmp_path / "d0.mp4"
    copy_video(clips / "d0.mp4", out0, max_frames=10)
    assert probe(out0)["audio_codec"] is None and probe(out0)["frames"] == 10


def test_realtime_run_keeps_source_pts_so_audio_stays_in_sync(clips, tmp_path):
    out = tmp_path / "rt.mp4"
    metrics = copy_video(clips / "d12.mp4", out, realtime=True, max_frames=15)
    assert metrics.policy == "live"
    src, dst = probe(clips / "d12.mp4"), probe(out)
    assert 1 <= dst["frames"] <= 15
    assert set(np.round(dst["pts"], 4)) <= set(np.round(src["pts"], 4))   # kept frames sit at their own times
    assert [p for p, _ in dst["audio"]] == pytest.approx([p for p, _ in src["audio"][:len(dst["audio"])]], abs=1e-4)
    assert dst["pts"][-1] == pytest.approx(src["pts"][14], abs=1e-4)      # the newest frame is never dropped
    audio_end = dst["audio"][-1][0] + dst["audio"][-1][1]
    assert abs(audio_end - (dst["pts"][-1] + 1 / 25)) < 0.05           # audio cut where the video ends


def test_audio_that_mp4_cannot_hold_is_transcoded_to_aac(tmp_path):
    src = tmp_path / "pcm.mkv"
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("pcm_s16le", rate=16000, layout="mono")
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                c.mux(p)
        tone = (np.sin(np.arange(6400) / 5) * 8000).astype(np.int16)[None]
        af = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
        af.sample_rate, af.pts = 16000, 0
        for p in [*a.encode(af), *a.encode(None), *v.encode(None)]:
            c.mux(p)
    out = tmp_path / "out.mp4"
    copy_video(src, out)
    dst = probe(out)
    assert dst["frames"] == 10 and dst["audio_codec"] == "aac"
    assert sum(d for _, d in dst["audio"]) == pytest.approx(0.4, abs=0.1)


async def test_odd_frame_sizes_are_padded_to_even_for_yuv420p(tmp_path):
    out = tmp_path / "odd.mp4"
    await Graph(SyntheticSource(33, 25, fps=30, count=12), [], FileSink(out)).run()
    dst = probe(out)
    assert dst["frames"] == 12 and dst["size"] == (34, 26)
    assert dst["pts"] == pytest.approx([i / 30 for i in range(12)], abs=1e-4)


async def test_file_source_exposes_clip_facts_and_decodes_rgb_frames(clips):
    source = FileSource(clips / "d12.mp4", max_frames=5)
    assert source.frame_count == 5 and source.fps == pytest.approx(25) and source.has_audio
    assert source.time_base == Fraction(1, 90000) and not source.live
    sink = ListSink()
    await Graph(source, [], sink).run()
    assert [p.seq for p in sink.packets] == list(range(5))
    assert sink.packets[0].frame.shape == (512, 512, 3) and sink.packets[0].frame.dtype == np.uint8
    assert FileSource(clips / "d0.mp4", realtime=True).live


async def test_image_source_repeats_the_picture_with_synthetic_pts(images):
    sink = ListSink()
    await Graph(ImageSource(images / "s12.jpg", repeat=4, fps=25), [], sink).run()
    expected = cv2.cvtColor(cv2.imread(str(images / "s12.jpg")), cv2.COLOR_BGR2RGB)
    assert len(sink.packets) == 4 and np.array_equal(sink.packets[3].frame, expected)
    assert [p.pts for p in sink.packets] == [0, 1, 2, 3] and sink.packets[0].time_base == Fraction(1, 25)


async def test_synthetic_source_moves_and_numbers_its_frames():
    source = SyntheticSource(64, 48, fps=30, count=3)
    frames = [source.read().frame for _ in range(3)]
    assert source.read() is None
    assert [frame_number(f) for f in frames] == [0, 1, 2]
    assert not np.array_equal(frames[0][8:], frames[1][8:])


async def test_webcam_source_reads_through_opencv_with_a_file_standing_in_for_the_camera(clips):
    # No camera here: cv2.VideoCapture opens a file through the same code path (real OpenCV, no mock).
    source = WebcamSource(str(clips / "d0.mp4"), max_frames=5, measure_frames=6)
    await source.start()
    try:
        packets = [source.read() for _ in range(6)]
    finally:
        await source.close()
    assert source.live and source.fps > 0 and (source.width, source.height) == (512, 512)
    assert packets[-1] is None and all(p.frame.shape == (512, 512, 3) for p in packets[:5])
    pts = [p.pts for p in packets[:5]]
    assert pts == sorted(pts) and pts[0] == 0 and packets[0].time_base == Fraction(1, 1000)


def test_raw_stream_without_timestamps_gets_pts_at_the_stream_rate(tmp_path):
    raw = tmp_path / "clip.h264"                    # an elementary stream: no container, no pts
    with av.open(str(raw), "w", format="h264") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 10, np.uint8), format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
    source = FileSource(raw, max_frames=12)
    assert source.frame_count == 12                 # the container does not know; --max-frames does
    sink = ListSink()
    asyncio.run(Graph(source, [], sink).run())
    assert [p.seconds for p in sink.packets] == pytest.approx([i / 25 for i in range(12)], abs=1e-3)
    out = tmp_path / "out.mp4"
    copy_video(raw, out)
    assert probe(out)["pts"] == pytest.approx([i / 25 for i in range(20)], abs=1e-3)


class FakeCapture:
    """Stands in for cv2.VideoCapture (no camera here): 25 fps delivered, 30 fps claimed."""

    def __init__(self, device):
        self.props = []

    def isOpened(self):
        return True

    def set(self, prop, value):
        self.props.append((prop, value))
        return True

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self):
        time.sleep(1 / 25)
        return True, np.zeros((48, 64, 3), np.uint8)

    def release(self):
        pass


async def test_webcam_requests_mjpg_and_measures_the_fps_it_delivers_fake_camera(monkeypatch):
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    source = WebcamSource("fake", width=64, height=48, fps=30, measure_frames=8)
    await source.start()
    try:
        assert source.reported_fps == 30.0
        assert 10 < source.fps <= 25.5                # sleeps only overshoot: never above the real rate
        props = source._cap.props
        assert props[0] == (cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
        assert (cv2.CAP_PROP_FRAME_WIDTH, 64) in props and (cv2.CAP_PROP_FPS, 30) in props
        assert (source.width, source.height) == (64, 48)
    finally:
        await source.close()


def test_open_source_picks_the_source_from_the_spec(clips, images):
    assert isinstance(open_source("synthetic", max_frames=7), SyntheticSource)
    assert [parse_camera(s) for s in ("camera:2", "2", 2, "cam.mp4")] == [2, 2, 2, None]
    for spec in ("camera:63", "63"):             # dispatched to the webcam, which finds no /dev/video63
        with pytest.raises(UserError, match="camera 63 does not exist"):
            open_source(spec)
    assert isinstance(open_source(str(images / "s1.jpg"), repeat=3), ImageSource)
    assert isinstance(open_source(str(clips / "d0.mp4")), FileSource)
    assert open_source("synthetic", realtime=True).live


@pytest.mark.timeout(120)
def test_huge_inputs_are_edited_and_written_at_the_working_size_and_the_run_says_so(tmp_path, capfd):
    from cli.main import main as cli

    photo, out = tmp_path / "huge.jpg", tmp_path / "out.mp4"
    cv2.imwrite(str(photo), np.full((6000, 8000, 3), 128, np.uint8))
    assert cli(["run", "--input", str(photo), "--output", str(out), "--max-frames", "2"]) == 0
    err = capfd.readouterr().err
    assert "input is 8000×6000: editing and writing it at 1920×1440" in err
    assert probe(out)["size"] == (1920, 1440) and probe(out)["frames"] == 2

    wide = tmp_path / "wide.mp4"
    with av.open(str(wide), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 2400, 1200, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((1200, 2400, 3), 40 * i, np.uint8), format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
    source = FileSource(wide)
    assert (source.width, source.height) == (2400, 1200)          # the input's own size, for the note
    assert source.read().frame.shape == (960, 1920, 3)
