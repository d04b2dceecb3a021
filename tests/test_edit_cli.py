"""`live3dpe edit`: real face stage on real photos, random weights end to end (labelled), clear errors."""
from __future__ import annotations

import av
import cv2
import pytest

from cli.main import main as cli
from pipeline.errors import UserError
from threedpe.camera import camera_angles
from cli.edit import orbit_cameras, parse_views


def test_no_face_is_a_clear_error(images, tmp_path, capsys):
    rc = cli(["edit", "--image", str(images / "s25.jpg"), "--prompt", str(images / "s6.jpg"), "--random-weights",
              "--out", str(tmp_path)])
    assert rc == 2
    assert "no face found" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_missing_weights_explain_where_to_get_them(images, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LIVE3DPE_CACHE", str(tmp_path))
    monkeypatch.delenv("LIVE3DPE_WEIGHTS", raising=False)
    crop = images / "eg3d_crops" / "input_1.png"
    assert cli(["edit", "--image", str(crop), "--prompt", str(images / "s6.jpg"), "--aligned", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "drive.google.com" in err and "non-commercial" in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["--views", "left"], "--views"), (["--views", "0,120"], "-90..90"),
    (["--aligned"], "512×512"), (["--prompt", "missing.png"], "no such file"),
])
def test_bad_arguments(images, tmp_path, capsys, argv, message):
    base = {"--image": str(images / "s1.jpg"), "--prompt": str(images / "s6.jpg")}
    for flag, value in zip(argv[::2], argv[1::2]):
        base[flag] = value
    args = [x for kv in base.items() for x in kv] + [a for a in argv if a == "--aligned"]
    assert cli(["edit", *args, "--random-weights", "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_views_and_orbit_path():
    assert parse_views("-30, 0,30") == [-30.0, 0.0, 30.0]
    with pytest.raises(UserError):
        parse_views("")
    cams = orbit_cameras(288)
    yaws = [camera_angles(c)[0] for c in cams]
    assert yaws[0] == pytest.approx(0.0, abs=0.1) and max(yaws) == pytest.approx(20.05, abs=0.1)   # 0.35 rad
    assert yaws[72] == pytest.approx(20.05, abs=0.1)                                              # a quarter turn


@pytest.mark.slow
def test_random_weights_edit_writes_a_labelled_sheet_and_video(images, tmp_path, capsys):
    video = tmp_path / "orbit.mp4"
    rc = cli(["edit", "--image", str(images / "s1.jpg"), "--prompt", str(images / "s6.jpg"), "--views", "15",
              "--random-weights", "--out", str(tmp_path), "--orbit", str(video), "--orbit-frames", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "RANDOM WEIGHTS" in out
    sheet = cv2.cvtColor(cv2.imread(str(tmp_path / "s1_s6.png")), cv2.COLOR_BGR2RGB)
    assert sheet.shape == (512, 3 * 512, 3)
    crop = sheet[:, :512].astype(int)
    assert crop[100:400, 150:350].std() > 10                       # the face crop, not a blank tile
    band = sheet[:40, 1024:1024 + 400]                              # the warning band on the view
    red = (band[..., 0] > 200) & (band[..., 1] < 120) & (band[..., 2] < 120)
    assert red.sum() > 100
    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 1 and frames[0].shape == (512, 512, 3)


def test_camera_offsets_beyond_the_range_are_clamped_and_said(capsys):
    import argparse

    from pipeline.config import CAMERA_LIMITS
    from stages.chain import add_edit_arguments, settings_from_args

    parser = argparse.ArgumentParser()
    add_edit_arguments(parser)
    settings = settings_from_args(parser.parse_args(["--yaw", "40", "--pitch", "-30", "--grid-yaws=-45,0,45"]))
    assert settings.yaw == CAMERA_LIMITS["yaw"] and settings.pitch == -CAMERA_LIMITS["pitch"]
    assert settings.grid_yaws == (-CAMERA_LIMITS["yaw"], 0.0, CAMERA_LIMITS["yaw"])
    note = capsys.readouterr().err
    assert note.count("\n") == 1
    assert f"yaw 40° → {CAMERA_LIMITS['yaw']:g}°" in note and f"pitch -30° → -{CAMERA_LIMITS['pitch']:g}°" in note
    settings_from_args(parser.parse_args(["--yaw", "10"]))
    assert capsys.readouterr().err == ""
