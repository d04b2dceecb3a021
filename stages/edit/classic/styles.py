"""The named style presets for video calls and how each one repaints a head region.

Statue looks (metal, stone) are shaded from the proxy's normals in the virtual view, so their
light stays put while the head turns; the painterly looks work on the pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stages.edit.classic.normals import lambert, specular

_VEINS = cv2.resize(np.random.default_rng(7).random((12, 12)).astype(np.float32), (96, 96),
                    interpolation=cv2.INTER_CUBIC)  # fixed marble noise, stretched over the head


@dataclass(frozen=True)
class Preset:
    """A named look: `look` picks the painter, colours are RGB in [0, 1]."""

    name: str
    look: str                       # "metal", "stone", "sketch", "cartoon", "oil"
    dark: tuple[float, float, float] = (0.0, 0.0, 0.0)
    light: tuple[float, float, float] = (1.0, 1.0, 1.0)
    highlight: tuple[float, float, float] = (1.0, 1.0, 1.0)
    gloss: float = 0.0
    shininess: float = 16.0

    def apply(self, rgb: np.ndarray, normals: np.ndarray, face_width: float, weight: np.ndarray) -> np.ndarray:
        """Repaint `rgb` (h, w, 3 uint8) whose surface normals are `normals` (h, w, 3); `weight`: the head (h, w)."""
        return _LOOKS[self.look](self, rgb, normals, max(face_width, 8.0))


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def _wide_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur with a large sigma, done at reduced size (same look, a fraction of the cost)."""
    h, w = image.shape[:2]
    factor = max(1, int(sigma / 3))
    small = cv2.resize(image, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    return cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma / factor), (w, h), interpolation=cv2.INTER_LINEAR)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _statue_tone(rgb: np.ndarray, normals: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Tone in [0, 1] from light and the face's own features (eyes, brows stay legible), and the Lambert term."""
    lum = _luminance(rgb)
    base = _wide_blur(lum, width / 10.0)
    detail = lum - cv2.GaussianBlur(lum, (0, 0), width / 60.0)
    shade = lambert(normals)
    return np.clip(0.1 + 0.3 * base + 0.65 * shade + 1.5 * detail, 0.0, 1.0), shade


def _metal(p: Preset, rgb, normals, width):
    tone, _ = _statue_tone(rgb, normals, width)
    dark, light = np.array(p.dark, np.float32), np.array(p.light, np.float32)
    out = dark + (light - dark) * tone[..., None]
    out += p.gloss * specular(normals, p.shininess)[..., None] * np.array(p.highlight, np.float32)
    return _to_uint8(out)


def _stone(p: Preset, rgb, normals, width):
    tone, _ = _statue_tone(rgb, normals, width)
    h, w = tone.shape
    veins = cv2.resize(_VEINS, (w, h), interpolation=cv2.INTER_LINEAR)
    xs = np.linspace(0, 6 * np.pi, w, dtype=np.float32)[None, :]
    vein = np.abs(np.sin(xs + 9.0 * veins)) ** 0.2           # thin dark lines where the sine crosses 0
    dark, light = np.array(p.dark, np.float32), np.array(p.light, np.float32)
    out = (dark + (light - dark) * (0.35 + 0.65 * tone)[..., None]) * (0.85 + 0.15 * vein)[..., None]
    out += p.gloss * specular(normals, p.shininess)[..., None] * np.array(p.highlight, np.float32)
    return _to_uint8(out)


def _sketch(p: Preset, rgb, normals, width):
    gray = _luminance(rgb)
    blurred = cv2.GaussianBlur(1.0 - gray, (0, 0), width / 30.0)
    dodge = np.clip(gray / np.maximum(1.0 - blurred, 1e-3), 0.0, 1.0) ** 2.0   # colour dodge: pencil lines
    shade = 0.8 + 0.2 * lambert(normals)
    return _to_uint8((dodge * shade)[..., None] * np.array(p.light, np.float32))


def _cartoon(p: Preset, rgb, normals, width):
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    for _ in range(2):
        small = cv2.bilateralFilter(small, 7, 40, 5)
    flat = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    levels = 6
    flat = (np.floor(flat.astype(np.float32) / 256.0 * levels) + 0.5) / levels
    gray = cv2.medianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 5)
    block = 2 * max(2, int(width / 25)) + 1
    edges = cv2.adaptiveThreshold(gray, 1, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block, 5)
    return _to_uint8(np.clip(flat * 1.1, 0, 1) * (0.15 + 0.85 * edges.astype(np.float32))[..., None])


def _oil(p: Preset, rgb, normals, width):
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    strokes = cv2.xphoto.oilPainting(small, max(2, int(width / 30)), 1)
    paint = cv2.resize(strokes, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    lum = paint.mean(2, keepdims=True)
    paint = np.clip(lum + 1.35 * (paint - lum), 0, 1) * np.array(p.light, np.float32)   # richer pigment
    # Impasto: light the paint's own relief from the key light's side.
    relief = cv2.Sobel(cv2.GaussianBlur(lum[..., 0], (3, 3), 0), cv2.CV_32F, 1, 1, ksize=3)
    shade = 0.85 + 0.25 * lambert(normals) - 0.8 * relief
    return _to_uint8(paint * shade[..., None])


_LOOKS = {"metal": _metal, "stone": _stone, "sketch": _sketch, "cartoon": _cartoon, "oil": _oil}

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("bronze statue", "metal", dark=(0.12, 0.06, 0.02), light=(0.85, 0.55, 0.28),
           highlight=(1.0, 0.85, 0.6), gloss=0.55, shininess=20.0),
    Preset("golden statue", "metal", dark=(0.25, 0.15, 0.0), light=(1.0, 0.82, 0.3),
           highlight=(1.0, 0.95, 0.75), gloss=0.7, shininess=28.0),
    Preset("silver statue", "metal", dark=(0.12, 0.13, 0.15), light=(0.85, 0.87, 0.9),
           highlight=(1.0, 1.0, 1.0), gloss=0.6, shininess=32.0),
    Preset("marble", "stone", dark=(0.45, 0.44, 0.42), light=(0.97, 0.96, 0.93),
           highlight=(1.0, 1.0, 1.0), gloss=0.15, shininess=10.0),
    Preset("terracotta", "stone", dark=(0.3, 0.12, 0.06), light=(0.8, 0.45, 0.3),
           highlight=(1.0, 0.8, 0.7), gloss=0.05, shininess=8.0),
    Preset("pencil sketch", "sketch", light=(0.97, 0.95, 0.9)),
    Preset("cartoon", "cartoon"),
    Preset("oil painting", "oil"),
)}
