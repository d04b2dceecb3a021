"""Bad inputs to `live3dpe run`: one clear line on stderr, exit 2, no traceback, no hang."""
import av
import cv2
import numpy as np
import pytest

from cli.main import main as cli


def make_zero_frame_video(path):
    """A Matroska file with a video stream (and a little audio) but no video frames."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        a = c.add_stream("aac", rate=44100, layout="mono")
        c.start_encoding()
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 44100, 0
        for packet in [*a.encode(frame), *a.encode(None)]:
            c.mux(packet)


def tiny_video(path, size=8, frames=10):
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width = v.height = size
        v.pix_fmt = "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.zeros((size, size, 3), np.uint8), format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
    return path


def faststart_clip(path, frames=50, size=64):
    """Index (moov) first, then the media data: a cut file still opens and lists every frame."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as c:
        v = c.add_stream("libx264", rate=25)
        v.width = v.height = size
        v.pix_fmt = "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.random.default_rng(i).integers(0, 255, (size, size, 3), np.uint8),
                                               format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
    return path


def bad_inputs(tmp_path, clips):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    truncated = tmp_path / "cut.mp4"
    data = (clips / "d12.mp4").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    zero = tmp_path / "zero.mkv"
    make_zero_frame_video(zero)
    fake_image = tmp_path / "photo.jpg"
    fake_image.write_bytes(b"\xff\xd8 not really a jpeg")
    pixel = tmp_path / "pixel.png"
    cv2.imwrite(str(pixel), np.zeros((1, 1, 3), np.uint8))
    return {
        "missing": (str(tmp_path / "nope.mp4"), "not found"),
        "non-video": (str(text), "cannot read"),
        "truncated": (str(truncated), "cannot read"),
        "zero-frames": (str(zero), "no decodable video frames"),
        "no-camera-index": ("7", "camera 7 does not exist"),
        "no-camera-spec": ("camera:9", "camera 9 does not exist"),
        "broken-image": (str(fake_image), "cannot read"),
        "1x1-image": (str(pixel), "is 1×1 pixels; frames must be at least 16×16"),
        "8x8-video": (str(tiny_video(tmp_path / "tiny.mp4")), "is 8×8 pixels; frames must be at least 16×16"),
    }


CASES = ["missing", "non-video", "truncated", "zero-frames", "no-camera-index", "no-camera-spec", "broken-image",
         "1x1-image", "8x8-video"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_clear_line_and_exit_2(case, tmp_path, clips, capfd):
    spec, expected = bad_inputs(tmp_path, clips)[case]
    rc = cli(["run", "--input", spec, "--output", str(tmp_path / "out.mp4")])
    err = capfd.readouterr().err          # fd-level: also catches FFmpeg/OpenCV native warnings
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2
    assert len(lines) == 1, err
    assert lines[0].startswith("live3dpe run: error:") and expected in lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.timeout(60)
def test_damaged_tail_passes_the_decodable_frames_through_and_says_what_was_missing(tmp_path):
    # moov first (faststart), then cut inside the media data: decoding stops early; the source says so.
    data = faststart_clip(tmp_path / "faststart.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    from stages.source_file import FileSource

    source = FileSource(cut)
    frames = 0
    while source.read() is not None:
        frames += 1
    assert 5 < frames < 50
    assert source.incomplete().startswith(f"{cut} ended early: {frames} of the 50 frames its index lists")
    assert "damaged video packet" in source.incomplete()      # the cut packet's error was not swallowed
    whole = FileSource(tmp_path / "faststart.mp4")
    while whole.read() is not None:
        pass
    assert whole.incomplete() is None


@pytest.mark.timeout(60)
def test_a_truncated_faststart_file_is_written_as_far_as_it_goes_and_the_run_says_it_fell_short(tmp_path, capfd):
    data = faststart_clip(tmp_path / "faststart.mp4", frames=120).read_bytes()
    cut, out = tmp_path / "cut.mp4", tmp_path / "out.mp4"
    cut.write_bytes(data[: len(data) // 4])
    rc = cli(["run", "--input", str(cut), "--output", str(out)])
    captured = capfd.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("live3dpe run:")]
    assert rc == 2 and len(errors) == 1 and "Traceback" not in captured.err
    written = int(captured.out.split("wrote ")[1].split()[0])
    assert f"ended early: {written} of the 120 frames its index lists" in errors[0]
    with av.open(str(out)) as c:                       # what was readable is a complete, playable file
        assert sum(1 for _ in c.decode(video=0)) == written


@pytest.mark.timeout(60)
def test_bad_numbers_and_missing_output_are_user_errors(tmp_path, clips, capfd):
    clip = str(clips / "d0.mp4")
    assert cli(["run", "--input", clip, "--output", str(tmp_path / "o.mp4"), "--max-frames", "0"]) == 2
    assert cli(["run", "--input", clip]) == 2
    assert cli(["run", "--input", clip, "--output", str(tmp_path / "no" / "dir" / "o.mp4")]) == 2
    assert cli(["run", "--input", "synthetic", "--fps", "-1", "--output", str(tmp_path / "o.mp4")]) == 2
    assert cli(["run", "--input", clip, "--output", str(tmp_path / "o.mp4"),
                "--metrics-json", str(tmp_path / "gone" / "m.json")]) == 2
    assert cli(["run", "--input", clip, "--output", str(tmp_path)]) == 2
    err = capfd.readouterr().err
    assert "--max-frames" in err and "--output" in err and "output folder does not exist" in err
    assert f"output folder does not exist: {tmp_path / 'gone'}" in err and "is a folder" in err
    assert not (tmp_path / "o.mp4").exists()
    assert "--fps must be above 0" in err
    assert "Traceback" not in err


@pytest.mark.timeout(60)
def test_a_model_missing_at_start_up_is_one_line_without_a_progress_bar(tmp_path, clips, capfd, monkeypatch):
    monkeypatch.setenv("LIVE3DPE_FACE_MODEL", str(tmp_path / "missing.task"))
    rc = cli(["run", "--input", str(clips / "d0.mp4"), "--output", str(tmp_path / "out.mp4")])
    err = capfd.readouterr().err
    assert rc == 2
    assert [line for line in err.splitlines() if line.strip()] == [
        f"live3dpe run: error: MediaPipe Face Landmarker model (face_landmarker.task) ($LIVE3DPE_FACE_MODEL): "
        f"no such file: {tmp_path / 'missing.task'}"], err
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.timeout(60)
def test_a_stream_shrinking_below_16_px_mid_way_passes_those_frames_through_without_a_face(images):
    from pipeline.config import EditControls, EditSettings, EngineConfig
    from pipeline.harness import run_stage
    from stages.chain import build_edit_stages, create_engine
    from stages.face import FaceConfig

    portrait = cv2.cvtColor(cv2.imread(str(images / "s12.jpg")), cv2.COLOR_BGR2RGB)
    portrait = cv2.resize(portrait, (256, 256))
    stages = build_edit_stages(EditControls(EditSettings(style="marble")), create_engine(EngineConfig()),
                               FaceConfig(smoothing=False), live=True)
    out = run_stage(stages, [portrait, np.zeros((8, 8, 3), np.uint8), np.zeros((1, 12, 3), np.uint8), portrait])
    assert [p.face.found for p in out] == [True, False, False, True]
    assert [p.out_frame.shape for p in out] == [(256, 256, 3), (8, 8, 3), (1, 12, 3), (256, 256, 3)]
