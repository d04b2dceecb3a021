"""Stand-ins for the stage unit tests only (the end-to-end tests use the real face stage and classic engine):
`IdentityEngine` (renders the crop back, optionally tinted) and `make_face` (a FaceObservation for a box)."""
from __future__ import annotations

import threading

import cv2
import numpy as np

from pipeline.packets import FaceObservation, FaceResult, FramePacket, RenderResult
from stages.edit.engine import Style
from threedpe.camera import orbit_label

TINTS = {"red": (255, 0, 0), "blue": (0, 0, 255)}


class IdentityEngine:
    """Engine stand-in: the scene is the face crop; the render is the crop (tinted by the style) in crop space,
    or the whole frame in frame space. Records the cameras it was asked for.
    Setting `prepare_gate` / `encode_gate` (threading.Event) makes `prepare` / `encode` wait until the test
    sets it: a slow engine without timing assumptions."""

    name = "identity"
    device = "cpu"
    GATE_TIMEOUT = 10.0             # a test that never opens its gate fails instead of hanging

    def __init__(self, space: str = "crop", decoupled: bool = False, label: str = ""):
        self.space, self.decoupled, self.label = space, decoupled, label
        self.prepare_gate: threading.Event | None = None
        self.encode_gate: threading.Event | None = None
        self.cameras: list[np.ndarray] = []
        self.prepared: list[str] = []
        self.encoded = 0

    def _wait(self, gate: threading.Event | None) -> None:
        if gate is not None and not gate.wait(self.GATE_TIMEOUT):
            raise TimeoutError("the test never opened the gate")

    def prepare(self, prompt):
        self._wait(self.prepare_gate)
        name = "none" if prompt is None else str(prompt)
        if name != "none" and name not in TINTS:
            raise ValueError(f"unknown style {name!r}; known: none, {', '.join(TINTS)}")
        self.prepared.append(name)
        return Style(name, "none" if name == "none" else "preset", name, data=TINTS.get(name))

    def encode(self, face, frame, style):
        self._wait(self.encode_gate)
        self.encoded += 1
        return {"face": face, "frame": frame, "style": style}

    def render(self, scene, camera):
        self.cameras.append(np.asarray(camera))
        tint = scene["style"].data
        if self.space == "crop":
            image, mask = scene["face"].crop.copy(), np.ones((512, 512), np.float32)
        else:
            image, mask = scene["frame"].copy(), scene["face"].mask.copy()
        if tint is not None:
            image[mask > 0.5] = tint
        return RenderResult(image=image, mask=mask, space=self.space, camera=np.asarray(camera), label=self.label)


def make_face(frame: np.ndarray, box=(120, 80, 280, 260), yaw: float = 0.0, track: int = 0) -> FaceObservation:
    """A FaceObservation whose crop covers `box` enlarged 2× (like an FFHQ crop), with a face mask in the box."""
    x0, y0, x1, y1 = box
    cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, 2.0 * max(x1 - x0, y1 - y0)
    scale = 512.0 / side
    matrix = np.array([[scale, 0, 256 - scale * cx], [0, scale, 256 - scale * cy]], np.float64)
    inverse = cv2.invertAffineTransform(matrix)
    mask = np.zeros(frame.shape[:2], np.float32)
    mask[y0:y1, x0:x1] = 1.0
    return FaceObservation(landmarks=np.zeros((478, 3), np.float32), box=(x0, y0, x1, y1), confidence=1.0,
                           yaw=yaw, pitch=0.0, roll=0.0, camera=orbit_label(yaw), crop_matrix=matrix,
                           crop_inverse=inverse, crop=cv2.warpAffine(frame, matrix, (512, 512)), mask=mask, track=track)


def textured_frame(seed: int = 0, size=(360, 480)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
    return cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)


def packet(seq: int, frame: np.ndarray, face: FaceObservation | None, fps: float = 10.0) -> FramePacket:
    from fractions import Fraction

    return FramePacket(seq=seq, frame=frame, pts=seq, time_base=Fraction(1, int(fps)),
                       face=FaceResult(face, [face] if face else []))


def test_make_face_crop_round_trips():
    frame = textured_frame()
    face = make_face(frame)
    back = cv2.warpAffine(face.crop, face.crop_inverse, (frame.shape[1], frame.shape[0]))
    x0, y0, x1, y1 = face.box
    err = np.abs(back[y0:y1, x0:x1].astype(int) - frame[y0:y1, x0:x1]).mean()
    assert err < 12
