"""Surface normals of a view's depth map and the fixed studio light the statue styles are shaded with."""
from __future__ import annotations

import cv2
import numpy as np

# Camera axes (x right, y down, z forward); vectors point from the surface towards the light / viewer.
KEY_LIGHT = np.array([-0.5, -0.55, -0.67]) / np.linalg.norm([-0.5, -0.55, -0.67])  # upper left, in front
VIEWER = np.array([0.0, 0.0, -1.0])


def normals_from_depth(depth: np.ndarray, cell: tuple[float, float]) -> np.ndarray:
    """(h, w, 3) unit normals facing the camera of a depth map sampled every `cell` = (dx, dy) pixels."""
    smooth = cv2.GaussianBlur(depth.astype(np.float32), (3, 3), 0)
    dzdx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3, scale=1.0 / (8.0 * cell[0]))
    dzdy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3, scale=1.0 / (8.0 * cell[1]))
    n = np.dstack([dzdx, dzdy, -np.ones_like(dzdx)])
    return n / np.linalg.norm(n, axis=2, keepdims=True)


def lambert(normals: np.ndarray, light: np.ndarray = KEY_LIGHT) -> np.ndarray:
    return np.clip(normals @ light.astype(np.float32), 0.0, 1.0)


def specular(normals: np.ndarray, shininess: float, light: np.ndarray = KEY_LIGHT) -> np.ndarray:
    """Blinn-Phong highlight."""
    half = (light + VIEWER) / np.linalg.norm(light + VIEWER)
    return np.clip(normals @ half.astype(np.float32), 0.0, 1.0) ** shininess
