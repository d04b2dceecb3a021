"""The named style presets for video calls and how each one repaints the head in the virtual view.

Sculpted looks (metals, stone) are lit, not tinted: the depth proxy's normals, bent by the picture's own detail
(features, locks of hair) into a carved relief, are shaded by a fixed studio — diffuse light, ambient occlusion
in the cavities, and for metals the reflection of a soft box — so the light stays put while the head turns.
Painterly looks use well-known non-photorealistic filters (stages/edit/classic/npr.py). Marks that a material or
a medium adds (veins, grain, hatching, bristles) are textures stuck to the face (textures.py): the same face in
the next frame gets the same marks.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stages.edit.classic import npr, textures
from stages.edit.classic.shading import KEY_LIGHT, band_pass, cavities, facing, lambert, relief, specular, studio


@dataclass
class Canvas:
    """What a look paints on: the head's box in the frame, and what is known about each pixel there."""

    rgb: np.ndarray                 # (h, w, 3) uint8
    lum: np.ndarray                 # (h, w) float32 in [0, 1]: its lightness (grey)
    weight: np.ndarray              # (h, w) float32 in [0, 1]: the head (face, hair, ears, neck)
    hair: np.ndarray                # (h, w) float32: the part of the head that is not skin (the hair)
    normals: np.ndarray             # (h, w, 3) the depth proxy's unit normals
    uv: np.ndarray                  # (h, w, 2) float32 aligned-crop coordinates of each pixel's point on the head
    face_width: float               # pixels
    detail: float                   # the head's detail contrast (std of band-passed lightness), smoothed over frames
    tone_range: tuple[float, float] = (0.0, 1.0)  # the head's lightness range (low, high), smoothed over frames


@dataclass(frozen=True)
class Preset:
    """A named look: `look` picks the painter; colours are RGB in [0, 1]."""

    name: str
    look: str                       # "metal", "stone", "sketch", "cartoon", "oil"
    dark: tuple[float, float, float] = (0.0, 0.0, 0.0)
    light: tuple[float, float, float] = (1.0, 1.0, 1.0)
    highlight: tuple[float, float, float] = (1.0, 1.0, 1.0)
    gloss: float = 0.0              # specular highlight strength
    shininess: float = 16.0
    reflect: float = 0.0            # metals: share of the colour that is the studio's reflection
    veins: float = 0.0              # stone: how dark its veins are
    grain: float = 0.0              # stone: surface grain (clay pores), relief units

    def apply(self, canvas: Canvas) -> np.ndarray:
        """The head's box repainted (h, w, 3 uint8); the caller blends it in by `canvas.weight`."""
        return _LOOKS[self.look](self, canvas)

    @property
    def fine_detail(self) -> float:
        """How much of the picture's finest detail to give back when the head was painted at a smaller size:
        a carved surface keeps it (pores, strands), drawn and painted looks are made of their own marks."""
        return 0.6 if self.look in ("metal", "stone") else 0.0

    @property
    def working_face_width(self) -> float | None:
        """The face width the look is painted at when the face is bigger (None: the engine's): brush marks need
        more pixels than carved and drawn looks."""
        return 90.0 if self.look == "oil" else None


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def carved_height(c: Canvas, lum: np.ndarray, face_scale: tuple[float, float] = (150.0, 14.0),
                  hair_scale: tuple[float, float] = (110.0, 30.0)) -> np.ndarray:
    """A relief from the picture: the face's features at face scale, the hair's locks at a finer one, in units
    of the head's (temporally smoothed) detail contrast; dark is deep."""
    w = c.face_width
    face = band_pass(lum, w / face_scale[0], w / face_scale[1])
    hair = band_pass(lum, w / hair_scale[0], w / hair_scale[1])
    height = (1.0 - c.hair) * face + c.hair * 1.3 * hair
    return np.clip(height / max(c.detail, 1e-3), -3.0, 3.0)


def smoothed_lightness(c: Canvas) -> np.ndarray:
    """The head's lightness without the camera's noise, edges kept (a guided filter): cast metal and carved
    stone are smooth, and noise amplified into relief and highlights would shimmer from frame to frame."""
    radius = max(2, round(c.face_width / 50.0))
    return cv2.ximgproc.guidedFilter(c.lum, c.lum, radius, 2e-3)


@dataclass
class Sculpture:
    """The head as a carved surface: normals with the fine relief (diffuse light), normals with only the broad
    forms (highlights and reflections, which fine relief would make sparkle), ambient occlusion, and the
    picture's smoothed lightness."""

    normals: np.ndarray
    broad: np.ndarray
    occlusion: np.ndarray
    lum: np.ndarray


