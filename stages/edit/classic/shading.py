"""Light for the sculpted looks: surface normals of the view's depth proxy, carved detail from the picture
(relief), ambient occlusion, and a fixed studio — a key light and a soft-box environment for reflections.

Camera axes: x right, y down, z forward; vectors point from the surface towards the light / viewer.
"""
from __future__ import annotations

import cv2
import numpy as np

KEY_LIGHT = np.array([-0.35, -0.45, -0.82]) / np.linalg.norm([-0.35, -0.45, -0.82])  # upper left, in front
VIEWER = np.array([0.0, 0.0, -1.0])


def normals_from_depth(depth: np.ndarray, cell: tuple[float, float]) -> np.ndarray:
    """(h, w, 3) unit normals facing the camera of a depth map sampled every `cell` = (dx, dy) pixels."""
    smooth = cv2.GaussianBlur(depth.astype(np.float32), (3, 3), 0)
    dzdx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3, scale=1.0 / (8.0 * cell[0]))
    dzdy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3, scale=1.0 / (8.0 * cell[1]))
    n = np.dstack([dzdx, dzdy, -np.ones_like(dzdx)])
    return n / np.linalg.norm(n, axis=2, keepdims=True)


def relief(normals: np.ndarray, height: np.ndarray, gain: float) -> np.ndarray:
    """Normals bent by a height field (bump mapping): `height` in relief units, raised where positive;
    `gain` turns its per-pixel slope into the normal's tilt."""
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3, scale=gain / 8.0)
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3, scale=gain / 8.0)
    n = normals.astype(np.float32).copy()
    n[..., 0] -= gx * -n[..., 2]                 # a rising slope to the right tilts the normal to the left
    n[..., 1] -= gy * -n[..., 2]
    return n / np.linalg.norm(n, axis=2, keepdims=True)


def band_pass(lum: np.ndarray, fine: float, coarse: float) -> np.ndarray:
    """Detail between two scales (pixels): features and strands, without the lighting's gradients."""
    return cv2.GaussianBlur(lum, (0, 0), max(fine, 0.3)) - cv2.GaussianBlur(lum, (0, 0), coarse)


def cavities(lum: np.ndarray, scale: float, spread: float) -> np.ndarray:
    """Ambient occlusion from the picture, in [0, 1] (1 = deep): places darker than their surroundings —
    eye sockets, nostrils, the lips' line, between locks of hair. `spread` is the head's detail contrast."""
    dark = cv2.GaussianBlur(lum, (0, 0), scale) - lum
    return np.clip(dark / max(3.0 * spread, 1e-3), 0.0, 1.0)


def lambert(normals: np.ndarray, light: np.ndarray = KEY_LIGHT) -> np.ndarray:
    return np.clip(normals @ light.astype(np.float32), 0.0, 1.0)


def specular(normals: np.ndarray, shininess: float, light: np.ndarray = KEY_LIGHT) -> np.ndarray:
    """Blinn-Phong highlight."""
    half = (light + VIEWER) / np.linalg.norm(light + VIEWER)
    return np.clip(normals @ half.astype(np.float32), 0.0, 1.0) ** shininess


def facing(normals: np.ndarray) -> np.ndarray:
    """cos of the angle between the surface and the viewer, in [0, 1]."""
    return np.clip(normals @ VIEWER.astype(np.float32), 0.0, 1.0)


def studio(normals: np.ndarray) -> np.ndarray:
    """What a mirror-like surface reflects, in [0, 1]: a soft box above left, a dim ceiling, a dark floor and
    a bright rim behind the subject (so silhouettes catch light, as a photographed bronze does)."""
    n = normals.astype(np.float32)
    cos = -n[..., 2]                                            # n · viewer
    r = 2.0 * cos[..., None] * n - VIEWER.astype(np.float32)     # the viewer's ray, mirrored about the normal
    up = -r[..., 1]
    soft_box = np.clip((r @ KEY_LIGHT.astype(np.float32) - 0.75) / 0.25, 0.0, 1.0) ** 2
    sky = 0.35 + 0.3 * np.clip(up, -1.0, 1.0)
    rim = np.clip((r[..., 2] - 0.2) / 0.8, 0.0, 1.0) ** 2           # looking past the head, towards the back light
    return np.clip(0.55 * sky + 0.9 * soft_box + 0.5 * rim, 0.0, 1.0)
