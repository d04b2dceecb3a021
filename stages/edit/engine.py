"""The engine interface every editing engine implements; stages hold an engine and do not care which.

    style = engine.prepare(prompt)            # once per style (cached by the engine)
    scene = engine.encode(face, frame, style) # per frame (or less often: the render stage re-uses scenes)
    out   = engine.render(scene, camera)      # per frame, at the (virtual) camera: a RenderResult
    engine.close()                            # optional: release models (the edit stage calls it when it closes)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pipeline.packets import FaceObservation, RenderResult

ADAPTER_PREFIX = "adapter:"         # "adapter:<file.safetensors>": a style taught to 3dpe by `live3dpe adapt`


def adapter_path_in(text: str) -> Path | None:
    """The adapter file a style text names ("adapter:<path>"), else None."""
    text = text.strip()
    if not text.lower().startswith(ADAPTER_PREFIX):
        return None
    return Path(text[len(ADAPTER_PREFIX):].strip()).expanduser()


@dataclass(frozen=True)
class Style:
    """A prepared style: what `prepare` made of a prompt, ready to apply every frame."""

    key: str                        # cache key, e.g. "preset:bronze statue", "image:<sha1>", "none"
    kind: str                       # "none", "preset", "image", "text", "adapter"
    label: str                      # human-readable, shown in the UI / stats
    data: Any = field(default=None, compare=False)  # engine-specific (parameters, prompt embedding, ...)


class Engine(Protocol):
    """Optional class flags, read with getattr: `decoupled = True` (encode in a background worker when live),
    `takes_text = False` (prepare reads any text as an image file name: never give it text from the network)."""

    name: str
    device: str                     # "cpu", "cuda:0", ...

    def prepare(self, prompt: str | np.ndarray | None) -> Style:
        """Turn a prompt (preset name, text, image path, "adapter:<file>", RGB array, None/"none") into a Style.

        Raises ValueError with a message listing what is accepted when the prompt is unknown.
        """

    def encode(self, face: FaceObservation, frame: np.ndarray, style: Style) -> Any:
        """Build the scene of one face in one frame (a triplane, a depth proxy, ...). Several faces of a frame
        are encoded one by one; an engine with temporal state keeps it per `face.track`."""

    def render(self, scene: Any, camera: np.ndarray) -> RenderResult:
        """Draw the scene from `camera` (a 25-number EG3D label)."""
