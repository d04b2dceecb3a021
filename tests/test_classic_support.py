"""Helpers for the classic-engine tests (no tests here): MediaPipe face observations, pose and identity measures.

Pose is measured from MediaPipe's facial transformation matrix in the convention of threedpe.camera
(yaw + = nose towards image left, pitch + = chin up), so output − input differences are comparable.
"""
from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from pipeline.assets import FACE_LANDMARKER
from pipeline.packets import FaceObservation
from threedpe.camera import camera_from_head_rotation


@lru_cache(maxsize=1)
def _landmarker():
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(FACE_LANDMARKER.resolve(download=False))),
        running_mode=vision.RunningMode.IMAGE, num_faces=1,
        output_facial_transformation_matrixes=True)
    return vision.FaceLandmarker.create_from_options(options)


def detect(rgb: np.ndarray):
    """(landmarks (478,3) in pixels, head rotation 3×3) or None."""
    import mediapipe as mp

    result = _landmarker().detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
    if not result.face_landmarks:
        return None
    h, w = rgb.shape[:2]
    pts = np.array([(p.x * w, p.y * h, p.z * w) for p in result.face_landmarks[0]], np.float32)
    rot = np.asarray(result.facial_transformation_matrixes[0], np.float64)[:3, :3]
    rot = rot / np.cbrt(np.linalg.det(rot))
    return pts, rot


def pose_of(rotation: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) degrees of a MediaPipe head rotation (camera axes x right, y up, z to the viewer)."""
    nose = rotation[:, 2]
    yaw = math.degrees(math.atan2(-nose[0], nose[2]))
    pitch = math.degrees(math.atan2(nose[1], math.hypot(nose[0], nose[2])))
    return yaw, pitch


def measure_pose(rgb: np.ndarray) -> tuple[float, float]:
    found = detect(rgb)
    assert found is not None, "no face found by MediaPipe"
    return pose_of(found[1])


def observation(rgb: np.ndarray) -> FaceObservation:
    """A FaceObservation from MediaPipe; crop fields are placeholders (the classic engine does not read them)."""
    found = detect(rgb)
    assert found is not None, "no face found by MediaPipe"
    pts, rot = found
    return observation_from(pts, rot, rgb.shape)


def observation_from(pts: np.ndarray, rot: np.ndarray, shape) -> FaceObservation:
    yaw, pitch = pose_of(rot)
    h, w = shape[:2]
    x0, y0 = pts[:, :2].min(0)
    x1, y1 = pts[:, :2].max(0)
    eye = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    return FaceObservation(
        landmarks=pts, box=(float(x0), float(y0), float(x1), float(y1)), confidence=1.0,
        yaw=yaw, pitch=pitch, roll=0.0, camera=camera_from_head_rotation(rot),
        crop_matrix=eye, crop_inverse=eye, crop=np.zeros((512, 512, 3), np.uint8),
        mask=np.zeros((h, w), np.float32))


def read_frames(path, indices) -> list[np.ndarray]:
    """RGB frames at the given indices of a video (PyAV)."""
    import av

    wanted, out = set(indices), {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out[i] = frame.to_ndarray(format="rgb24")
            if i >= max(wanted):
                break
    return [out[i] for i in indices]


def read_image(path, max_side: int = 640) -> np.ndarray:
    bgr = cv2.imread(str(path))
    scale = max_side / max(bgr.shape[:2])
    if scale < 1:
        bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@lru_cache(maxsize=1)
def _identity_meter():
    from quality.identity import IdentityMeter

    return IdentityMeter()


def identity_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """SFace cosine between the faces of two RGB images (the benchmarks' meter)."""
    similarity = _identity_meter().similarity(a, b)
    assert similarity is not None, "YuNet found no face"
    return similarity


def away_from_person(rgb: np.ndarray, face: FaceObservation, margin: float = 0.2) -> np.ndarray:
    """Pixels farther than `margin` face widths from the person (the selfie segmenter on the input)."""
    from stages.person_mask import PersonSegmenter

    with PersonSegmenter() as segmenter:
        person = (segmenter.segment(rgb) > 0.5).astype(np.uint8)
    grow = int(margin * (face.box[2] - face.box[0]))
    return cv2.dilate(person, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) == 0
