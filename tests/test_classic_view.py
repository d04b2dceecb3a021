"""Classic engine, virtual camera: head-pose change measured by MediaPipe on the output, identity, pass-through."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from stages.edit.classic import ClassicEngine
from test_classic_support import (away_from_person, detect, identity_cosine, measure_pose, observation, observation_from,
                                  read_frames, read_image)
from threedpe.camera import apply_offsets, orbit_label


@pytest.fixture(scope="module")
def engine():
    return ClassicEngine()


@pytest.fixture(scope="module")
def portraits(images, clips):
    """Real faces: a photo and a talking-head frame, with their MediaPipe observation and measured pose."""
    out = {}
    for name, rgb in (("s1", read_image(images / "s1.jpg")), ("d10", read_frames(clips / "d10.mp4", [20])[0])):
        out[name] = (rgb, observation(rgb), measure_pose(rgb))
    return out


def render(engine, rgb, face, style=None, **offsets):
    scene = engine.encode(face, rgb, engine.prepare(style))
    return engine.render(scene, apply_offsets(face.camera, **offsets))


@pytest.mark.parametrize("name", ["s1", "d10"])
@pytest.mark.parametrize("yaw", [20.0, -20.0])
def test_yaw_offset_turns_the_head_by_that_much(engine, portraits, name, yaw):
    rgb, face, (yaw_in, _) = portraits[name]
    out = render(engine, rgb, face, yaw=yaw)
    yaw_out, _ = measure_pose(out.image)
    assert yaw_out - yaw_in == pytest.approx(yaw, abs=7.0)


@pytest.mark.parametrize("name", ["s1", "d10"])
def test_pitch_offset_tilts_the_head_by_that_much(engine, portraits, name):
    rgb, face, (_, pitch_in) = portraits[name]
    _, pitch_out = measure_pose(render(engine, rgb, face, pitch=10.0).image)
    assert pitch_out - pitch_in == pytest.approx(10.0, abs=5.0)


def test_look_at_lens_makes_a_turned_head_frontal(engine, clips):
    rgb = read_frames(clips / "d12.mp4", [40])[0]                 # head turned ≈ 16° to image right
    face = observation(rgb)
    yaw_in, _ = measure_pose(rgb)
    assert abs(yaw_in) > 10
    out = engine.render(engine.encode(face, rgb, engine.prepare("none")), orbit_label())
    yaw_out, _ = measure_pose(out.image)
    assert abs(yaw_out) < abs(yaw_in) - 7


def test_identity_is_kept_at_yaw_15(engine, portraits):
    rgb, face, _ = portraits["s1"]
    out = render(engine, rgb, face, style="none", yaw=15.0)
    assert identity_cosine(rgb, out.image) >= 0.6


def test_tracked_camera_without_style_gives_the_input_back(engine, portraits):
    rgb, face, _ = portraits["d10"]
    out = engine.render(engine.encode(face, rgb, engine.prepare(None)), face.camera)
    assert out.space == "frame" and out.image.shape == rgb.shape and out.image.dtype == np.uint8
    assert np.abs(out.image.astype(int) - rgb).max() <= 1
    assert out.mask.dtype == np.float32 and out.mask.shape == rgb.shape[:2] and out.mask.max() == 0


def test_view_change_leaves_the_background_alone_and_masks_what_moved(engine, portraits):
    rgb, face, _ = portraits["s1"]
    out = render(engine, rgb, face, yaw=20.0)
    x0, y0, x1, y1 = face.box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 1.5 * max(x1 - x0, y1 - y0)
    far = away_from_person(rgb, face, margin=0.5)         # the backdrop near the head stretches a little
    far[int(max(0, cy - half)):int(cy + half), int(max(0, cx - half)):int(cx + half)] = False
    assert far.sum() > 0.01 * far.size
    assert np.array_equal(out.image[far], rgb[far])
    changed = np.abs(out.image.astype(int) - rgb).max(2) > 8
    assert out.mask[changed].mean() > 0.9                        # the mask covers what changed
    assert out.mask[far].max() == 0.0


def test_zoom_scales_the_head_about_its_centre(engine, portraits):
    rgb, face, _ = portraits["s1"]
    eyes = lambda pts: np.linalg.norm(pts[33, :2] - pts[263, :2])  # noqa: E731
    out = render(engine, rgb, face, zoom=1.3)
    assert eyes(detect(out.image)[0]) / eyes(face.landmarks) == pytest.approx(1.3, abs=0.08)


def test_degenerate_faces_pass_through_or_render_without_crashing(engine, portraits):
    rgb, face, _ = portraits["s1"]
    h, w = rgb.shape[:2]
    rot = np.eye(3)
    tiny = face.landmarks.copy()
    tiny[:, :2] = (tiny[:, :2] - tiny[:, :2].mean(0)) * 0.02 + (w - 2, h - 2)   # a 4-pixel face in the corner
    tiny[:, 2] *= 0.02
    off_frame = face.landmarks.copy()
    off_frame[:, 0] -= face.box[0] + 0.6 * (face.box[2] - face.box[0])          # half the face outside the left edge
    flat = face.landmarks.copy()
    flat[:, 1] = flat[0, 1]                                                     # collinear: no triangulation
    broken = face.landmarks.copy()
    broken[5] = np.nan
    for pts in (tiny, off_frame, flat, broken):
        obs = observation_from(pts, rot, rgb.shape)
        for style in (None, "bronze statue"):
            out = engine.render(engine.encode(obs, rgb, engine.prepare(style)), apply_offsets(obs.camera, yaw=25))
            assert out.image.shape == rgb.shape and np.isfinite(out.mask).all()
    for pts in (tiny, flat, broken):                             # unusable faces: the frame passes through
        obs = observation_from(pts, rot, rgb.shape)
        out = engine.render(engine.encode(obs, rgb, engine.prepare("marble")), apply_offsets(obs.camera, yaw=25))
        assert np.array_equal(out.image, rgb) and out.mask.max() == 0


def test_bad_camera_is_a_clear_error(engine, portraits):
    rgb, face, _ = portraits["s1"]
    scene = engine.encode(face, rgb, engine.prepare(None))
    with pytest.raises(ValueError, match="25-number"):
        engine.render(scene, np.zeros(16))


def test_small_frame_and_odd_sizes(engine, portraits):
    rgb, face, _ = portraits["s1"]
    small = cv2.resize(rgb, (203, 157), interpolation=cv2.INTER_AREA)
    pts = face.landmarks * np.array([203 / rgb.shape[1], 157 / rgb.shape[0], 203 / rgb.shape[1]], np.float32)
    obs = observation_from(pts, np.eye(3), small.shape)
    out = engine.render(engine.encode(obs, small, engine.prepare("cartoon")), apply_offsets(obs.camera, yaw=-15))
    assert out.image.shape == small.shape and out.mask.shape == small.shape[:2]


@pytest.mark.parametrize("roll", [0.0, 25.0])
def test_yaw_with_the_face_stage_on_a_rolled_head(engine, images, roll):
    """The real face stage's crop-axes camera: the yaw axis stays the head's own up axis when the head is rolled."""
    from stages.face.tracker import FaceTracker

    base = read_image(images / "s1.jpg")
    turn = cv2.getRotationMatrix2D((base.shape[1] / 2, base.shape[0] / 2), roll, 1.0)
    rgb = cv2.warpAffine(base, turn, base.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
    with FaceTracker() as tracker:
        face = tracker.detect(rgb).face
        out = engine.render(engine.encode(face, rgb, engine.prepare(None)), apply_offsets(face.camera, yaw=20.0))
        seen = tracker.detect(out.image).face
    assert seen.yaw - face.yaw == pytest.approx(20.0, abs=7.0)
    assert seen.pitch - face.pitch == pytest.approx(0.0, abs=5.0)
