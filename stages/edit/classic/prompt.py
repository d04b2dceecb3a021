"""Prompts → classic-engine Styles: preset names, free text (→ closest preset), images (→ colour transfer).

Text → preset: the text is split into words; every preset has phrases (its name and synonyms);
a phrase matches when each of its words is close to some word of the text (difflib ratio ≥ 0.8,
so "bronz" or "sculptur" still count); longer phrases win ties. Failing that, the whole text is
compared with every phrase. Below a similarity of 0.75 the text is rejected, listing the presets.
"""
from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import UserError
from stages.edit.classic.normals import lambert
from stages.edit.classic.styles import PRESETS, statue_tone
from stages.edit.engine import Style, adapter_path_in
from stages.source_image import image_path_in, load_rgb

NONE_WORDS = {"", "none", "off", "no style", "camera only"}
WORD_MATCH, ACCEPT = 0.8, 0.75

SYNONYMS: dict[str, tuple[str, ...]] = {
    "bronze statue": ("bronze", "copper", "brass", "bronze bust", "bronze sculpture", "metal statue"),
    "golden statue": ("gold", "golden", "gilded", "oscar", "gold statue"),
    "silver statue": ("silver", "chrome", "steel", "platinum", "tin man"),
    "marble": ("marble statue", "stone", "statue", "sculpture", "greek statue", "roman bust", "plaster",
               "white statue", "alabaster"),
    "terracotta": ("clay", "terracotta warrior", "ceramic", "pottery", "brick"),
    "pencil sketch": ("pencil", "sketch", "drawing", "charcoal", "graphite", "line art", "hand drawn"),
    "cartoon": ("cartoon", "toon", "anime", "comic", "manga", "pixar", "disney", "animated", "3d cartoon"),
    "oil painting": ("oil", "painting", "painted", "van gogh", "impressionist", "impasto", "portrait painting",
                     "canvas"),
}


def preset_names() -> str:
    return ", ".join(f'"{name}"' for name in PRESETS)


def closest_preset(text: str) -> str:
    """The preset a free-text prompt means; ValueError listing the presets when nothing is close. Everyday
    punctuation is ignored ("golden statue.", "Van Gogh’s Starry Night": a possessive 's is dropped)."""
    words = re.findall(r"[^\W_]+", re.sub(r"['’]s\b", "", text.lower()))
    if not words:
        raise ValueError(f"style text has no words: text picks among {preset_names()} and \"none\"")
    best, best_score = None, 0.0
    for name in PRESETS:
        for phrase in (name, *SYNONYMS.get(name, ())):
            score = _phrase_score(phrase.split(), words)
            if score > best_score:
                best, best_score = name, score
    if best is None or best_score < ACCEPT:
        raise ValueError(f"no style is close to {text!r}: text picks among {preset_names()} and \"none\"")
    return best


def _phrase_score(phrase: list[str], words: list[str]) -> float:
    ratios = [max(difflib.SequenceMatcher(None, p, w).ratio() for w in words) for p in phrase]
    if min(ratios) >= WORD_MATCH:
        return sum(ratios) / len(ratios) + 0.05 * len(phrase)       # longer phrases are more specific
    return difflib.SequenceMatcher(None, " ".join(phrase), " ".join(words)).ratio()


