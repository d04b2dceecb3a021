"""FaceTracker / FaceStage on real images and clips with the real MediaPipe model."""
import asyncio
import json
import subprocess
import sys
from fractions import Fraction

import cv2
import numpy as np
import pytest

from cli import main as cli
from pipeline.packets import FramePacket
from stages.face import FaceConfig, FaceStage, FaceTracker
from stages.face.pose import head_rotation
from stages.source_file import FileSource
from threedpe.camera import camera_angles

PORTRAITS = ["s1", "s2", "s5", "s12", "s42"]


def rgb(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def tracker():
    t = FaceTracker(FaceConfig(smoothing=False))
    yield t
    t.close()


@pytest.mark.parametrize("name", PORTRAITS)
def test_mirror_flips_yaw_and_keeps_pitch(tracker, images, name):
    image = rgb(images / f"{name}.jpg")
    a, b = tracker.detect(image).face, tracker.detect(image[:, ::-1].copy()).face
    assert abs(a.yaw + b.yaw) < 2.0 and abs(a.pitch - b.pitch) < 2.0
    assert abs(a.roll + b.roll) < 2.0


def test_observation_fields_are_filled_and_consistent(tracker, images):
    image = rgb(images / "s12.jpg")
    result = tracker.detect(image)
    face = result.face
    assert result.found and result.faces[0] is face
    assert face.landmarks.shape == (478, 3) and face.crop.shape == (512, 512, 3) and face.crop.dtype == np.uint8
    assert face.mask.shape == image.shape[:2] and face.mask.dtype == np.float32
    assert face.mask.max() > 0.99 and face.mask[0, 0] == 0.0
    x0, y0, x1, y1 = (int(v) for v in face.box)
    assert face.mask[(y0 + y1) // 2, (x0 + x1) // 2] > 0.99            # face centre is inside the mask
    np.testing.assert_allclose(np.vstack([face.crop_matrix, [0, 0, 1]]) @ np.vstack([face.crop_inverse, [0, 0, 1]]),
                               np.eye(3), atol=1e-9)
    assert face.camera.shape == (25,) and abs(np.linalg.norm(face.camera[[3, 7, 11]]) - 2.7) < 1e-3
    yaw, pitch, _ = camera_angles(face.camera)
    assert (yaw, pitch) == pytest.approx((face.yaw, face.pitch), abs=1e-6)
    # s12: the man looks towards image left, i.e. his nose is left of the midpoint of his eyes → yaw > 0
    lm = face.landmarks
    assert lm[1, 0] < (lm[33, 0] + lm[263, 0]) / 2 and face.yaw > 3
    # docs/cameras.md: the subject's left eye (263) is at image right; the nose axis (the matrix's third
    # column) points to image left (x < 0) when the nose does
    assert lm[263, 0] > lm[33, 0] and face.transform[0, 2] < 0
    assert len(face.blendshapes) > 40 and face.transform.shape == (4, 4)


def test_frontal_portrait_gives_the_frontal_eg3d_camera(tracker, images):
    """s42 is the most frontal portrait here; its camera must be within 0.2 of EG3D's (0, 0, 2.7) (≈4°)."""
    face = tracker.detect(rgb(images / "s42.jpg")).face
    np.testing.assert_allclose(face.camera[[3, 7, 11]], [0.0, 0.0, 2.7], atol=0.2)
    np.testing.assert_allclose(head_rotation(face.transform), np.eye(3), atol=0.05)   # docs/cameras.md: ≈ identity
    np.testing.assert_allclose(face.camera[16:], [4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1], atol=1e-4)


def test_turning_the_frame_clockwise_adds_roll_and_keeps_the_crop_upright(tracker, images):
    image = rgb(images / "s42.jpg")
    h, w = image.shape[:2]
    turned = cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), -20, 1.0), (w, h))  # cv2: − = clockwise
    a, b = tracker.detect(image).face, tracker.detect(turned).face
    assert b.roll - a.roll == pytest.approx(20.0, abs=2.5)
    assert camera_angles(b.camera)[2] == pytest.approx(camera_angles(a.camera)[2], abs=2.5)


@pytest.mark.parametrize("name", ["s25", "s40"])
def test_dog_and_cat_have_no_face(tracker, images, name):
    result = tracker.detect(rgb(images / f"{name}.jpg"))
    assert result.face is None and result.faces == []


def test_blank_and_bad_frames(tracker):
    assert tracker.track(np.zeros((480, 640, 3), np.uint8), 0.0).face is None
    with pytest.raises(ValueError, match="RGB uint8"):
        tracker.track(np.zeros((480, 640), np.uint8), 0.1)


def test_face_stage_fills_packets_with_non_increasing_timestamps(images):
    """Packets without a clock, and repeated timestamps, must not upset MediaPipe's VIDEO mode."""
    stage = FaceStage(FaceConfig(smoothing=True))
    frame = rgb(images / "s42.jpg")
    try:
        for seq in range(3):
            packet = stage.process(FramePacket(seq=seq, frame=frame, pts=0, time_base=Fraction(1, 30)))
            assert packet.face.found and packet.face.seconds > 0
        assert stage.process(FramePacket(seq=3, frame=np.zeros_like(frame), capture_time=1.0)).face.face is None
    finally:
        stage.tracker.close()


def _crop_centre_track(clips, smoothing, frames=240):
    """Crop centre per frame in crop pixels (frame position divided by frame px per crop px)."""
    stage, source, centres = FaceStage(FaceConfig(smoothing=smoothing)), FileSource(clips / "d10.mp4", max_frames=frames), []
    try:
        while (packet := source.read()) is not None:
            face = stage.process(packet).face.face
            inverse = face.crop_inverse
            centres.append(inverse @ [256.0, 256.0, 1.0] / np.hypot(inverse[0, 0], inverse[1, 0]))
    finally:
        stage.tracker.close()
        asyncio.run(source.close())
    return np.array(centres)


