"""Per-peer engine options changeable while streaming: face-track smoothing (any engine) and the 3dpe
triplane EMA weight. Parsed from the "engine" object of a "set" message, applied to one peer's own stages."""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class EngineOptionError(ValueError):
    """An engine option that is malformed or that this peer's pipeline does not have."""


@dataclass(frozen=True)
class EngineOptions:
    """Options a page may change; None leaves one as it is."""

    smoothing: bool | None = None            # One-Euro smoothing of the face track
    triplane_ema: float | None = None        # 3dpe: weight of the previous triplane, in [0, 1)

    @classmethod
    def parse(cls, value: Any) -> EngineOptions:
        """From the JSON object {"smoothing": bool, "triplane_ema": number}; raise EngineOptionError."""
        if not isinstance(value, dict) or not value:
            raise EngineOptionError('engine must be an object such as {"smoothing": true, "triplane_ema": 0.6}')
        unknown = set(value) - {"smoothing", "triplane_ema"}
        if unknown:
            raise EngineOptionError(f"unknown engine option(s) {', '.join(sorted(map(repr, unknown)))}: "
                                    "the options are smoothing and triplane_ema")
        smoothing, ema = value.get("smoothing"), value.get("triplane_ema")
        if "smoothing" in value and not isinstance(smoothing, bool):
            raise EngineOptionError("engine.smoothing must be true or false")
        if "triplane_ema" in value:
            if isinstance(ema, bool) or not isinstance(ema, (int, float)) or not math.isfinite(ema) \
                    or not 0.0 <= ema < 1.0:
                raise EngineOptionError("engine.triplane_ema must be a number in [0, 1) (0 = off)")
            ema = float(ema)
        return cls(smoothing=smoothing, triplane_ema=ema)


def face_stage(stages: Iterable[Any]) -> Any | None:
    """The stage whose face-track smoothing can be switched (FaceStage), if the pipeline has one."""
    return next((s for s in stages if callable(getattr(s, "set_smoothing", None))), None)


def apply(options: EngineOptions, stages: Iterable[Any], engine: Any) -> None:
    """Apply `options` to one peer's stages and engine: all of them or, if one is unsupported, none."""
    face = face_stage(stages)
    if options.smoothing is not None and face is None:
        raise EngineOptionError("this pipeline has no face tracker: smoothing cannot be changed")
    if options.triplane_ema is not None and not callable(getattr(engine, "set_triplane_ema", None)):
        raise EngineOptionError(f"triplane_ema is an option of the 3dpe engine; this server runs the "
                                f"{getattr(engine, 'name', None) or 'no'} engine, which does not support it")
    if options.triplane_ema is not None:
        engine.set_triplane_ema(options.triplane_ema)
    if options.smoothing is not None:
        face.set_smoothing(options.smoothing)


def current(stages: Iterable[Any], engine: Any) -> dict[str, Any]:
    """The options this peer supports, with their values (the page shows a control for each)."""
    options: dict[str, Any] = {}
    face = face_stage(stages)
    if face is not None:
        options["smoothing"] = bool(face.smoothing)
    if callable(getattr(engine, "set_triplane_ema", None)):
        options["triplane_ema"] = float(engine.triplane_ema)
    return options
