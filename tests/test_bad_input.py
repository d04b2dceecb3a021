"""Bad inputs to `live3dpe run`: one clear line on stderr, exit 2, no traceback, no hang."""
import av
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
    return {
        "missing": (str(tmp_path / "nope.mp4"), "not found"),
        "non-video": (str(text), "cannot read"),
        "truncated": (str(truncated), "cannot read"),
        "zero-frames": (str(zero), "no decodable video frames"),
        "no-camera-index": ("7", "camera 7 does not exist"),
        "no-camera-spec": ("camera:9", "camera 9 does not exist"),
        "broken-image": (str(fake_image), "cannot read"),
    }


CASES = ["missing", "non-video", "truncated", "zero-frames", "no-camera-index", "no-camera-spec", "broken-image"]


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
def test_damaged_tail_passes_the_decodable_frames_through(tmp_path):
    # moov first (faststart), then cut inside the media data: decoding stops early, with a warning.
    src = tmp_path / "faststart.mp4"
    with av.open(str(src), "w", options={"movflags": "faststart"}) as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        for i in range(50):
            frame = av.VideoFrame.from_ndarray(np.random.default_rng(i).integers(0, 255, (64, 64, 3), np.uint8),
                                               format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
    data = src.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    from stages.source_file import FileSource

    source = FileSource(cut)
    frames = 0
    while source.read() is not None:
        frames += 1
    assert 5 < frames < 50


@pytest.mark.timeout(60)
def test_bad_numbers_and_missing_output_are_user_errors(tmp_path, clips, capfd):
    clip = str(clips / "d0.mp4")
    assert cli(["run", "--input", clip, "--output", str(tmp_path / "o.mp4"), "--max-frames", "0"]) == 2
    assert cli(["run", "--input", clip]) == 2
    assert cli(["run", "--input", clip, "--output", str(tmp_path / "no" / "dir" / "o.mp4")]) == 2
    assert cli(["run", "--input", "synthetic", "--fps", "-1", "--output", str(tmp_path / "o.mp4")]) == 2
    err = capfd.readouterr().err
    assert "--max-frames" in err and "--output" in err and "output folder does not exist" in err
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
