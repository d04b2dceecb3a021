"""Push-pull hole filling on coarse grids (the warp's backward map, the proxy's mesh-to-head blend)."""
from __future__ import annotations

import cv2
import numpy as np


def fill_holes(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(h, w, c) values with holes where `valid` is False, filled from the nearest coarser level that has data."""
    weight = valid.astype(np.float32)
    if weight.all() or not weight.any():
        return values
    pyramid = [(values * weight[..., None], weight[..., None])]
    while min(pyramid[-1][1].shape[:2]) > 2 and (pyramid[-1][1] <= 1e-6).any():
        sums, weights = pyramid[-1]
        size = (max(1, sums.shape[1] // 2), max(1, sums.shape[0] // 2))
        pyramid.append((_resize(sums, size, cv2.INTER_AREA), _resize(weights, size, cv2.INTER_AREA)))
    sums, weights = pyramid[-1]
    filled = sums / np.maximum(weights, 1e-6)
    for sums, weights in reversed(pyramid[:-1]):
        coarse = _resize(filled, (sums.shape[1], sums.shape[0]), cv2.INTER_LINEAR)
        filled = np.where(weights > 1e-6, sums / np.maximum(weights, 1e-6), coarse)
    return np.where(valid[..., None], values, filled).astype(np.float32)


def _resize(image: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    """cv2.resize that keeps a trailing channel axis of length 1."""
    return cv2.resize(image, size, interpolation=interpolation).reshape(size[1], size[0], -1)