@pytest.mark.slow
def test_crop_is_stable_on_a_steady_talker_with_smoothing(clips):
    """Jitter = RMS of the second difference of the crop centre / √6, in crop pixels (512²).

    For white noise of σ px on a position this equals σ; steady head motion at 30 fps has a tiny
    second difference, so real motion barely counts while frame-to-frame shaking does.
    """
    def jitter(track):
        return float(np.sqrt((np.diff(track, 2, axis=0) ** 2).sum(1).mean() / 6))

    raw, smooth = jitter(_crop_centre_track(clips, False)), jitter(_crop_centre_track(clips, True))
    print(f"d10 crop-centre jitter: raw {raw:.3f} px, smoothed {smooth:.3f} px")
    assert smooth < 0.5 and smooth * 3 <= raw


def test_face_command_json(images, tmp_path):
    out = subprocess.run([sys.executable, "-m", "cli", "face", "--input", str(images / "s42.jpg"), "--json",
                          "--save-crops", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(record) >= {"frame", "face", "yaw", "pitch", "roll", "camera", "crop_matrix", "ms"}
    assert record["face"] and len(record["camera"]) == 25 and np.array(record["crop_matrix"]).shape == (2, 3)
    assert cv2.imread(str(tmp_path / "crop_000000.png")).shape == (512, 512, 3)


def test_face_command_bad_model_tiny_image_and_crop_folder_are_one_line_errors(images, tmp_path, capsys):
    junk, tiny, not_a_folder = tmp_path / "junk.task", tmp_path / "tiny.png", tmp_path / "file"
    junk.write_text("not a model")
    cv2.imwrite(str(tiny), np.zeros((8, 8, 3), np.uint8))
    not_a_folder.write_text("")
    for argv, says in ((["--input", str(images / "s42.jpg"), "--face-model", str(junk)], "cannot load the face model"),
                       (["--input", str(tiny)], "H, W ≥ 16"),
                       (["--input", str(images / "s42.jpg"), "--save-crops", str(not_a_folder)], "--save-crops")):
        assert cli.main(["face", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err


def test_face_command_bad_input_is_one_line_error(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    for path in (tmp_path / "missing.mp4", bad):
        out = subprocess.run([sys.executable, "-m", "cli", "face", "--input", str(path)],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and "Traceback" not in out.stderr and "error:" in out.stderr


def _shifted(image, dx):
    return cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, 0]]), image.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)


def _centre(face):
    return face.crop_inverse @ [256.0, 256.0, 1.0]


def test_a_clock_going_back_or_a_new_resolution_is_a_cut_and_detect_leaves_tracking_alone(images):
    """After a loop (source time back to 0) or a change of resolution the crop follows the new frame at
    once; a `detect` call in between (no face in it) must not reset `track`'s smoothing."""
    frame = rgb(images / "s42.jpg")
    moved = _shifted(frame, 8.0)
    with FaceTracker(FaceConfig(smoothing=True)) as tracker:
        for i in range(10):
            tracker.track(frame, i / 30)
        raw_moved = _centre(tracker.detect(moved).face)
        assert tracker.detect(np.zeros_like(frame)).face is None
        steady = tracker.track(moved, 10 / 30).face        # the clock goes on: smoothed, lags behind
        assert np.hypot(*(_centre(steady) - raw_moved)) > 2.0
        for i in range(10):
            tracker.track(frame, (11 + i) / 30)
        looped = tracker.track(moved, 0.0).face             # the clock went back: no smoothing across it
        assert np.hypot(*(_centre(looped) - raw_moved)) < 1.0
        larger = cv2.resize(frame, (544, 544), interpolation=cv2.INTER_CUBIC)
        resized = tracker.track(larger, 1 / 30).face        # a new resolution: no smoothing across it either
        assert np.hypot(*(_centre(resized) - _centre(tracker.detect(larger).face))) < 1.0


def _two_faces(images, left_height, right_height):
    """A 640×1152 frame: s42 at the left edge, s1 at the right edge, each resized to the given height."""
    canvas = np.full((640, 1152, 3), 90, np.uint8)
    for name, height, at_right in (("s42", left_height, False), ("s1", right_height, True)):
        image = rgb(images / f"{name}.jpg")
        image = cv2.resize(image, (round(image.shape[1] * height / image.shape[0]), height), interpolation=cv2.INTER_AREA)
        x = canvas.shape[1] - image.shape[1] if at_right else 0
        canvas[:height, x:x + image.shape[1]] = image
    return canvas


def test_several_faces_largest_or_index_and_no_gliding_between_them(images):
    big_left, big_right = _two_faces(images, 512, 400), _two_faces(images, 320, 640)
    with FaceTracker(FaceConfig(smoothing=True)) as tracker, FaceTracker(FaceConfig(face_index=1)) as second:
        result = tracker.detect(big_left)
        assert len(result.faces) == 2 and result.faces[0].box[0] < result.faces[1].box[0]      # left to right
        assert result.face is result.faces[0]                                                # the largest
        by_index = second.detect(big_left)
        assert len(by_index.faces) == 2 and by_index.face is by_index.faces[1]                  # index 1: the right one
        assert second.detect(rgb(images / "s42.jpg")).face is None                           # no second face
        raw_right = _centre(tracker.detect(big_right).face)
        assert raw_right[0] > 700
        for i in range(5):
            tracker.track(big_left, i / 30)
        switched = tracker.track(big_right, 5 / 30).face     # the largest face is now the other person
        assert np.hypot(*(_centre(switched) - raw_right)) < 2.0
