"""The named style presets for video calls and how each one repaints a head region.

Statue looks (metal, stone) are shaded from the proxy's normals in the virtual view, so their
light stays put while the head turns; the painterly looks work on the pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stages.edit.classic.normals import lambert, specular

_RNG = np.random.default_rng(7)
# Fixed textures, stretched over the head so they stay on it: turbulence for marble veins, noise for brush strokes.
_TURBULENCE = (cv2.resize(_RNG.random((6, 6)).astype(np.float32), (128, 128), interpolation=cv2.INTER_CUBIC)
               + 0.5 * cv2.resize(_RNG.random((16, 16)).astype(np.float32), (128, 128), interpolation=cv2.INTER_CUBIC))
_BRUSH_NOISE = _RNG.random((256, 256)).astype(np.float32)
CARVE_CONTRAST = 0.14               # std of the carved features (eyes, brows, nostrils, lips) in tone units
OIL_FACE_WIDTH = 90.0               # the oil look paints at this face width (smaller faces: at full size)


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
    veins: float = 0.0              # stone only: how dark its veins are

    def apply(self, rgb: np.ndarray, normals: np.ndarray, face_width: float, weight: np.ndarray) -> np.ndarray:
        """Repaint `rgb` (h, w, 3 uint8) whose surface normals are `normals` (h, w, 3); `weight`: the head (h, w)."""
        return _LOOKS[self.look](self, rgb, normals, max(face_width, 8.0), weight)


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


def _carved_detail(lum: np.ndarray, width: float, weight: np.ndarray, fine_gain: float) -> np.ndarray:
    """The face's features as a band-pass of luminance (eye sockets, brows, nostrils, lip line), normalised so
    they are equally legible in dim and bright video, and clipped so specks and glasses glints don't dominate."""
    detail = lum - cv2.GaussianBlur(lum, (0, 0), width / 18.0)
    fine = lum - cv2.GaussianBlur(lum, (0, 0), width / 90.0)
    head = weight > 0.5
    spread = float(detail[head].std()) if head.sum() > 16 else float(detail.std())
    carved = (0.8 * detail + fine_gain * fine) * (CARVE_CONTRAST / max(spread, 1e-3))
    return np.clip(carved, -0.4, 0.3)


def statue_tone(rgb: np.ndarray, normals: np.ndarray, width: float, weight: np.ndarray,
                 ambient: float, fine_gain: float) -> np.ndarray:
    """Tone in [0, 1] of a carved statue: light on the proxy's normals, the features carved in, a hint of albedo
    (hair a little darker than skin)."""
    lum = _luminance(rgb)
    base = _wide_blur(lum, width / 8.0)
    head = weight > 0.5
    albedo = 0.25 * (base - (float(base[head].mean()) if head.any() else float(base.mean())))
    tone = ambient + (0.95 - ambient) * lambert(normals) + albedo + _carved_detail(lum, width, weight, fine_gain)
    return np.clip(tone, 0.0, 1.0)


def _metal(p: Preset, rgb, normals, width, weight):
    tone = statue_tone(rgb, normals, width, weight, ambient=0.15, fine_gain=0.6)
    dark, light = np.array(p.dark, np.float32), np.array(p.light, np.float32)
    out = dark + (light - dark) * tone[..., None]
    out += p.gloss * specular(normals, p.shininess)[..., None] * np.array(p.highlight, np.float32)
    return _to_uint8(out)


def _stone(p: Preset, rgb, normals, width, weight):
    """Matte stone: soft light wrapping round the form (a little subsurface), the features carved, thin veins."""
    tone = statue_tone(rgb, normals, width, weight, ambient=0.3, fine_gain=0.25) ** 0.85
    h, w = tone.shape
    turbulence = cv2.resize(_TURBULENCE, (w, h), interpolation=cv2.INTER_LINEAR)
    xs, ys = np.meshgrid(np.linspace(0, 1, w, dtype=np.float32), np.linspace(0, 1, h, dtype=np.float32))
    phase = 3.0 * (xs + 0.6 * ys) + 1.1 * turbulence                     # diagonal veins, meandering
    vein = np.exp(-(np.sin(np.pi * phase) / 0.1) ** 2)                  # thin lines where the sine crosses 0
    dark, light = np.array(p.dark, np.float32), np.array(p.light, np.float32)
    out = (dark + (light - dark) * tone[..., None]) * (1.0 - p.veins * vein)[..., None]
    out += p.gloss * specular(normals, p.shininess)[..., None] * np.array(p.highlight, np.float32)
    return _to_uint8(out)