def sculpt(c: Canvas, depth_gain: float) -> Sculpture:
    lum = smoothed_lightness(c)
    gain = depth_gain * c.face_width / 60.0
    normals = relief(c.normals, carved_height(c, lum), gain)
    broad = relief(c.normals, carved_height(c, lum, face_scale=(40.0, 10.0), hair_scale=(40.0, 12.0)), gain)
    occlusion = 1.0 - 0.65 * cavities(lum, c.face_width / 14.0, c.detail)
    return Sculpture(normals, broad, occlusion, lum)


def _metal(p: Preset, c: Canvas) -> np.ndarray:
    """Cast metal: the person's own light and shade (their features, so they stay recognisable from every side)
    in the metal's colours, lit again by the studio — the carved relief's diffuse light and occlusion, and the
    reflection of the soft box with its highlights."""
    s = sculpt(c, depth_gain=0.35)
    dark, light, high = (np.array(v, np.float32) for v in (p.dark, p.light, p.highlight))
    tone = PICTURE_SHARE * _own_tone(s.lum, c) + (1.0 - PICTURE_SHARE) * lambert(s.normals)
    body = dark + (light - dark) * tone[..., None]
    # Schlick's Fresnel for a metal: its own colour head-on, white at grazing angles
    grazing = (1.0 - facing(s.broad))[..., None] ** 5
    mirror = (light + (1.0 - light) * grazing) * studio(s.broad)[..., None]
    shine = p.gloss * specular(s.broad, p.shininess)[..., None] * high
    patina = 1.0 - 0.1 * textures.sample(textures.turbulence(5), c.uv)[..., None]   # uneven casting
    colour = ((1.0 - p.reflect) * body + p.reflect * mirror * (0.5 + tone[..., None])) * patina
    return _to_uint8((colour + shine) * s.occlusion[..., None])


PICTURE_SHARE = 0.55                # share of a statue's tone that is the person's own light and shade


def _own_tone(lum: np.ndarray, c: Canvas) -> np.ndarray:
    """The picture's lightness on the head, normalised to [0, 1] by its range (dim and bright video alike)."""
    lo, hi = c.tone_range
    return np.clip((lum - lo) / (hi - lo), 0.0, 1.0)


def _stone(p: Preset, c: Canvas) -> np.ndarray:
    """Matte stone: the person's own light and shade with soft light wrapping round the form (a little subsurface),
    carved features, veins or grain."""
    s = sculpt(c, depth_gain=0.25)
    normals = s.normals
    if p.grain:
        normals = relief(normals, p.grain * textures.sample(textures.noise(9, 2.0), c.uv), gain=1.0)
    wrap = np.clip((normals @ KEY_LIGHT.astype(np.float32) + 0.35) / 1.35, 0.0, 1.0)
    tone = (0.3 + 0.7 * (PICTURE_SHARE * _own_tone(s.lum, c) + (1.0 - PICTURE_SHARE) * wrap)) * s.occlusion
    dark, light, high = (np.array(v, np.float32) for v in (p.dark, p.light, p.highlight))
    colour = dark + (light - dark) * tone[..., None]
    if p.veins:
        colour *= (1.0 - p.veins * textures.sample(textures.veins(), c.uv))[..., None]
    colour += p.gloss * specular(s.broad, p.shininess)[..., None] * high
    return _to_uint8(colour)


def _sketch(p: Preset, c: Canvas) -> np.ndarray:
    """Graphite on paper (after Lu et al.'s pencil drawing): XDoG contours over a lightened tone drawn with pencil
    strokes — noise stuck to the face, smeared along the forms' flow — that darken only where the picture is dark."""
    lum = c.lum
    w = c.face_width
    lines = npr.xdog(lum, sigma=max(0.7, w / 150.0), sharpness=30.0, threshold=-0.1)
    tone = cv2.GaussianBlur(lum, (0, 0), max(1.0, w / 80.0))
    tone = np.clip(tone * (0.85 + 0.3 * lambert(c.normals)), 0.0, 1.0) ** 0.6      # a drawing is lighter
    tangent = npr.flow(tone, max(2.0, w / 30.0))
    grain = npr.smear(textures.sample(textures.noise(21, 1.2), c.uv), tangent, max(3, round(w / 25.0)))
    strokes = np.clip(0.5 + 1.6 * grain, 0.0, 1.0)                      # 1 = bare paper between strokes
    pencil = 1.0 - (1.0 - tone) * (1.12 - 0.24 * strokes)
    paper = 0.97 + 0.03 * textures.sample(textures.noise(23, 1.0), c.uv)
    graphite = np.minimum(lines, np.clip(pencil, 0.0, 1.0)) * paper
    return _to_uint8(graphite[..., None] * np.array(p.light, np.float32))


