"""Head pose → EG3D camera: MediaPipe's facial transformation matrix to the 25-number label of the crop.

MediaPipe's canonical face axes (x to the subject's left = image right, y up, z out of the face) and
its camera axes (OpenGL: x right, y up, z to the viewer) coincide with EG3D's world axes for a frontal
head, so the matrix's rotation is the head rotation in EG3D's world (see docs/cameras.md).
"""
from __future__ import annotations

import math

import numpy as np

from threedpe.camera import camera_angles, camera_from_head_rotation


def head_rotation(transform: np.ndarray) -> np.ndarray:
    """3×3 head rotation in EG3D world axes from MediaPipe's 4×4 matrix (scale removed, re-orthonormalised)."""
    u, _, vt = np.linalg.svd(np.asarray(transform, np.float64)[:3, :3])
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:
        rotation = u @ np.diag([1.0, 1.0, -1.0]) @ vt
    return rotation


def crop_camera(rotation: np.ndarray, crop_angle: float) -> np.ndarray:
    """EG3D label of the camera that sees the head as it appears in the crop.

    `crop_angle` (radians, + = clockwise on screen) is how the crop's content is turned to give the
    frame; undoing it is a rotation about the viewing axis, which in world axes (y up, z to the
    viewer) is Rz(+crop_angle).
    """
    c, s = math.cos(crop_angle), math.sin(crop_angle)
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return camera_from_head_rotation(rz @ rotation)


def pose_angles(camera: np.ndarray, crop_angle: float) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees: yaw and pitch are `camera_angles(camera)`; roll is the head's roll in
    the frame, i.e. the camera's roll in the crop plus the crop's own rotation."""
    yaw, pitch, roll = camera_angles(camera)
    return yaw, pitch, math.remainder(roll + math.degrees(crop_angle), 360.0)   # within ±180°
