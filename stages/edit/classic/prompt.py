"""Prompts → classic-engine Styles: preset names, free text (→ closest preset), images (→ their palette and texture).

Text → preset: the text is split into words; every preset has phrases (its name and synonyms);
a phrase matches when each of its words is close to some word of the text (difflib ratio ≥ 0.8,
so "bronz" or "sculptur" still count); longer phrases win ties. Failing that, the whole text is
compared with every phrase. Below a similarity of 0.75 the text is rejected, listing the presets.
"""
from __future__ import annotations

import difflib
import hashlib
import re
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.errors import UserError
from stages.edit.classic.image_look import ImageLook, PromptParts
from stages.edit.classic.styles import PRESETS
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


PartsFinder = Callable[[np.ndarray], "PromptParts | None"]


def resolve_prompt(prompt: str | np.ndarray | Path | None, find_parts: PartsFinder | None = None) -> Style:
    """A Style for any accepted prompt (see module docstring); ValueError for anything else. `find_parts` finds
    the face and hair in an image prompt (None: the prompt's middle is measured as a whole)."""
    if isinstance(prompt, np.ndarray):
        return _image_style(prompt, "image array", find_parts)
    if prompt is None:
        return Style(key="none", kind="none", label="none")
    if isinstance(prompt, Path):
        return _image_style(_read_image(prompt), prompt.name, find_parts)
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
        return _image_style(_read_image(path), path.name, find_parts)
    name = text.lower() if text.lower() in PRESETS else closest_preset(text)
    kind = "preset" if name == text.lower() else "text"
    return Style(key=f"preset:{name}", kind=kind, label=name if kind == "preset" else f"{text} → {name}",
                 data=PRESETS[name])


def _read_image(path: Path) -> np.ndarray:
    try:
        return load_rgb(path)
    except UserError:
        raise ValueError(f"style image not found or unreadable: {path}") from None


def _image_style(rgb: np.ndarray, label: str, find_parts: PartsFinder | None) -> Style:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 4:
        raise ValueError("an image style must be an RGB uint8 array of shape (H, W, 3), at least 4×4")
    digest = hashlib.sha1(np.ascontiguousarray(rgb).tobytes()).hexdigest()[:16]
    parts = find_parts(rgb) if find_parts is not None and min(rgb.shape[:2]) >= 16 else None
    return Style(key=f"image:{digest}", kind="image", label=f"image {label}", data=ImageLook.from_image(rgb, parts))
