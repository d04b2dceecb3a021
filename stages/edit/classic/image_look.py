"""An image prompt's look, given to a head: the prompt's palette and its texture.

When the prompt shows a face (MediaPipe's face landmarker and selfie segmenter find it), its skin and its hair
are measured apart, and the head's face takes the skin's palette, its hair the hair's — a 3D-cartoon boy's
peach skin and sandy hair, a bronze bust's browns and highlights. Each palette is the lightness distribution
(the head's lightness is quantile-matched to it, so its shading keeps the person's features) and the colour at
each lightness. The texture is the prompt's own fine detail (stone grain, brush marks; nothing for a smooth
render, which smooths the head instead), cut from its subject, made tileable and stuck to the face at the
prompt's scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stages.edit.classic import textures
from stages.edit.classic.shading import lambert
from stages.edit.classic.styles import Canvas

QUANTILES = np.linspace(0, 100, 33)
RAMP_BINS = 8
PROMPT_SIDE = 512                   # prompts are measured at most this big
CROP_FACE_WIDTH = 200.0             # cheek-to-cheek width of a face in the 512² aligned crop (texture units)
OWN_COLOUR = 0.35                   # share of the head's own colour variation kept (lips, eyes, cheeks)
MIN_PATCH = 8                       # prompt pixels: the smallest square of texture worth tiling
SMOOTH_GRAIN = (1.5, 3.0)           # prompt detail std (Lab L): at or below the first a clean render, above the second grain


@dataclass(frozen=True)
class PromptParts:
    """Where the prompt's face and hair are: boolean masks over the prompt, and its face width (pixels)."""

    skin: np.ndarray
    hair: np.ndarray
    face_width: float


@dataclass(frozen=True)
class Palette:
    """Lightness quantiles of one part of the prompt, and its mean colour (a, b) at each lightness band."""

    l_quantiles: np.ndarray         # (33,)
    ab_ramp: np.ndarray             # (RAMP_BINS, 2)

    @classmethod
    def from_pixels(cls, lab: np.ndarray) -> "Palette":
        l_quantiles = np.maximum.accumulate(np.percentile(lab[:, 0], QUANTILES)) + np.arange(len(QUANTILES)) * 1e-3
        edges = np.percentile(lab[:, 0], np.linspace(0, 100, RAMP_BINS + 1))
        bins = np.clip(np.searchsorted(edges, lab[:, 0], side="right") - 1, 0, RAMP_BINS - 1)
        mean = lab[:, 1:].mean(0)
        ramp = np.array([lab[bins == b, 1:].mean(0) if (bins == b).sum() >= 8 else mean for b in range(RAMP_BINS)],
                        np.float32)
        return cls(l_quantiles.astype(np.float32), ramp)

    def lightness(self, values: np.ndarray, source_quantiles: np.ndarray) -> np.ndarray:
        """`values` (Lab L) moved from the head's lightness distribution to this palette's."""
        return np.interp(values, source_quantiles, self.l_quantiles).astype(np.float32)

    def colour(self, lightness: np.ndarray) -> np.ndarray:
        """(…, 2) the palette's a, b at each lightness."""
        rank = np.interp(lightness, self.l_quantiles, QUANTILES) / 100.0 * RAMP_BINS - 0.5
        centres = np.arange(RAMP_BINS, dtype=np.float32)
        return np.dstack([np.interp(rank, centres, self.ab_ramp[:, c]) for c in (0, 1)]).astype(np.float32)


