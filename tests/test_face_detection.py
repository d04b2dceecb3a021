"""Faces found when they are faces, and only then (real MediaPipe + YuNet on ../shared's portraits and animals)."""
import asyncio

import cv2
import numpy as np
import pytest

from stages.face import FaceConfig, FaceTracker
from stages.face import tracker as tracker_module
from stages.face.landmarker import Landmarker
from stages.face.verify import FaceVerifier, plausible
from stages.source_file import FileSource
from test_face_tracker import PORTRAITS, rgb, tracker  # noqa: F401  (tracker: the shared IMAGE-mode fixture)

def turned(image, degrees):
    h, w = image.shape[:2]
    return cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0), (w, h))


def grey(image):
    return np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def variants(image):
    return {"as is": image, "mirrored": image[:, ::-1].copy(), "grayscale": grey(image),
            "turned +20°": turned(image, 20), "turned -20°": turned(image, -20),
            "grayscale mirrored": grey(image)[:, ::-1].copy(), "mirrored turned +20°": turned(image[:, ::-1].copy(), 20)}


def close_up(image, factor=3.0):
    """The face filling a 640² frame (as when leaning into a webcam)."""
    h, w = image.shape[:2]
    side = int(min(h, w) / factor)
    x0, y0 = int(w / 2 - side / 2), int(np.clip(0.45 * h - side / 2, 0, h - side))
    return cv2.resize(image[y0:y0 + side, x0:x0 + side], (640, 640), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("name", PORTRAITS)
def test_every_portrait_is_found_mirrored_grayscale_and_turned(tracker, images, name):
    image = rgb(images / f"{name}.jpg")
    found = {label: tracker.detect(v).face for label, v in variants(image).items()}
    assert all(found.values()), [label for label, face in found.items() if face is None]
    assert abs(found["grayscale"].yaw + found["grayscale mirrored"].yaw) < 2.0   # colour: test_face_tracker


@pytest.mark.parametrize("name", ["s25", "s40"])
def test_the_dog_and_the_cat_are_not_faces_in_any_variant(tracker, images, name):
    image = rgb(images / f"{name}.jpg")
    taken = [label for label, v in variants(image).items() if tracker.detect(v).faces]
    assert taken == []


def test_mediapipe_alone_takes_the_dog_for_a_face_the_second_opinion_does_not(images):
    """The detection threshold is low enough that MediaPipe finds the dog: YuNet is what turns it down."""
    dog = rgb(images / "s25.jpg")
    with FaceTracker(FaceConfig(smoothing=False, verify=False)) as unchecked:
        assert unchecked.detect(dog).found
    with FaceTracker(FaceConfig(smoothing=False)) as checked:
        assert not checked.detect(dog).found


@pytest.mark.parametrize("name, zoom", [("s42.jpg", 3.0), ("eg3d_crops/input_7.png", 2.0)])
def test_a_face_filling_the_frame_is_found_by_the_padded_pass(tracker, images, shared, name, zoom):
    frame = close_up(rgb(images / name), zoom)
    plain = Landmarker(str(shared / "models" / "face_landmarker.task"), 1, 0.5, video=False,
                       min_detection_confidence=0.5)
    try:
        assert plain.detect(frame) == []                      # MediaPipe's detector misses it as it is
    finally:
        plain.close()
    assert tracker.detect(frame).found
    with FaceTracker(FaceConfig(smoothing=True)) as video:   # live: found within two frames, then kept
        found = [video.track(frame, i / 30).found for i in range(6)]
    assert any(found[:2]) and all(found[2:])


def test_landmark_geometry_no_head_can_have_is_refused(tracker, images):
    landmarks = tracker.detect(rgb(images / "s42.jpg")).face.landmarks.astype(np.float64)
    centre = landmarks[:, :2].mean(0)
    assert plausible(landmarks)
    stretched, sheared = landmarks.copy(), landmarks.copy()
    stretched[:, 0] = centre[0] + 2.2 * (landmarks[:, 0] - centre[0])          # twice as wide as a face
    sheared[:, 0] += 0.8 * (landmarks[:, 1] - centre[1])
    assert not plausible(stretched) and not plausible(sheared)
    assert not plausible(np.full_like(landmarks, 7.0))                          # all points in one place


def _count_calls(monkeypatch):
    calls = []
    real = FaceVerifier.confirms

    def counted(self, frame, landmarks):
        calls.append(frame)
        return real(self, frame, landmarks)

    monkeypatch.setattr(FaceVerifier, "confirms", counted)
    return calls


def test_the_second_opinion_runs_when_a_track_starts_not_every_frame(clips, images, monkeypatch):
    calls = _count_calls(monkeypatch)
    source = FileSource(clips / "d10.mp4", max_frames=45)        # 1.5 s at 30 fps
    with FaceTracker(FaceConfig(smoothing=True)) as video:
        results = []
        while (packet := source.read()) is not None:
            results.append(video.track(packet.frame, packet.seconds))
        asyncio.run(source.close())
        assert all(r.found for r in results) and len({r.face.track for r in results}) == 1
        assert len(calls) == 1                                   # once, when the track started
        calls.clear()
        dog = rgb(images / "s25.jpg")
        assert not any(video.track(dog, 2.0 + i / 30).found for i in range(30))     # 1 s of the dog
    assert 1 <= len(calls) <= 3                                   # asked again every 0.5 s, not every frame


def test_a_confirmed_track_is_re_checked_and_revoked_after_failed_checks(clips, monkeypatch):
    """If MediaPipe's tracking slides onto something YuNet does not confirm, the face goes after two checks."""
    source = FileSource(clips / "d10.mp4", max_frames=200)
    frames = []
    while (packet := source.read()) is not None:
        frames.append((packet.frame, packet.seconds))
    asyncio.run(source.close())
    with FaceTracker(FaceConfig(smoothing=False)) as video:
        assert video.track(*frames[0]).found
        monkeypatch.setattr(FaceVerifier, "confirms", lambda self, frame, landmarks: False)
        found = [video.track(f, t).found for f, t in frames[1:]]
    every = round(tracker_module.CONFIRMED_RECHECK_S * 30)
    assert all(found[:2 * every - 2]) and not any(found[2 * every + 1:])
