"""Procedural textures that stick to the head: tileable fields over the 512² aligned-crop square, looked up through
each pixel's crop coordinates (`uv`), so marble veins, clay grain, pencil hatching and brush bristles move and
turn with the face instead of swimming over it. Made once, from fixed seeds: the same face gets the same marks."""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

SIDE = 512                          # texture side = the aligned crop's side (uv units are crop pixels)


def _tileable_noise(seed: int, scale: float) -> np.ndarray:
    """Zero-mean, unit-std noise whose features are about `scale` crop pixels wide; it wraps at the edges."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal((SIDE, SIDE))
    fy = np.fft.fftfreq(SIDE)[:, None]
    fx = np.fft.rfftfreq(SIDE)[None, :]
    gauss = np.exp(-0.5 * (fx ** 2 + fy ** 2) * (2 * np.pi * scale / 2.0) ** 2)
    field = np.fft.irfft2(np.fft.rfft2(white) * gauss, s=(SIDE, SIDE))
    return ((field - field.mean()) / max(field.std(), 1e-9)).astype(np.float32)


@lru_cache(maxsize=None)
def noise(seed: int, scale: float) -> np.ndarray:
    return _tileable_noise(seed, scale)


@lru_cache(maxsize=None)
def turbulence(seed: int) -> np.ndarray:
    """Sum of |noise| over octaves (Perlin's turbulence), about [0, 2]."""
    return sum(np.abs(noise(seed + i, 48.0 / 2 ** i)) / 2 ** i for i in range(4)).astype(np.float32)


@lru_cache(maxsize=None)
def veins(seed: int = 3) -> np.ndarray:
    """Marble: a few thin grey veins meandering diagonally, fading in and out, in [0, 1] (1 on a vein)."""
    ys, xs = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32) / SIDE
    phase = 2.0 * (xs + ys) + 0.6 * turbulence(seed)                  # whole periods across: still tileable
    vein = np.exp(-(np.sin(np.pi * phase) / 0.1) ** 2)             # a few crop pixels wide: no shimmer
    presence = np.clip(0.5 + 0.6 * noise(seed + 7, 60.0), 0.0, 1.0)
    return (vein * presence).astype(np.float32)


@lru_cache(maxsize=None)
def hatching(angle_deg: float, period: float, seed: int) -> np.ndarray:
    """Pencil hatching: parallel strokes at `angle_deg`, `period` crop pixels apart, each stroke's pressure and
    position wobbling along it; in [0, 1] (1 = graphite)."""
    ys, xs = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    a = np.radians(angle_deg)
    # directions with whole numbers of periods across the tile keep it tileable
    kx = round(SIDE * np.cos(a) / period) / SIDE
    ky = round(SIDE * np.sin(a) / period) / SIDE
    phase = (kx * xs + ky * ys) + 0.25 * noise(seed, 24.0)
    stroke = 0.5 + 0.5 * np.cos(2 * np.pi * phase)
    pressure = np.clip(0.75 + 0.35 * noise(seed + 1, 10.0), 0.0, 1.0)
    return (stroke ** 3 * pressure).astype(np.float32)


def sample(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """`texture` (SIDE², any channels) at crop coordinates `uv` (h, w, 2), wrapping around."""
    return cv2.remap(texture, uv[..., 0], uv[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
