"""The data-channel protocol: JSON control messages from the page, stats and style status back.

Page → server:  {"type": "set", "style": "marble", "yaw": 15, "mode": "paste", ...}
                {"type": "set", "prompt": "<id from POST /prompt>"}   (an uploaded image as the style)
                {"type": "set", "engine": {"smoothing": false, "triplane_ema": 0.3}}   (see engine_options)
Server → page:  {"type": "hello", "settings": {...}, "presets": [...], "engine": ..., "device": ...,
                 "camera_limits": {"yaw": 25, ...}, "takes_text": true, "style": <a style message's fields>,
                 "engine_options": {"smoothing": true, "triplane_ema": 0.6}}   (only the supported ones)
                {"type": "stats", "fps_in": ..., "fps_out": ..., "latency_ms": {...}, "health": ...,
                 "video": {"input": [w, h], "output": [w, h], "sent_kbps": ...}, ...}
                {"type": "style", "status": "loading" | "ready" | "error", "style": <what was asked>,
                 "message": <why it was refused>, "label": <the style running now>, "preset": <its preset or null>}
                {"type": "error", "message": ...}
                {"type": "bye", "reason": ...}       (the server is closing this session: reconnect later)
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import CAMERA_LIMITS, COMPOSITE_MODES, FACE_CHOICES, FACE_LOST_POLICIES
from webrtc.engine_options import EngineOptionError, EngineOptions
from webrtc.prompts import is_prompt_id

# Setting name → (lower, upper), values clamped into it; the page can change exactly these while streaming.
# The virtual camera's range is the engine's (pipeline.config.CAMERA_LIMITS), the page's sliders get it too.
NUMERIC_SETTINGS = {
    **{axis: (-limit, limit) for axis, limit in CAMERA_LIMITS.items()}, "zoom": (0.25, 4.0),
    "hold_seconds": (0.0, 10.0), "fade_seconds": (0.0, 10.0),
}
BOOL_SETTINGS = ("look_at_lens", "enabled")
CHOICE_SETTINGS = {"mode": COMPOSITE_MODES, "on_face_lost": FACE_LOST_POLICIES, "faces": FACE_CHOICES}
MAX_STYLE_TEXT = 200
# A style from the page is a preset name or a description in words, with everyday punctuation ("golden
# statue.", "Van Gogh’s Starry Night"). The peer hands a description to the engine as text only
# (stages.edit.stage.style_prompt: "text:…" → its words), so it is never read as a file; path separators
# and other symbols are refused outright. Images come in through POST /prompt.
STYLE_PUNCTUATION = frozenset(" .,;:!?'’‘\"“”()&+-–—")

HEALTH_STATES = ("online", "degraded input", "degraded inference", "offline")


class ControlError(ValueError):
    """A control message the server cannot apply; the message is sent back to the page. `style` is the
    refused style request ("uploaded image" for a prompt id), so the page shows it with the style status."""

    def __init__(self, message: str, style: str | None = None):
        super().__init__(message)
        self.style = style


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
            request.style = style_text(value)
        elif key == "prompt":
            if not is_prompt_id(value):
                raise ControlError("prompt must be the id returned by POST /prompt", style="uploaded image")
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


def style_text(value: Any) -> str:
    """A style request from the page, stripped; ControlError (with the request) saying what is wrong."""
    if not isinstance(value, str) or not value.strip():
        raise ControlError("style must be a preset name or a description in words", style="")
    text = " ".join(value.split())
    shown = text if len(text) <= 40 else text[:39] + "…"
    if len(text) > MAX_STYLE_TEXT:
        raise ControlError(f"a style description has at most {MAX_STYLE_TEXT} characters", style=shown)
    symbol = next((c for c in text if not (c.isalnum() or c in STYLE_PUNCTUATION)), None)
    if symbol is not None:
        raise ControlError(f"“{symbol}” cannot be part of a style description: describe the style in words "
                           "(to use a picture, upload it as the image prompt)", style=shown)
    if not any(c.isalnum() for c in text):
        raise ControlError("a style description needs at least one word", style=shown)
    return text


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
