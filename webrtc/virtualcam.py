"""A sink that sends the edited frames to a virtual camera (pyvirtualcam: v4l2loopback, OBS, Unity Capture)."""
from __future__ import annotations

import sys

import cv2
import numpy as np

from pipeline.errors import UserError
from pipeline.packets import FramePacket
from pipeline.stage import Sink


def how_to_create_virtual_camera() -> str:
    if sys.platform.startswith("linux"):
        return ("create one with: sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=live3dpe "
                "(package v4l2loopback-dkms), then run this again")
    return "install OBS Studio and start its Virtual Camera once (Tools → Start Virtual Camera), then run this again"


def fit(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """`frame` scaled to fit width×height keeping its aspect, centred on black (a device has one size,
    while side-by-side/grid/crop modes change the frame's)."""
    h, w = frame.shape[:2]
    if (h, w) == (height, width):
        return np.ascontiguousarray(frame)
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    out = np.zeros((height, width, 3), np.uint8)
    x, y = (width - new_w) // 2, (height - new_h) // 2
    out[y:y + new_h, x:x + new_w] = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return out


class VirtualCameraSink(Sink):
    """Opens the virtual camera at a fixed size/fps in `start()` (so a missing device fails before the
    webcam opens) and sends every frame, fitted to the device size when the composite mode changes the frame size."""

    name = "virtual-camera"

    def __init__(self, width: int = 640, height: int = 480, fps: float = 30.0, device: str | None = None,
                 backend: str | None = None):
        self.width, self.height, self.fps = width, height, fps
        self.device, self.backend = device, backend
        self.camera = None
        self.frames_sent = 0

    async def start(self) -> None:
        """Open the device (idempotent: the command opens it before the graph starts)."""
        import pyvirtualcam

        if self.camera is not None:
            return
        try:
            self.camera = pyvirtualcam.Camera(self.width, self.height, self.fps, fmt=pyvirtualcam.PixelFormat.RGB,
                                              device=self.device, backend=self.backend)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"no virtual camera device available ({first}); {how_to_create_virtual_camera()}") from None

    @property
    def device_name(self) -> str | None:
        return None if self.camera is None else self.camera.device

    def write(self, packet: FramePacket) -> None:
        self.camera.send(fit(packet.out_frame, self.width, self.height))
        self.frames_sent += 1

    async def close(self) -> None:
        if self.camera is not None:
            self.camera.close()
            self.camera = None
