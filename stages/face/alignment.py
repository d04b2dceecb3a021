"""The EG3D/FFHQ-aligned 512² crop from MediaPipe landmarks (spec §6): roll, POS fit, matrix, warp.

EG3D's FFHQ crop is FFHQ's quad alignment (it sets the roll) followed by Deep3DFaceRecon's
`align_img` on MTCNN's five points: a least-squares POS fit (scaled orthographic projection of five
standard 3D landmarks) gives the image position t of the 3D model's origin and a scale (pixels per
model unit); the crop maps t to its centre at 300 px per unit at 1024², then centre 700 → 512.
Here the same is done in closed form on MediaPipe points that stand in for MTCNN's, plus a small
constant correction (CORRECTION) fitted on the official crops by `benchmarks/face_template.py`.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from pipeline.packets import CROP_SIZE

# Deep3DFaceRecon's five standard 3D landmarks (BFM similarity_Lm3D_all.mat, 68 → 5: eye centres as
# the mean of the two eye corners, nose tip, mouth corners), in the order image-left eye, image-right
# eye, nose, image-left mouth corner, image-right mouth corner; x right, y up, z to the viewer.
STANDARD_3D = np.array([
    [-0.31148657, 0.29036078, 0.13377953],
    [0.30979887, 0.28972036, 0.13179526],
    [0.0032535, -0.04617932, 0.55244243],
    [-0.25216928, -0.38133916, 0.22405732],
    [0.2484662, -0.38128236, 0.22235769],
])
# POS solves p ≈ [X, 1] @ K (K: 4 × 2) by least squares; its solution is K = POS_SOLVE @ p. Fitting in
# image axes (y down) instead of the official flipped y only negates K's y column.
POS_SOLVE = np.linalg.pinv(np.hstack([STANDARD_3D, np.ones((5, 1))]))
# Model units → pixels of the final crop: 300 px per unit at 1024², then 700 px of that → 512.
PIXELS_PER_UNIT = 300.0 * CROP_SIZE / 700.0

# MediaPipe points standing in for MTCNN's five (chosen on the official crops, see docs/cameras.md):
# eye centre = mean of the eye's 16 contour points (MTCNN's eye point does not follow the gaze, so
# the iris is worse); mouth corners halfway between the outer (61, 291) and inner (78, 308) corners;
# the nose between the tip (1) and the columella (2) for the centre, between the tip and the ridge
# point 4 for the scale.
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)  # image left
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
MOUTH_LEFT, MOUTH_RIGHT = (61, 78), (291, 308)
NOSE_FOR_CENTRE, NOSE_FOR_SCALE = (1, 2), (1, 4)
# FFHQ's quad alignment uses dlib's eye centres (mean of 6 contour points) and outer mouth corners.
FFHQ_RIGHT_EYE, FFHQ_LEFT_EYE = (33, 160, 158, 133, 153, 144), (362, 385, 387, 263, 373, 380)

# (dx, dy, log scale): the crop puts the fitted model origin at its centre + (dx, dy) (512² crop
# pixels) and multiplies the zoom by exp(log scale): on the official crops the uncorrected crop puts
# the face ≈ 6 px too low and zooms in ≈ 2.5 % too much (MediaPipe's points are not MTCNN's: its
# five are a little closer together; rounding in the official pipeline). Fitted for the smallest worst case on the ten official crops
# (`python -m benchmarks.face_template`).
CORRECTION = np.array([2.29, -5.40, -0.0257])


def _mean(points: np.ndarray, indices: tuple[int, ...]) -> np.ndarray:
    return points[list(indices)].mean(0)


def mtcnn_points(landmarks: np.ndarray, nose: tuple[int, ...] = NOSE_FOR_CENTRE) -> np.ndarray:
    """(478, ≥2) MediaPipe landmarks → (5, 2) stand-ins for MTCNN's points, in STANDARD_3D's order."""
    p = np.asarray(landmarks, np.float64)[:, :2]
    return np.stack([_mean(p, RIGHT_EYE), _mean(p, LEFT_EYE), _mean(p, nose), _mean(p, MOUTH_LEFT), _mean(p, MOUTH_RIGHT)])


def ffhq_roll(landmarks: np.ndarray) -> float:
    """In-plane angle (radians, + = clockwise on screen) of FFHQ's quad alignment: the direction of
    eye-to-eye minus the eye-to-mouth vector turned by 90°."""
    p = np.asarray(landmarks, np.float64)[:, :2]
    left, right = _mean(p, FFHQ_RIGHT_EYE), _mean(p, FFHQ_LEFT_EYE)
    eye_to_mouth = (p[61] + p[291]) / 2 - (left + right) / 2
    x = (right - left) + np.array([eye_to_mouth[1], -eye_to_mouth[0]])
    return math.atan2(x[1], x[0])


def pos_fit(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Deep3DFaceRecon's POS on five image points: (t, scale) = the image position of the 3D model's
    origin and the mean norm of the two projection rows (pixels per model unit)."""
    k = POS_SOLVE @ np.asarray(points, np.float64)            # (4, 2)
    return k[3], float(np.linalg.norm(k[:3], axis=0).mean())


