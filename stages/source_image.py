"""Still-image source: one picture repeated N times with synthetic pts at a given fps (scaled down to the
working size when larger)."""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from pipeline.clock import Pacer, frame_time_base
from pipeline.errors import UserError
from pipeline.frame_size import check_input_size, working_size
from pipeline.packets import FramePacket
from pipeline.stage import Source

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def load_rgb(path: str | Path) -> np.ndarray:
    """An image file as an (H, W, 3) uint8 RGB array, or a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise UserError(f"cannot read {path} as an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def image_path_in(text: str) -> Path | None:
    """The image file a style text names ("image:<path>", or a path with an image suffix), else None."""
    text = text.strip()
    if text.lower().startswith("image:"):
        return Path(text[len("image:"):].strip()).expanduser()
    path = Path(text).expanduser()
    return path if path.suffix.lower() in IMAGE_SUFFIXES else None


class ImageSource(Source):
    """The same image `repeat` times; pts count frames in a 1/fps time base. `live` paces at fps."""

    name = "image"

    def __init__(self, path: str | Path, repeat: int = 1, fps: float = 30.0, live: bool = False):
        if repeat < 1:
            raise UserError("repeat must be at least 1 frame")
        if not fps > 0:
            raise UserError(f"--fps must be above 0, not {fps:g}")
        self.path = Path(path)
        image = load_rgb(self.path)
        self.height, self.width = image.shape[:2]
        check_input_size(self.width, self.height, str(self.path))
        size = working_size(self.width, self.height)
        self.image = image if size == (self.width, self.height) else cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        self.frame_count = repeat
        self.fps = float(fps)
        self.time_base = frame_time_base(fps)
        self.live = live
        self.has_audio, self.audio_path = False, None
        self._seq = 0
        self._pacer = Pacer()

    def read(self) -> FramePacket | None:
        if self._seq >= self.frame_count:
            return None
        seconds = self._seq / self.fps
        if self.live:
            self._pacer.wait_until(seconds)
        packet = FramePacket(seq=self._seq, frame=self.image, pts=round(seconds / self.time_base),
                             time_base=self.time_base, capture_time=time.perf_counter())
        self._seq += 1
        return packet