def _sketch(p: Preset, rgb, normals, width, weight):
    gray = _luminance(rgb)
    blurred = cv2.GaussianBlur(1.0 - gray, (0, 0), width / 30.0)
    dodge = np.clip(gray / np.maximum(1.0 - blurred, 1e-3), 0.0, 1.0) ** 2.0   # colour dodge: pencil lines
    shade = 0.8 + 0.2 * lambert(normals)
    return _to_uint8((dodge * shade)[..., None] * np.array(p.light, np.float32))


def _cartoon(p: Preset, rgb, normals, width, weight):
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


def _brush_strokes(lum: np.ndarray, length: int) -> np.ndarray:
    """Stroke texture in about [-0.5, 0.5]: fixed noise smeared along the isophotes (line integral convolution),
    so strokes follow the forms like a painter's brush."""
    h, w = lum.shape
    smooth = cv2.GaussianBlur(lum, (0, 0), 2.0)
    gx, gy = cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1)
    # Structure tensor: the dominant gradient direction, averaged so strokes flow smoothly.
    jxx, jyy, jxy = (cv2.GaussianBlur(a, (0, 0), 3.0) for a in (gx * gx, gy * gy, gx * gy))
    angle = 0.5 * np.arctan2(2 * jxy, jxx - jyy) + np.pi / 2             # along the edges, not across
    tx, ty = np.cos(angle), np.sin(angle)
    noise = cv2.resize(_BRUSH_NOISE, (w, h), interpolation=cv2.INTER_NEAREST) if (h, w) != _BRUSH_NOISE.shape \
        else _BRUSH_NOISE
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    total = noise.copy()
    for sign in (-1.0, 1.0):
        px, py = xs.copy(), ys.copy()
        for _ in range(length):
            px += sign * tx
            py += sign * ty
            total += cv2.remap(noise, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return total / (2 * length + 1) - 0.5


def _oil(p: Preset, rgb, normals, width, weight):
    """Oil paint: small-brush oil filter (no flat patches), richer pigment, strokes along the forms with impasto."""
    h, w = rgb.shape[:2]
    scale = min(1.0, OIL_FACE_WIDTH / width)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if scale < 1.0 else rgb
    paint = cv2.xphoto.oilPainting(small, 2, 1).astype(np.float32) / 255.0
    lum = paint.mean(2)
    strokes = _brush_strokes(lum, 5)
    paint = np.clip(lum[..., None] + 1.3 * (paint - lum[..., None]), 0, 1)   # richer pigment
    # Impasto: the strokes' ridges lit from the key light's side, plus a little of the form's light.
    relief = cv2.Sobel(strokes, cv2.CV_32F, 1, 1, ksize=3)
    shade = 0.92 + 3.0 * strokes * 0.12 - 0.6 * relief
    paint = np.clip(paint * shade[..., None], 0, 1)
    if scale < 1.0:
        paint = cv2.resize(paint, (w, h), interpolation=cv2.INTER_LINEAR)
    shading = 0.9 + 0.15 * lambert(normals)
    return _to_uint8(paint * shading[..., None] * np.array(p.light, np.float32))


_LOOKS = {"metal": _metal, "stone": _stone, "sketch": _sketch, "cartoon": _cartoon, "oil": _oil}

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("bronze statue", "metal", dark=(0.12, 0.06, 0.02), light=(0.85, 0.55, 0.28),
           highlight=(1.0, 0.85, 0.6), gloss=0.55, shininess=20.0),
    Preset("golden statue", "metal", dark=(0.25, 0.15, 0.0), light=(1.0, 0.82, 0.3),
           highlight=(1.0, 0.95, 0.75), gloss=0.7, shininess=28.0),
    Preset("silver statue", "metal", dark=(0.12, 0.13, 0.15), light=(0.85, 0.87, 0.9),
           highlight=(1.0, 1.0, 1.0), gloss=0.6, shininess=32.0),
    Preset("marble", "stone", dark=(0.3, 0.3, 0.31), light=(0.98, 0.97, 0.94),
           highlight=(1.0, 1.0, 1.0), gloss=0.12, shininess=12.0, veins=0.1),
    Preset("terracotta", "stone", dark=(0.22, 0.08, 0.04), light=(0.86, 0.5, 0.33),
           highlight=(1.0, 0.8, 0.7), gloss=0.04, shininess=8.0, veins=0.05),
    Preset("pencil sketch", "sketch", light=(0.97, 0.95, 0.9)),
    Preset("cartoon", "cartoon"),
    Preset("oil painting", "oil"),
)}
