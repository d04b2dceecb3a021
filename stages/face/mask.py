"""Soft face mask in frame coordinates: the face-oval polygon drawn at reduced resolution, blurred, upscaled."""
from __future__ import annotations

import math

import cv2
import numpy as np
from mediapipe.tasks.python.vision import FaceLandmarksConnections

# MediaPipe lists the oval as consecutive edges; their start points walk around the face.
FACE_OVAL = np.array([c.start for c in FaceLandmarksConnections.FACE_LANDMARKS_FACE_OVAL])


def face_mask(landmarks: np.ndarray, shape: tuple[int, ...], downscale: int = 4) -> np.ndarray:
    """(H, W) float32 in [0, 1]: 1 inside the face oval, feathered over ~5 % of the face width.

    Only the face's neighbourhood is drawn, blurred and upscaled (the rest is zero), so the cost
    follows the face size, not the frame size (a 1080p frame costs no more than a 480p one).
    """
    h, w = shape[:2]
    d = max(1, int(downscale))
    out = np.zeros((h, w), np.float32)
    # small-grid pixel i covers frame pixels [i·d, (i+1)·d); its centre is at frame (i + 0.5)·d
    polygon = np.asarray(landmarks, np.float32)[FACE_OVAL, :2] / d - 0.5
    sigma = max(0.5, 0.05 * float(np.ptp(polygon[:, 0])))
    margin = math.ceil(3 * sigma) + 2                         # the blur's reach
    small_h, small_w = -(-h // d), -(-w // d)
    x0, y0 = (max(0, math.floor(v) - margin) for v in polygon.min(0))
    x1, y1 = min(small_w, math.ceil(polygon[:, 0].max()) + margin + 1), min(small_h, math.ceil(polygon[:, 1].max()) + margin + 1)
    if x0 >= x1 or y0 >= y1:                                  # the face is outside the frame
        return out
    small = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(small, [np.round((polygon - [x0, y0]) * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    small = cv2.GaussianBlur(small, (0, 0), sigma)
    big = cv2.resize(small, ((x1 - x0) * d, (y1 - y0) * d), interpolation=cv2.INTER_LINEAR)
    region = out[y0 * d:y1 * d, x0 * d:x1 * d]               # clipped at the frame's right and bottom
    region[:] = big[:region.shape[0], :region.shape[1]] * np.float32(1.0 / 255.0)
    return out