@dataclass(frozen=True)
class ImageLook:
    skin: Palette
    hair: Palette
    texture: np.ndarray             # (SIDE, SIDE) float32 tileable fine detail of the prompt, Lab L units
    smoothness: float               # 0 (grain, paint, stone) … 1 (a clean render): how much to smooth the head
    grain: float                    # std of the prompt's fine detail on its subject, Lab L units
    fine_detail = 0.5                # the picture's finest detail given back after painting at a working size

    @classmethod
    def from_image(cls, rgb: np.ndarray, parts: PromptParts | None = None) -> "ImageLook":
        scale = min(1.0, PROMPT_SIDE / max(rgb.shape[:2]))
        if scale < 1.0:                                              # statistics don't need megapixels
            rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            if parts is not None:
                size = (rgb.shape[1], rgb.shape[0])
                parts = PromptParts(cv2.resize(parts.skin.astype(np.uint8), size) > 0,
                                    cv2.resize(parts.hair.astype(np.uint8), size) > 0, parts.face_width * scale)
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
        subject = _subject(lab)
        skin = parts.skin if parts is not None and parts.skin.sum() >= 64 else subject
        hair = parts.hair if parts is not None and parts.hair.sum() >= 64 else skin
        face_width = parts.face_width if parts is not None else max(rgb.shape[:2]) / 3.0
        detail = _detail(lab[..., 0], face_width)
        grain = float(detail[skin].std())
        smoothness = float(np.clip((SMOOTH_GRAIN[1] - grain) / (SMOOTH_GRAIN[1] - SMOOTH_GRAIN[0]), 0.0, 1.0))
        return cls(Palette.from_pixels(lab[skin]), Palette.from_pixels(lab[hair]),
                   _tileable(detail, skin, CROP_FACE_WIDTH / face_width), smoothness, grain)

    def apply(self, canvas: Canvas) -> np.ndarray:
        rgb, weight = canvas.rgb, canvas.weight
        h, w = rgb.shape[:2]
        if self.smoothness > 0.05:                                   # a clean render: smooth skin, crisp features
            small = cv2.resize(rgb, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
            flat = cv2.resize(cv2.bilateralFilter(small, 7, 30, 5), (w, h), interpolation=cv2.INTER_LINEAR)
            rgb = cv2.addWeighted(flat, self.smoothness, rgb, 1.0 - self.smoothness, 0.0)
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
        hair = np.clip(canvas.hair, 0.0, 1.0)
        inner = weight > 0.5
        out_l = np.zeros((h, w), np.float32)
        out_ab = np.zeros((h, w, 2), np.float32)
        for palette, share in ((self.skin, 1.0 - hair), (self.hair, hair)):
            part = inner & (share > 0.5)
            pixels = lab[part] if part.sum() >= 32 else lab[inner] if inner.sum() >= 32 else lab.reshape(-1, 3)
            source = np.maximum.accumulate(np.percentile(pixels[:, 0], QUANTILES)) + np.arange(len(QUANTILES)) * 1e-3
            lightness = palette.lightness(lab[..., 0], source)
            own = lab[..., 1:] - pixels[:, 1:].mean(0)
            out_l += share * lightness
            out_ab += share[..., None] * (palette.colour(lightness) + OWN_COLOUR * own)
        light = lambert(canvas.normals)                              # a little of the proxy's 3D light
        out_l *= 0.85 + 0.3 * light
        grain = textures.sample(self.texture, canvas.uv)
        out_l += (1.0 - self.smoothness) * np.clip(grain, -2.5 * self.grain, 2.5 * self.grain)
        lab = np.dstack([out_l, out_ab])
        return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def _subject(lab: np.ndarray) -> np.ndarray:
    """A portrait's subject without a face found: the middle half of the image minus what looks like its
    backdrop (within 20 Lab units of the border's median colour)."""
    h, w = lab.shape[:2]
    middle = np.zeros((h, w), bool)
    middle[h // 4: max(h // 4 + 1, 3 * h // 4), w // 4: max(w // 4 + 1, 3 * w // 4)] = True
    border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    backdrop = np.linalg.norm(lab - np.median(border, 0), axis=2) <= 20.0
    kept = middle & ~backdrop
    return kept if kept.sum() >= 64 else middle


def _detail(lightness: np.ndarray, face_width: float) -> np.ndarray:
    """Fine detail of the prompt's lightness: what is finer than a fiftieth of its face."""
    return lightness - cv2.GaussianBlur(lightness, (0, 0), max(1.0, face_width / 50.0))


def _tileable(detail: np.ndarray, where: np.ndarray, scale: float) -> np.ndarray:
    """The detail of the largest square inside `where` (on a face: a cheek or the forehead, no features), at crop
    scale, mirrored into a tileable texture; no texture when `where` holds no square of a few pixels."""
    inside = cv2.distanceTransform(np.pad(where, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(inside)), inside.shape)
    half = int(inside[y, x] / np.sqrt(2.0))
    if half < MIN_PATCH // 2:
        return np.zeros((textures.SIDE, textures.SIDE), np.float32)
    patch = detail[y - half: y + half, x - half: x + half]
    patch = cv2.resize(patch, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    tile = np.vstack([np.hstack([patch, patch[:, ::-1]]), np.hstack([patch[::-1], patch[::-1, ::-1]])])
    # whole periods of the mirrored tile, resampled to the texture's side, wrap cleanly
    ty, tx = tile.shape
    whole = np.tile(tile, (max(1, textures.SIDE // ty), max(1, textures.SIDE // tx)))
    return cv2.resize(whole, (textures.SIDE, textures.SIDE), interpolation=cv2.INTER_LINEAR).astype(np.float32)
