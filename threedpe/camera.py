"""EG3D cameras: the 25-number label, look-at cameras, and conversions. Shared by the face stage and renderer.

Conventions (spec §1.3): world y-up, head at the origin facing +z, triplane box [-0.5, 0.5]³.
A label is 16 numbers of a row-major 4×4 cam2world in OpenCV camera axes (+x right, +y down,
+z forward) followed by the row-major 3×3 intrinsics normalised by image size.

Angles used by the product (degrees, "true" angles on the orbit sphere):
  yaw   + : the camera moves to world +x (the subject's left), so the head looks towards image left;
  pitch + : the camera moves below the head, so the head appears tilted up (chin up);
  roll  + : the camera rotates about its viewing axis so the image content turns clockwise.
"""
from __future__ import annotations

import math

import numpy as np

RADIUS = 2.7
PIVOT = np.array([0.0, 0.0, 0.2])
FOCAL_DATASET = 2985.29 / 700.0                                   # 4.2647, FFHQ dataset labels
DEFAULT_FOV_DEG = 18.837


def intrinsics(focal: float = FOCAL_DATASET, cx: float = 0.5, cy: float = 0.5) -> np.ndarray:
    return np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])


def make_label(cam2world: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(4,4) cam2world + (3,3) normalised intrinsics → (25,) float32 label."""
    return np.concatenate([np.asarray(cam2world, np.float64).reshape(16), np.asarray(K, np.float64).reshape(9)]).astype(np.float32)


def split_label(label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(25,) label → ((4,4) cam2world, (3,3) intrinsics), float64."""
    label = np.asarray(label, np.float64).reshape(25)
    return label[:16].reshape(4, 4), label[16:].reshape(3, 3)


def look_at(origin: np.ndarray, target: np.ndarray = PIVOT) -> np.ndarray:
    """4×4 cam2world for a camera at `origin` looking at `target` with world +y up (EG3D construction)."""
    origin = np.asarray(origin, np.float64)
    forward = _normalise(np.asarray(target, np.float64) - origin)
    right = -_normalise(np.cross(np.array([0.0, 1.0, 0.0]), forward))
    down = _normalise(np.cross(forward, right))
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, forward, origin
    return pose


def orbit_label(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, zoom: float = 1.0,
                radius: float = RADIUS, focal: float = FOCAL_DATASET, target: np.ndarray = PIVOT) -> np.ndarray:
    """Label of a camera on the `radius` sphere around the origin at true angles (degrees), looking at `target`."""
    y, p = math.radians(yaw), math.radians(pitch)
    origin = radius * np.array([math.cos(p) * math.sin(y), -math.sin(p), math.cos(p) * math.cos(y)])
    pose = look_at(origin, target)
    pose[:3, :3] = pose[:3, :3] @ _rot_z(math.radians(roll))
    return make_label(pose, intrinsics(focal * zoom))


def camera_angles(label: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a label, in the convention of `orbit_label`."""
    pose, _ = split_label(label)
    origin = pose[:3, 3]
    yaw = math.degrees(math.atan2(origin[0], origin[2]))
    pitch = math.degrees(math.atan2(-origin[1], math.hypot(origin[0], origin[2])))
    upright = look_at(origin, origin + pose[:3, 2])[:3, :3]      # same viewing axis, no roll
    rel = upright.T @ pose[:3, :3]
    roll = math.degrees(math.atan2(rel[1, 0], rel[0, 0]))
    return yaw, pitch, roll


def apply_offsets(label: np.ndarray, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0,
                  zoom: float = 1.0) -> np.ndarray:
    """A virtual camera: the tracked camera moved by yaw/pitch/roll offsets (degrees) and zoomed.

    The camera orbits the origin as `orbit_label` cameras do, carrying its own aim along: the rigid
    motion from the orbit camera at the label's angles to the one at the offset angles is applied to
    the label's pose, so zero offsets give the label back exactly (whatever point it looks at) and
    the offsets add to `camera_angles`. Zoom scales the focal length.
    """
    pose, K = split_label(label)
    y0, p0, r0 = camera_angles(label)
    radius = float(np.linalg.norm(pose[:3, 3]))
    start, _ = split_label(orbit_label(y0, p0, r0, 1.0, radius))
    moved, _ = split_label(orbit_label(y0 + yaw, p0 + pitch, r0 + roll, 1.0, radius))
    out_K = K.copy()
    out_K[0, 0], out_K[1, 1] = K[0, 0] * zoom, K[1, 1] * zoom
    return make_label(moved @ np.linalg.inv(start) @ pose, out_K)


def camera_from_head_rotation(rotation: np.ndarray, radius: float = RADIUS, focal: float = FOCAL_DATASET) -> np.ndarray:
    """Label of the camera that sees a head rotated by `rotation` (3×3, EG3D world axes) from the frontal view.

    A head turned by R in front of a fixed camera looks the same as a fixed head seen by a camera
    moved by Rᵀ around it. That camera is put on the `radius` sphere at those angles (roll included)
    and aimed at the pivot, like EG3D's dataset and look-at cameras.
    """
    Rt = np.asarray(rotation, np.float64).T
    pose = np.eye(4)
    pose[:3, :3] = Rt @ np.diag([1.0, -1.0, -1.0])
    pose[:3, 3] = Rt @ np.array([0.0, 0.0, radius])
    yaw, pitch, roll = camera_angles(make_label(pose, intrinsics(focal)))
    return orbit_label(yaw, pitch, roll, 1.0, radius, focal)


def eg3d_lookat_pose(h: float, v: float, radius: float = RADIUS, lookat: np.ndarray = PIVOT) -> np.ndarray:
    """EG3D `LookAtPoseSampler` with zero std: h, v in radians (frontal = π/2, π/2). float32 like the official code."""
    v = min(max(v, 1e-5), math.pi - 1e-5)
    theta, phi = np.float32(h), np.float32(math.acos(1 - 2 * v / math.pi))
    origin = np.array([radius * np.sin(phi) * np.cos(np.float32(math.pi) - theta),
                       radius * np.cos(phi),
                       radius * np.sin(phi) * np.sin(np.float32(math.pi) - theta)], np.float32)
    return look_at(origin.astype(np.float64), lookat)


def eural_to_camera_label(yaw_offset: float = 0.0, pitch_offset: float = 0.0, fov_deg: float = DEFAULT_FOV_DEG,
                          cx: float = 0.5, cy: float = 0.5) -> np.ndarray:
    """The official 3DPE synthetic camera (`eural_to_camera`), offsets in radians from frontal.

    Its focal comes from a quirky formula: fov 18.837 gives 4.26339, not the dataset's 4.2647 (spec §1.3).
    """
    focal = 1.0 / (math.tan(fov_deg * 3.14159 / 360.0) * 1.414)
    pose = eg3d_lookat_pose(math.pi / 2 + yaw_offset, math.pi / 2 + pitch_offset)
    return make_label(pose, intrinsics(focal, cx, cy))


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
