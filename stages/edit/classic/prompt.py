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

from stages.edit.classic.normals import lambert
from stages.edit.classic.styles import PRESETS
from stages.edit.engine import Style

NONE_WORDS = {"", "none", "off", "no style", "camera only"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
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
    """The preset a free-text prompt means; ValueError listing the presets when nothing is close."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    if not words:
        raise ValueError(f"empty style text; use one of {preset_names()}, an image path, or \"none\"")
    best, best_score = None, 0.0
    for name in PRESETS:
        for phrase in (name, *SYNONYMS.get(name, ())):
            score = _phrase_score(phrase.split(), words)
            if score > best_score:
                best, best_score = name, score
    if best is None or best_score < ACCEPT:
        raise ValueError(f"unknown style {text!r}: use one of {preset_names()}, an image path, or \"none\"")
    return best


def _phrase_score(phrase: list[str], words: list[str]) -> float:
    ratios = [max(difflib.SequenceMatcher(None, p, w).ratio() for w in words) for p in phrase]
    if min(ratios) >= WORD_MATCH:
        return sum(ratios) / len(ratios) + 0.05 * len(phrase)       # longer phrases are more specific
    return difflib.SequenceMatcher(None, " ".join(phrase), " ".join(words)).ratio()


@dataclass(frozen=True)
class ColourTransfer:
    """An image prompt's tone: Lab statistics of its subject, given to a head by quantile and mean/std matching."""

    l_quantiles: np.ndarray         # (33,) lightness quantiles 0..100 %
    ab_mean: np.ndarray             # (2,)
    ab_std: np.ndarray              # (2,)

    @classmethod
    def from_image(cls, rgb: np.ndarray) -> "ColourTransfer":
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
        subject = _subject_pixels(lab)
        return cls(np.percentile(subject[:, 0], QUANTILES), subject[:, 1:].mean(0), subject[:, 1:].std(0) + 1e-3)

    def apply(self, rgb: np.ndarray, normals: np.ndarray, face_width: float, weight: np.ndarray) -> np.ndarray:
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
        head = _head_pixels(lab, weight)
        src_q = np.maximum.accumulate(np.percentile(head[:, 0], QUANTILES)) + np.arange(33) * 1e-3
        lab[..., 0] = np.interp(lab[..., 0], src_q, self.l_quantiles)
        light = lambert(normals)                                  # keep the 3D light of the proxy, mean 1 on the head
        lab[..., 0] *= 1.0 + 0.3 * (light - light[weight > 0.5].mean() if (weight > 0.5).any() else 0.0)
        # Bounded gain: a near-grey head must not blow the prompt's colour spread up into false colours.
        gain = np.clip(self.ab_std / (head[:, 1:].std(0) + 1e-3), 0.5, 2.0)
        lab[..., 1:] = (lab[..., 1:] - head[:, 1:].mean(0)) * gain + self.ab_mean
        return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


QUANTILES = np.linspace(0, 100, 33)


def _subject_pixels(lab: np.ndarray) -> np.ndarray:
    """Lab pixels of a portrait's subject: the middle half of the image, minus what looks like its backdrop."""
    h, w = lab.shape[:2]
    centre = lab[h // 4: max(h // 4 + 1, 3 * h // 4), w // 4: max(w // 4 + 1, 3 * w // 4)].reshape(-1, 3)
    return _without_backdrop(centre, lab)


def _head_pixels(lab: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Lab pixels of the head in a region around it: well inside the head weight, minus the backdrop."""
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
    if text.lower().startswith("image:") or Path(text).suffix.lower() in IMAGE_SUFFIXES:
        path = Path(text[6:].strip() if text.lower().startswith("image:") else text).expanduser()
        return _image_style(_read_image(path), path.name)
    name = text.lower() if text.lower() in PRESETS else closest_preset(text)
    kind = "preset" if name == text.lower() else "text"
    return Style(key=f"preset:{name}", kind=kind, label=name if kind == "preset" else f"{text} → {name}",
                 data=PRESETS[name])


def _read_image(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    if bgr is None:
        raise ValueError(f"style image not found or unreadable: {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _image_style(rgb: np.ndarray, label: str) -> Style:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 4:
        raise ValueError("an image style must be an RGB uint8 array of shape (H, W, 3), at least 4×4")
    digest = hashlib.sha1(np.ascontiguousarray(rgb).tobytes()).hexdigest()[:16]
    return Style(key=f"image:{digest}", kind="image", label=f"image {label}", data=ColourTransfer.from_image(rgb))