@dataclass(frozen=True)
class ColourTransfer:
    """An image prompt's look, given to a head: its lightness distribution (quantile matching), its colour at
    each lightness (a ramp of Lab a/b over L), its smoothness (a smooth 3D render smooths the skin) and its
    grain (the std of its high-pass luminance, given to the head as fixed noise at the prompt's scale).
    A textured prompt (a statue, a sculpture, a painting) is a material: the head is carved from it (light on
    the proxy's normals plus the face's features, styles.statue_tone) instead of keeping the photo's shading."""

    l_quantiles: np.ndarray         # (33,) lightness quantiles 0..100 % of the prompt's subject
    ab_ramp: np.ndarray             # (RAMP_BINS, 2) mean a, b of the subject at each lightness quantile bin
    ab_mean: np.ndarray             # (2,)
    smoothness: float               # 0 (photo-like grain) … 1 (clean render): how much to smooth the head first
    grain: float                    # std of the prompt's high-pass lightness, Lab L units (0..255)
    grain_size: float               # its grain size relative to a face width

    @classmethod
    def from_image(cls, rgb: np.ndarray) -> "ColourTransfer":
        scale = PROMPT_SIDE / max(rgb.shape[:2])
        if scale < 1.0:                                              # statistics don't need megapixels
            rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
        subject = _subject_pixels(lab)
        l_quantiles = np.percentile(subject[:, 0], QUANTILES)
        edges = np.percentile(subject[:, 0], np.linspace(0, 100, RAMP_BINS + 1))
        bins = np.clip(np.searchsorted(edges, subject[:, 0], side="right") - 1, 0, RAMP_BINS - 1)
        ab_mean = subject[:, 1:].mean(0)
        ramp = np.array([subject[bins == b, 1:].mean(0) if (bins == b).sum() >= 8 else ab_mean
                         for b in range(RAMP_BINS)], np.float32)
        h, w = lab.shape[:2]
        lum = lab[..., 0]
        high_pass = (lum - cv2.GaussianBlur(lum, (0, 0), 1.5))[h // 4: h // 4 + max(1, h // 2), w // 4: w // 4 + max(1, w // 2)]
        grain = float(high_pass.std())
        smoothness = float(np.clip((SMOOTH_GRAIN[1] - grain / 255.0) / (SMOOTH_GRAIN[1] - SMOOTH_GRAIN[0]), 0.0, 1.0))
        # A portrait prompt's face is about a third of its longer side; its grain is ≈ 1.5 pixels.
        return cls(l_quantiles, ramp, ab_mean, smoothness, grain, grain_size=1.5 / (max(h, w) / 3.0))

    def apply(self, rgb: np.ndarray, normals: np.ndarray, face_width: float, weight: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        if self.smoothness > 0.05:                                   # a clean render: smooth skin, crisp features
            small = cv2.resize(rgb, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
            flat = cv2.resize(cv2.bilateralFilter(small, 7, 30, 5), (w, h), interpolation=cv2.INTER_LINEAR)
            rgb = cv2.addWeighted(flat, self.smoothness, rgb, 1.0 - self.smoothness, 0.0)
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
        head = _head_pixels(lab, weight)
        material = 1.0 - self.smoothness
        if material > 0.05:                                          # carve the head from the prompt's material
            carved = 255.0 * statue_tone(rgb, normals, face_width, weight, ambient=0.25, fine_gain=0.4)
            lab[..., 0] = material * carved + (1.0 - material) * lab[..., 0]
            head = _head_pixels(lab, weight)
        src_q = np.maximum.accumulate(np.percentile(head[:, 0], QUANTILES)) + np.arange(33) * 1e-3
        lightness = np.interp(lab[..., 0], src_q, self.l_quantiles)
        light = lambert(normals)                                  # keep the 3D light of the proxy, mean 1 on the head
        lightness *= 1.0 + 0.3 * (light - light[weight > 0.5].mean() if (weight > 0.5).any() else 0.0)
        lightness += self._grain((h, w), face_width) * material
        # Colour: the prompt's colour at the new lightness, plus a share of the face's own variation
        # (lips, eyes, cheeks) so the person stays recognisable.
        rank = np.interp(lightness, self.l_quantiles, QUANTILES) / 100.0 * RAMP_BINS - 0.5
        centres = np.arange(RAMP_BINS, dtype=np.float32)
        own = lab[..., 1:] - head[:, 1:].mean(0)
        for c in (0, 1):
            lab[..., 1 + c] = np.interp(rank, centres, self.ab_ramp[:, c]) + OWN_COLOUR * own[..., c]
        inner = weight > 0.5                         # the head's overall colour: (nearly) the prompt subject's
        if inner.any():
            lab[..., 1:] += MEAN_PULL * (self.ab_mean - lab[..., 1:][inner].mean(0))
        lab[..., 1:] = self.ab_mean + COLOUR_SPREAD * (lab[..., 1:] - self.ab_mean)   # face and hair alike
        lab[..., 0] = lightness
        return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)

    def _grain(self, shape: tuple[int, int], face_width: float) -> np.ndarray:
        """Fixed noise over a region of `shape` with the prompt's grain std and size (relative to the face)."""
        h, w = shape
        cell = max(1.0, self.grain_size * face_width)
        tile = cv2.resize(_NOISE, None, fx=cell, fy=cell, interpolation=cv2.INTER_LINEAR)
        reps = (h // tile.shape[0] + 1, w // tile.shape[1] + 1)
        return np.tile(tile, reps)[:h, :w] * self.grain


QUANTILES = np.linspace(0, 100, 33)
RAMP_BINS = 8
PROMPT_SIDE = 512                   # prompts are measured at most this big
_NOISE = np.random.default_rng(11).standard_normal((96, 96)).astype(np.float32)   # unit-std grain, tiled
SMOOTH_GRAIN = (0.036, 0.048)       # prompt high-pass std: at or below the first, fully smooth; above the second, grain
OWN_COLOUR = 0.5
MEAN_PULL = 0.7
COLOUR_SPREAD = 0.6


def _subject_pixels(lab: np.ndarray) -> np.ndarray:
    """Lab pixels of a portrait's subject: the middle half of the image, minus what looks like its backdrop."""
    h, w = lab.shape[:2]
    centre = lab[h // 4: max(h // 4 + 1, 3 * h // 4), w // 4: max(w // 4 + 1, 3 * w // 4)].reshape(-1, 3)
    return _without_backdrop(centre, lab)


def _head_pixels(lab: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Lab pixels of the head in a region around it: well inside the head weight, minus the backdrop."""
    lab, weight = lab[::2, ::2], weight[::2, ::2]                 # statistics: every 4th pixel is plenty
    head = lab[weight > 0.5]
    return _without_backdrop(head, lab) if len(head) >= 16 else lab.reshape(-1, 3)


def _without_backdrop(pixels: np.ndarray, image: np.ndarray) -> np.ndarray:
    """`pixels` that differ from the median colour of `image`'s border (the backdrop) by more than 20 Lab units."""
    backdrop = np.median(np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]]), 0)
    kept = pixels[np.linalg.norm(pixels - backdrop, axis=1) > 20.0]
    return kept if len(kept) >= 16 else pixels


def resolve_prompt(prompt: str | np.ndarray | Path | None) -> Style:
    """A Style for any accepted prompt (see module docstring); ValueError for anything else."""
    if isinstance(prompt, np.ndarray):
        return _image_style(prompt, "image array")
    if prompt is None:
        return Style(key="none", kind="none", label="none")
    if isinstance(prompt, Path):
        return _image_style(_read_image(prompt), prompt.name)
    if not isinstance(prompt, str):
        raise ValueError(f"style must be text, an image path or an RGB array, not {type(prompt).__name__}")
    text = prompt.strip()
    if text.lower() in NONE_WORDS:
        return Style(key="none", kind="none", label="none")
    if adapter_path_in(text) is not None:
        raise ValueError("adapters (live3dpe adapt) are styles of the 3dpe engine: use --engine 3dpe with the "
                         "weights the adapter was made for")
    path = image_path_in(text)
    if path is not None:
        return _image_style(_read_image(path), path.name)
    name = text.lower() if text.lower() in PRESETS else closest_preset(text)
    kind = "preset" if name == text.lower() else "text"
    return Style(key=f"preset:{name}", kind=kind, label=name if kind == "preset" else f"{text} → {name}",
                 data=PRESETS[name])


def _read_image(path: Path) -> np.ndarray:
    try:
        return load_rgb(path)
    except UserError:
        raise ValueError(f"style image not found or unreadable: {path}") from None


def _image_style(rgb: np.ndarray, label: str) -> Style:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 4:
        raise ValueError("an image style must be an RGB uint8 array of shape (H, W, 3), at least 4×4")
    digest = hashlib.sha1(np.ascontiguousarray(rgb).tobytes()).hexdigest()[:16]
    return Style(key=f"image:{digest}", kind="image", label=f"image {label}", data=ColourTransfer.from_image(rgb))