def smoothstep_np(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _cartoon(p: Preset, c: Canvas) -> np.ndarray:
    """Cel look (Winnemöller's video abstraction): edge-aware flattening at low resolution, a few soft lightness
    bands, saturated colours, bold soft outlines."""
    h, w = c.rgb.shape[:2]
    scale = max(1, round(c.face_width / 45.0))
    small = cv2.resize(c.rgb, (max(1, w // scale), max(1, h // scale)), interpolation=cv2.INTER_AREA)
    for _ in range(4):
        small = cv2.bilateralFilter(small, 5, 40, 3)
    flat = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    lab = cv2.cvtColor(flat, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] = 255.0 * npr.soft_quantize(lab[..., 0] / 255.0, 4, sharpness=4.0)
    lab[..., 1:] = 128.0 + 1.6 * (lab[..., 1:] - 128.0)                       # cartoon colours are saturated
    colour = cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB).astype(np.float32) / 255.0
    lines = npr.xdog(cv2.GaussianBlur(c.lum, (0, 0), max(0.5, c.face_width / 150.0)),
                     sigma=max(0.9, c.face_width / 60.0), sharpness=60.0, threshold=-0.1)
    return _to_uint8(colour * (0.05 + 0.95 * lines)[..., None])


OIL_FACE_WIDTH = 140.0              # the oil look paints at this face width (bigger faces: scaled down and back)


def _oil(p: Preset, c: Canvas) -> np.ndarray:
    """Oil paint: a smooth Kuwahara filter for the paint, a little richer pigment, and brush marks along the forms
    (stuck to the face, so they stay put from frame to frame)."""
    h, w = c.rgb.shape[:2]
    scale = min(1.0, OIL_FACE_WIDTH / max(c.face_width, 1.0))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    rgb = cv2.resize(c.rgb, size, interpolation=cv2.INTER_AREA) if scale < 1.0 else c.rgb
    uv = cv2.resize(c.uv, size, interpolation=cv2.INTER_LINEAR) if scale < 1.0 else c.uv
    width = c.face_width * scale
    paint = npr.kuwahara(rgb.astype(np.float32) / 255.0, max(2, round(width / 22.0)))
    lum = paint.mean(axis=2)
    paint = np.clip(lum[..., None] + 1.45 * (paint - lum[..., None]), 0.0, 1.0)
    # Brush marks: sparse dabs stuck to the face, dragged along the forms into short strokes; each lightens or
    # darkens the paint a little and its ridge catches the key light (a gentle impasto).
    tangent = npr.flow(lum, max(2.0, width / 25.0))
    length = max(3, round(width / 12.0))
    dabs = np.clip(textures.sample(textures.noise(31, 1.2), uv) - 1.0, 0.0, 1.0)
    marks = npr.smear(dabs, tangent, length) * (2 * length + 1) / length
    tint = npr.smear(textures.sample(textures.noise(37, 1.2), uv), tangent, length)
    emboss = cv2.Sobel(marks, cv2.CV_32F, 1, 1, ksize=3)
    paint = np.clip(paint * (1.0 + 0.12 * tint + 0.22 * marks - 0.3 * emboss)[..., None], 0.0, 1.0)
    if scale < 1.0:
        paint = cv2.resize(paint, (w, h), interpolation=cv2.INTER_LINEAR)
    return _to_uint8(paint * np.array(p.light, np.float32))


_LOOKS = {"metal": _metal, "stone": _stone, "sketch": _sketch, "cartoon": _cartoon, "oil": _oil}

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("bronze statue", "metal", dark=(0.10, 0.05, 0.02), light=(0.72, 0.45, 0.22),
           highlight=(1.0, 0.82, 0.55), gloss=0.45, shininess=18.0, reflect=0.45),
    Preset("golden statue", "metal", dark=(0.30, 0.19, 0.03), light=(1.0, 0.80, 0.32),
           highlight=(1.0, 0.95, 0.7), gloss=0.35, shininess=18.0, reflect=0.4),
    Preset("silver statue", "metal", dark=(0.16, 0.17, 0.19), light=(0.80, 0.82, 0.86),
           highlight=(1.0, 1.0, 1.0), gloss=0.35, shininess=18.0, reflect=0.5),
    Preset("marble", "stone", dark=(0.38, 0.37, 0.36), light=(0.97, 0.96, 0.93),
           highlight=(1.0, 1.0, 1.0), gloss=0.05, shininess=12.0, veins=0.1),
    Preset("terracotta", "stone", dark=(0.25, 0.09, 0.04), light=(0.84, 0.48, 0.30),
           highlight=(1.0, 0.8, 0.7), gloss=0.03, shininess=8.0, grain=0.35),
    Preset("pencil sketch", "sketch", light=(0.97, 0.95, 0.9)),
    Preset("cartoon", "cartoon"),
    Preset("oil painting", "oil"),
)}
