"""Non-photorealistic filters for the painterly looks, chosen for video: each is smooth in its input (soft
thresholds, weighted blends), so a face that barely changes between frames gets barely different marks.

- `xdog`: eXtended Difference of Gaussians line drawing (Winnemöller et al. 2012), soft-thresholded.
- `soft_quantize`: luminance in soft steps (Winnemöller et al. 2006, real-time video abstraction).
- `kuwahara`: a smooth Kuwahara filter — the four quadrants' means weighted by their inverse variance
  (after Papari et al. 2007), edge-preserving without the classic filter's blocks.
- `flow` + `smear`: the picture's edge-tangent flow from its structure tensor, and a line-integral
  convolution of a texture along it (strokes that follow the forms).
"""
from __future__ import annotations

import cv2
import numpy as np


def xdog(lum: np.ndarray, sigma: float, k: float = 1.6, strength: float = 0.98, threshold: float = 0.0,
         sharpness: float = 60.0) -> np.ndarray:
    """Lines of a luminance image in [0, 1]: 1 = paper, 0 = a full line. `sigma` sets the line width (pixels)."""
    g1 = cv2.GaussianBlur(lum, (0, 0), sigma)
    g2 = cv2.GaussianBlur(lum, (0, 0), sigma * k)
    dog = g1 - strength * g2
    edge = dog / max(float(np.abs(dog).mean()) * 4.0, 1e-4)       # contrast-normalised, about [-1, 1]
    return np.where(edge >= threshold, 1.0, 1.0 + np.tanh(sharpness * 0.05 * (edge - threshold))).astype(np.float32)


def soft_quantize(lum: np.ndarray, levels: int, sharpness: float = 6.0) -> np.ndarray:
    """`lum` in [0, 1] pulled towards `levels` steps with a tanh ramp (no popping when it drifts across a step)."""
    step = 1.0 / levels
    nearest = (np.floor(lum / step) + 0.5) * step
    return (nearest + 0.5 * step * np.tanh(sharpness * (lum - nearest) / step)).astype(np.float32)


def kuwahara(image: np.ndarray, radius: int, q: float = 4.0) -> np.ndarray:
    """Edge-preserving smoothing of a float32 image (h, w, c) with windows of `radius` pixels."""
    r = max(1, int(radius))
    size = (r + 1, r + 1)
    lum = image.mean(axis=2) if image.ndim == 3 else image
    mean = cv2.boxFilter(image, -1, size, anchor=(0, 0), normalize=True, borderType=cv2.BORDER_REFLECT)
    mean_sq = cv2.boxFilter(lum * lum, -1, size, anchor=(0, 0), normalize=True, borderType=cv2.BORDER_REFLECT)
    mean_l = cv2.boxFilter(lum, -1, size, anchor=(0, 0), normalize=True, borderType=cv2.BORDER_REFLECT)
    var = np.maximum(mean_sq - mean_l * mean_l, 0.0)
    var /= max(float(var.mean()), 1e-8)                     # relative variance: the same look in dim and bright video
    total = np.zeros_like(image)
    weights = np.zeros(lum.shape, np.float32)
    for dy in (0, -r):                          # the four quadrants whose corner is the pixel
        for dx in (0, -r):
            m = np.roll(mean, (-dy, -dx), axis=(0, 1))
            v = np.roll(var, (-dy, -dx), axis=(0, 1))
            wgt = 1.0 / (1.0 + v ** (q / 2.0))
            total += m * (wgt[..., None] if image.ndim == 3 else wgt)
            weights += wgt
    return total / (weights[..., None] if image.ndim == 3 else weights)


def flow(lum: np.ndarray, smoothing: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit tangent (tx, ty) along the edges of `lum`, from its structure tensor smoothed over `smoothing` px."""
    gx = cv2.Sobel(lum, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(lum, cv2.CV_32F, 0, 1, ksize=3)
    jxx, jyy, jxy = (cv2.GaussianBlur(a, (0, 0), smoothing) for a in (gx * gx, gy * gy, gx * gy))
    angle = 0.5 * np.arctan2(2.0 * jxy, jxx - jyy) + np.pi / 2.0
    return np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)


def smear(texture: np.ndarray, tangent: tuple[np.ndarray, np.ndarray], length: int, step: float = 1.0) -> np.ndarray:
    """Line-integral convolution: `texture` averaged along the flow over ±`length` steps of `step` pixels."""
    h, w = texture.shape[:2]
    tx, ty = tangent[0] * step, tangent[1] * step
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    total = texture.astype(np.float32).copy()
    for sign in (-1.0, 1.0):
        px, py = xs.copy(), ys.copy()
        for _ in range(length):
            px += sign * tx
            py += sign * ty
            total += cv2.remap(texture, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return total / (2 * length + 1)
