"""`live3dpe cam`: argument handling, the no-device error, and frames reaching a virtual camera through
a fake pyvirtualcam backend (named as such: v4l2loopback cannot be loaded here)."""
from __future__ import annotations

import glob

import numpy as np
import pytest
import pyvirtualcam

from cli.main import main as cli_main
from pipeline.config import EditControls, EditSettings, EngineConfig
from pipeline.errors import UserError
from pipeline.graph import Graph
from stages.chain import build_edit_stages, create_engine
from stages.face import FaceConfig
from stages.source_file import FileSource
from webrtc.virtualcam import VirtualCameraSink


class FakeVirtualCameraBackend:
    """Stands in for v4l2loopback/OBS: keeps what pyvirtualcam hands to a real device."""

    instances: list["FakeVirtualCameraBackend"] = []

    def __init__(self, width, height, fps, fourcc, device=None, **kw):
        self.size, self.fps, self.frames = (width, height), fps, []
        self.closed = False
        FakeVirtualCameraBackend.instances.append(self)

    def send(self, frame):                       # pyvirtualcam hands backends a flat RGB buffer
        width, height = self.size
        self.frames.append(frame.copy().reshape(height, width, 3))

    def device(self):
        return "fake-virtual-camera"

    def native_fourcc(self):
        return None

    def close(self):
        self.closed = True


@pytest.fixture
def fake_backend():
    pyvirtualcam.register_backend("fake_for_tests", FakeVirtualCameraBackend)
    FakeVirtualCameraBackend.instances.clear()
    yield "fake_for_tests"


def run_cli(argv, capsys):
    code = cli_main(argv)
    return code, capsys.readouterr().err


def test_cam_without_a_target_says_what_to_add(capsys):
    code, err = run_cli(["cam"], capsys)
    assert code == 2 and "--virtual-camera" in err and "Traceback" not in err


def test_cam_rejects_bad_sizes_and_devices(capsys):
    for argv, words in [(["cam", "--virtual-camera", "--width", "641"], "even"),
                        (["cam", "--virtual-camera", "--fps", "0"], "--fps"),
                        (["cam", "--virtual-camera", "--device", "-1"], "webcam index")]:
        code, err = run_cli(argv, capsys)
        assert code == 2 and words in err, err


@pytest.mark.skipif(bool(glob.glob("/dev/video*")), reason="a video device exists here; the error path needs none")
def test_missing_virtual_camera_explains_how_to_create_one(capsys):
    code, err = run_cli(["cam", "--virtual-camera"], capsys)
    assert code == 2
    assert "no virtual camera device" in err and "sudo modprobe v4l2loopback devices=1 exclusive_caps=1" in err
    assert err.count("\n") == 1                  # one line, no traceback


def test_engine_device_flag_is_renamed_on_cam():
    from cli.main import build_parser

    args = build_parser(only="cam").parse_args(["cam", "--device", "2", "--engine-device", "cpu", "--virtual-camera"])
    assert args.camera == 2 and args.device == "cpu"


def test_cam_opens_the_virtual_camera_before_the_webcam_fake_backend(fake_backend, capsys):
    from cli.main import build_parser
    from cli.cam import main

    args = build_parser(only="cam").parse_args(["cam", "--virtual-camera", "--device", "57"])
    with pytest.raises(UserError, match=r"camera 57 does not exist.*ls /dev/video"):
        main(args, backend=fake_backend)
    assert "fake-virtual-camera" in capsys.readouterr().out
    assert FakeVirtualCameraBackend.instances[-1].closed


@pytest.mark.slow
async def test_edited_frames_reach_the_virtual_camera_fake_backend(fake_backend, clips):
    sink = VirtualCameraSink(320, 240, 30, backend=fake_backend)
    controls = EditControls(EditSettings(style="bronze statue", mode="side-by-side"))
    stages = build_edit_stages(controls, create_engine(EngineConfig()), FaceConfig(smoothing=True))
    source = FileSource(clips / "d10.mp4", max_frames=12)
    await Graph(source, stages, sink, policy="offline", name="cam-test").run()
    backend = FakeVirtualCameraBackend.instances[-1]
    assert backend.closed and len(backend.frames) == 12 and sink.frames_sent == 12
    last = backend.frames[-1].astype(int)
    # side-by-side is 1024×512: fitted into 320×240 as 320×160 with black bars above and below
    assert last[:40].max() == 0 and last[-40:].max() == 0 and last[40:200].mean() > 20
    left, right = last[40:200, :160], last[40:200, 160:]
    assert np.abs(left - right).mean() > 3       # input | edited output
