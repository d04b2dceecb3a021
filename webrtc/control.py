"""The data-channel protocol: JSON control messages from the page, stats and style status back.

Page → server:  {"type": "set", "style": "marble", "yaw": 15, "mode": "paste", ...}
                {"type": "set", "prompt": "<id from POST /prompt>"}   (an uploaded image as the style)
                {"type": "set", "engine": {"smoothing": false, "triplane_ema": 0.3}}   (see engine_options)
Server → page:  {"type": "hello", "settings": {...}, "presets": [...], "engine": ..., "device": ...,
                 "engine_options": {"smoothing": true, "triplane_ema": 0.6}}   (only the supported ones)
                {"type": "stats", "fps_in": ..., "fps_out": ..., "latency_ms": {...}, "health": ...}
                {"type": "style", "status": "loading" | "ready" | "error", "style": ..., "message": ...}
                {"type": "error", "message": ...}
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import COMPOSITE_MODES, FACE_LOST_POLICIES
from webrtc.engine_options import EngineOptionError, EngineOptions
from webrtc.prompts import is_prompt_id

# Setting name → (lower, upper), values clamped into it; the page can change exactly these while streaming.
NUMERIC_SETTINGS = {
    "yaw": (-90.0, 90.0), "pitch": (-60.0, 60.0), "roll": (-90.0, 90.0), "zoom": (0.25, 4.0),
    "hold_seconds": (0.0, 10.0), "fade_seconds": (0.0, 10.0),
}
BOOL_SETTINGS = ("look_at_lens", "enabled")
CHOICE_SETTINGS = {"mode": COMPOSITE_MODES, "on_face_lost": FACE_LOST_POLICIES}
MAX_STYLE_TEXT = 200
# A style from the page is a preset name or a description. Engines read "image:<path>" and file names
# as images on the server's disk, so no path characters (. / \ : ~) may come in over the network;
# images come in through POST /prompt.
STYLE_TEXT = re.compile(r"[\w \-',!?&()+]+")

HEALTH_STATES = ("online", "degraded input", "degraded inference", "offline")


class ControlError(ValueError):
    """A control message the server cannot apply; the message is sent back to the page."""


@dataclass
class ControlRequest:
    """A parsed "set" message: plain setting changes, engine options, plus a style or an uploaded prompt id
    to prepare first."""

    changes: dict[str, Any] = field(default_factory=dict)
    style: str | None = None
    prompt_id: str | None = None
    engine: EngineOptions | None = None


def parse_message(text: str | bytes) -> ControlRequest:
    """Validate one data-channel message; raise ControlError saying what is wrong."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as exc:         # UnicodeDecodeError is a ValueError
        raise ControlError(f"control message is not JSON: {exc}") from None
    if not isinstance(message, dict) or message.get("type") != "set":
        raise ControlError('control message must be a JSON object with "type": "set"')
    request = ControlRequest()
    for key, value in message.items():
        if key == "type":
            continue
        if key == "style":
            if not isinstance(value, str) or not value.strip() or len(value) > MAX_STYLE_TEXT:
                raise ControlError(f"style must be a non-empty string of at most {MAX_STYLE_TEXT} characters")
            if not STYLE_TEXT.fullmatch(value):
                raise ControlError("style must be a preset name or a description in words (letters, digits, "
                                   "spaces, - ' , ! ? & ( ) +); upload an image to use it as the style")
            request.style = value.strip()
        elif key == "prompt":
            if not is_prompt_id(value):
                raise ControlError("prompt must be the id returned by POST /prompt")
            request.prompt_id = value
        elif key == "engine":
            try:
                request.engine = EngineOptions.parse(value)
            except EngineOptionError as exc:
                raise ControlError(str(exc)) from None
        elif key in NUMERIC_SETTINGS:
            low, high = NUMERIC_SETTINGS[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ControlError(f"{key} must be a number")
            request.changes[key] = min(max(float(value), low), high)
        elif key in BOOL_SETTINGS:
            if not isinstance(value, bool):
                raise ControlError(f"{key} must be true or false")
            request.changes[key] = value
        elif key in CHOICE_SETTINGS:
            if value not in CHOICE_SETTINGS[key]:
                raise ControlError(f"{key} must be one of {', '.join(CHOICE_SETTINGS[key])}")
            request.changes[key] = value
        else:
            raise ControlError(f"unknown setting {key!r}")
    if request.style is not None and request.prompt_id is not None:
        raise ControlError("send either style or prompt, not both")
    return request


def health_state(fps_in: float, fps_out: float, seconds_since_input: float) -> str:
    """Livepeer-style health from measured rates: no input for 3 s → offline; slow camera → degraded
    input; output well below input → degraded inference; else online."""
    if seconds_since_input > 3.0:
        return "offline"
    if fps_in < 10.0:
        return "degraded input"
    if fps_out < 0.7 * fps_in:
        return "degraded inference"
    return "online"


def encode(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields}, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):          # numpy scalars in metric snapshots
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value)
