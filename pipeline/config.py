"""Configuration: one typed object per concern, passed down; `EditControls` is the part changed while running."""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

COMPOSITE_MODES = ("paste", "crop", "side-by-side", "grid")
FACE_LOST_POLICIES = ("fade", "blur")
FACE_CHOICES = ("one", "all")       # edit the chosen face (largest, or --face-index) or every face found
# The virtual camera's range, degrees either side: where the re-render holds up (docs/quality.md). Every
# front end (CLI flags, the page's sliders, the data channel) uses these; offsets beyond them are clamped.
CAMERA_LIMITS = {"yaw": 25.0, "pitch": 15.0, "roll": 30.0}


@dataclass(frozen=True)
class EditSettings:
    """What the user chose: style, virtual camera, composite mode. Immutable; replaced as a whole."""

    style: str = "none"             # preset name, free text, "image:<path>", "text:<words only>" or "none"
    yaw: float = 0.0                # virtual-camera offsets, degrees (see threedpe.camera)
    pitch: float = 0.0
    roll: float = 0.0
    zoom: float = 1.0
    look_at_lens: bool = False      # absolute frontal camera instead of the tracked one
    mode: str = "paste"             # one of COMPOSITE_MODES
    enabled: bool = True            # False: frames pass through untouched
    on_face_lost: str = "fade"      # one of FACE_LOST_POLICIES
    faces: str = "one"              # one of FACE_CHOICES
    hold_seconds: float = 0.5       # keep the last output this long after the face is lost
    fade_seconds: float = 0.5       # then fade to the original frame over this long
    grid_yaws: tuple[float, ...] = (-25.0, 0.0, 25.0)

    def validated(self) -> "EditSettings":
        if self.mode not in COMPOSITE_MODES:
            raise ValueError(f"mode must be one of {', '.join(COMPOSITE_MODES)}, not {self.mode!r}")
        if self.on_face_lost not in FACE_LOST_POLICIES:
            raise ValueError(f"on_face_lost must be one of {', '.join(FACE_LOST_POLICIES)}")
        if self.faces not in FACE_CHOICES:
            raise ValueError(f"faces must be one of {', '.join(FACE_CHOICES)}, not {self.faces!r}")
        if not 0.25 <= self.zoom <= 4.0:
            raise ValueError("zoom must be within 0.25..4")
        return self

    def within_camera_limits(self) -> "EditSettings":
        """These settings with the camera offsets clamped to CAMERA_LIMITS (what every front end applies)."""
        clamped = {axis: _clamp(getattr(self, axis), limit) for axis, limit in CAMERA_LIMITS.items()}
        return replace(self, grid_yaws=tuple(_clamp(y, CAMERA_LIMITS["yaw"]) for y in self.grid_yaws), **clamped)

    def beyond_camera_limits(self) -> list[str]:
        """The camera offsets `within_camera_limits` clamps, said for the user (empty when all are in range)."""
        said = [f"{axis} {getattr(self, axis):g}° → {_clamp(getattr(self, axis), limit):g}°"
                for axis, limit in CAMERA_LIMITS.items() if _clamp(getattr(self, axis), limit) != getattr(self, axis)]
        said += [f"grid yaw {y:g}° → {_clamp(y, CAMERA_LIMITS['yaw']):g}°" for y in self.grid_yaws
                 if _clamp(y, CAMERA_LIMITS["yaw"]) != y]
        return said


def _clamp(value: float, limit: float) -> float:
    return float(min(max(value, -limit), limit))


class EditControls:
    """Thread-safe holder of the current `EditSettings`; stages read `current`, the UI calls `update`."""

    def __init__(self, settings: EditSettings | None = None):
        self._lock = threading.Lock()
        self._settings = (settings or EditSettings()).validated()

    @property
    def current(self) -> EditSettings:
        return self._settings

    def update(self, **changes: Any) -> EditSettings:
        known = {f.name for f in fields(EditSettings)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        with self._lock:
            self._settings = replace(self._settings, **changes).validated()
            return self._settings

    def as_dict(self) -> dict[str, Any]:
        return asdict(self._settings)


@dataclass(frozen=True)
class EngineConfig:
    """Which engine edits the head, and with what weights/device."""

    name: str = "classic"           # "classic" (no weights) or "3dpe"
    weights: str | None = None      # path to 3dpe.pt (3dpe engine)
    random_weights: bool = False    # benchmarks/tests only; output is labelled
    device: str = "auto"            # "auto", "cpu", "cuda", "cuda:1"
    precision: str = "fp32"         # "fp32", "fp16", "bf16" (autocast)
    backend: str = "torch"          # 3dpe: "torch", "onnxruntime", "tensorrt" (threedpe.backends)
    accel: str = "eager"            # 3dpe torch backend: "eager", "cuda-graphs", "compile"
    max_batch: int = 1              # 3dpe: streams sharing the model batch their crops and renders up to this
    onnx_dir: str | None = None     # 3dpe exported backends: the ONNX export folder (default: the cache)
    triplane_ema: float = 0.6       # 3dpe: weight of the previous triplane (0 = off)
    trust_pickle: bool = False
    segmenter_model: str | None = None  # classic: selfie_segmenter.tflite (None: env var, cache or download)
    face_model: str | None = None   # classic: face_landmarker.task, for the faces in image prompts
    extra: dict[str, Any] = field(default_factory=dict)