def crop_matrix(landmarks: np.ndarray, size: int = CROP_SIZE, correction: np.ndarray = CORRECTION) -> np.ndarray:
    """2×3 frame → crop matrix of the EG3D-aligned crop for one face (pixel-index coordinates).

    The points are levelled by FFHQ's roll first (as EG3D's FFHQ data was), then POS-fitted; the head
    pose is not needed.
    """
    points = np.asarray(landmarks, np.float64)[:, :2] - 0.5     # MediaPipe: pixel centres at +0.5
    angle = ffhq_roll(points)
    c, s = math.cos(angle), math.sin(angle)
    level = np.array([[c, s], [-s, c]])                         # turns the face upright
    points = points @ level.T
    t, _ = pos_fit(mtcnn_points(points, NOSE_FOR_CENTRE))
    _, scale = pos_fit(mtcnn_points(points, NOSE_FOR_SCALE))
    if scale < 1e-6:                                            # a face needs some size
        raise ValueError("degenerate landmarks: all points coincide")
    dx, dy, log_scale = (float(v) for v in correction)
    k = PIXELS_PER_UNIT / scale * math.exp(log_scale) * size / CROP_SIZE   # crop px per frame px
    centre = (np.array([CROP_SIZE / 2 - 0.5 + dx, CROP_SIZE / 2 - 0.5 + dy]) + 0.5) * size / CROP_SIZE - 0.5
    return np.hstack([k * level, (centre - k * t)[:, None]])


def invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2×3 affine matrix."""
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def to_params(matrix: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """2×3 frame → crop similarity → (cx, cy, log_scale, angle): crop centre in the frame, log(frame px per
    crop px), and the rotation (radians) that takes crop content to the frame (+ = clockwise on screen)."""
    inverse = invert(matrix)
    cx, cy = inverse @ np.array([size / 2, size / 2, 1.0])
    return np.array([cx, cy, math.log(math.hypot(inverse[0, 0], inverse[1, 0])), math.atan2(inverse[1, 0], inverse[0, 0])])


def from_params(params: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Inverse of `to_params`: (cx, cy, log_scale, angle) → 2×3 frame → crop matrix."""
    cx, cy, log_scale, angle = (float(v) for v in params)
    scale = math.exp(log_scale)
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    rs = np.array([[c, -s], [s, c]])
    inverse = np.hstack([rs, (np.array([cx, cy]) - rs @ np.array([size / 2, size / 2]))[:, None]])
    return invert(inverse)


def warp_crop(frame: np.ndarray, matrix: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Warp the crop once with bicubic sampling; a large downscale is area-filtered first (no aliasing).
    Outside the frame is black, as in EG3D's own crops."""
    matrix = np.asarray(matrix, np.float64)
    shrink = int(1.0 / math.hypot(matrix[0, 0], matrix[1, 0]))   # frame px per crop px, rounded down
    if shrink >= 2:
        h, w = frame.shape[:2]
        frame = cv2.resize(frame, (max(1, w // shrink), max(1, h // shrink)), interpolation=cv2.INTER_AREA)
        # pixel centres: x_small = (x + 0.5)·w'/w − 0.5, folded into the matrix
        fx, fy = frame.shape[1] / w, frame.shape[0] / h
        to_small = np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1]])
        matrix = matrix @ np.linalg.inv(to_small)
    return cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
