"""Soft face mask in frame coordinates: the face-oval polygon drawn at reduced resolution, blurred, upscaled."""
from __future__ import annotations

import cv2
import numpy as np
from mediapipe.tasks.python.vision import FaceLandmarksConnections

# MediaPipe lists the oval as consecutive edges; their start points walk around the face.
FACE_OVAL = np.array([c.start for c in FaceLandmarksConnections.FACE_LANDMARKS_FACE_OVAL])


def face_mask(landmarks: np.ndarray, shape: tuple[int, ...], downscale: int = 4) -> np.ndarray:
    """(H, W) float32 in [0, 1]: 1 inside the face oval, feathered over ~5 % of the face width."""
    h, w = shape[:2]
    d = max(1, int(downscale))
    small = np.zeros((max(1, -(-h // d)), max(1, -(-w // d))), np.uint8)
    polygon = np.asarray(landmarks, np.float32)[FACE_OVAL, :2] / d
    cv2.fillPoly(small, [np.round(polygon * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    width = float(np.ptp(polygon[:, 0]))
    sigma = max(0.5, 0.05 * width)
    small = cv2.GaussianBlur(small, (0, 0), sigma)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) * (1.0 / 255.0)
