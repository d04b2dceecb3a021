"""Typed packets that flow one way through the stage graph.

A `FramePacket` is created by a source and travels through every stage; each stage reads the
fields it needs and fills in its own (`face`, `edits`, `output`). Frames are RGB
uint8 arrays of shape (H, W, 3).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

CROP_SIZE = 512                     # side of the EG3D/FFHQ-aligned face crop (the 3DPE encoder's input)


@dataclass
class FaceObservation:
    """One tracked face in frame coordinates (filled by the face stage)."""

    landmarks: np.ndarray          # (478, 3) float32; x, y in pixels of the frame, z in pixels (MediaPipe scale)
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels (landmark bounds)
    confidence: float              # detector / presence confidence in [0, 1]
    yaw: float                     # degrees, camera convention of threedpe.camera: + = nose towards image left
    pitch: float                   # degrees, + = head tilted up (chin up)
    roll: float                    # degrees, + = image content turned clockwise
    camera: np.ndarray             # (25,) float32 EG3D camera label (cam2world 4x4 + normalised intrinsics)
    crop_matrix: np.ndarray        # (2, 3) float64 frame -> 512² crop
    crop_inverse: np.ndarray       # (2, 3) float64 512² crop -> frame
    crop: np.ndarray               # (CROP_SIZE, CROP_SIZE, 3) uint8 RGB, EG3D/FFHQ-aligned
    mask: np.ndarray               # (H, W) float32 soft face mask in [0, 1], frame coordinates
    transform: np.ndarray | None = None      # (4, 4) MediaPipe facial transformation matrix (raw)
    blendshapes: dict[str, float] | None = None
    track: int = 0                 # the same number for the same face from frame to frame (face stage tracks)


@dataclass
class FaceResult:
    """What the face stage found in a frame: the chosen face (or None) and all faces."""

    face: FaceObservation | None
    faces: list[FaceObservation] = field(default_factory=list)
    seconds: float = 0.0            # time spent in the face stage for this frame

    @property
    def found(self) -> bool:
        return self.face is not None


@dataclass
class RenderResult:
    """An edited image (filled by the render stage), in crop or frame coordinates (`space`)."""

    image: np.ndarray               # (512, 512, 3) uint8 RGB for space "crop"; (H, W, 3) for space "frame"
    mask: np.ndarray                # float32 in [0, 1], same height/width as `image`: where the edit applies
    # (a GPU-resident engine leaves image, mask, depth and views as torch tensors on its device; the
    # compositor pastes them there and `stages.composite.on_host` downloads them for the other modes)
    space: str = "crop"             # "crop": 512² aligned-crop coordinates; "frame": the source frame's
    depth: np.ndarray | None = None
    camera: np.ndarray | None = None  # (25,) camera it was rendered from
    label: str = ""                 # e.g. "random weights — not an edit"; drawn by the compositor when set
    views: list[np.ndarray] | None = None  # extra renders for the grid mode


@dataclass
class FaceEdit:
    """One face being edited: filled by the edit stage (`face`, `scene`) and the render stage (`render`)."""

    face: FaceObservation
    scene: Any = None               # engine-specific encoded scene (e.g. a triplane); None: not ready yet
    render: RenderResult | None = None


@dataclass
class FramePacket:
    """One video frame and everything the stages learned about it."""

    seq: int                        # 0, 1, 2, ... in source order
    frame: np.ndarray               # (H, W, 3) uint8 RGB, the source frame (never modified in place)
    pts: int | None = None          # presentation timestamp in `time_base` units (source clock)
    time_base: Fraction | None = None
    capture_time: float = 0.0       # time.perf_counter() when the source produced the frame
    timings: dict[str, tuple[float, float]] = field(default_factory=dict)  # stage -> (enter, exit), perf_counter
    face: FaceResult | None = None
    edits: list[FaceEdit] = field(default_factory=list)   # the faces being edited, the chosen face first
    output: np.ndarray | None = None  # the frame to emit (compositor); sinks fall back to `frame`
    cuda_event: Any = None          # torch.cuda.Event recorded by the producing stage (GPU only)
    device_frame: Any = None        # `frame` as a uint8 HWC tensor on a GPU-resident engine's device (uploaded once)

    @property
    def seconds(self) -> float | None:
        """Source time of the frame in seconds, when the source has a clock."""
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * self.time_base)

    @property
    def scene(self) -> Any:
        """The chosen face's scene (None when no face is edited)."""
        return self.edits[0].scene if self.edits else None

    @property
    def render(self) -> RenderResult | None:
        """The chosen face's render (None when no face is edited)."""
        return self.edits[0].render if self.edits else None

    @property
    def out_frame(self) -> np.ndarray:
        """The frame a sink should write: the compositor's output or the untouched input."""
        return self.frame if self.output is None else self.output
