"""Webcam source (OpenCV): requests MJPG at a size/fps, measures the fps it really delivers, live."""
from __future__ import annotations

import logging
import sys
import time
from fractions import Fraction
from pathlib import Path

import cv2

from pipeline.errors import UserError
from pipeline.packets import FramePacket
from pipeline.stage import Source

log = logging.getLogger(__name__)
TIME_BASE = Fraction(1, 1000)      # pts are milliseconds of wall clock since the first frame


def parse_camera(spec: str | int) -> int | None:
    """The camera index in `0`, `"0"` or `"camera:0"`, else None."""
    if isinstance(spec, int):
        return spec
    text = spec.strip().lower()
    text = text.removeprefix("camera:")
    return int(text) if text.isdigit() else None


class WebcamSource(Source):
    """Frames from a camera as they come; `device` is an index (or anything cv2.VideoCapture opens).

    Cameras often report a CAP_PROP_FPS they do not deliver (e.g. 30 in low light at 15), so
    `fps` is measured over the first `measure_frames` frames in `start()`.
    """

    name = "webcam"
    live = True

    def __init__(self, device: int | str = 0, width: int = 640, height: int = 480, fps: float = 30.0,
                 max_frames: int | None = None, measure_frames: int = 10):
        self.device, self.requested = device, (width, height, fps)
        self.max_frames = max_frames
        self.frame_count = max_frames
        self.measure_frames = measure_frames
        self.time_base = TIME_BASE
        self.fps = float(fps)
        self.reported_fps: float | None = None
        self.has_audio, self.audio_path = False, None
        self.width = self.height = 0
        self._cap: cv2.VideoCapture | None = None
        self._seq = 0
        self._t0: float | None = None
        # Checked here, not in start(): a missing camera should fail before any model loads.
        if isinstance(device, int) and sys.platform.startswith("linux") and not Path(f"/dev/video{device}").exists():
            raise UserError(f"camera {device} does not exist (no /dev/video{device}); "
                            "list cameras with `ls /dev/video*` and pick one of their numbers")

    async def start(self) -> None:
        self._cap = self._open()
        self._measure()

    def _open(self) -> cv2.VideoCapture:
        previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)   # its own warnings are not one line
        try:
            cap = cv2.VideoCapture(self.device)
        finally:
            cv2.utils.logging.setLogLevel(previous)
        if not cap.isOpened():
            raise UserError(f"camera {self.device} could not be opened (in use by another app, or no permission?)")
        width, height, fps = self.requested
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))  # raw YUYV is fps-limited over USB 2
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        cap.set(cv2.CAP_PROP_FPS, fps)
        self.reported_fps = cap.get(cv2.CAP_PROP_FPS) or None
        return cap

    def _grab(self):
        ok, bgr = self._cap.read()
        return (bgr if ok and bgr is not None else None), time.perf_counter()

    def _measure(self) -> None:
        """Read (and discard: a live graph wants fresh frames) the first frames; set `fps` from their spacing."""
        times = []
        for _ in range(max(self.measure_frames, 1)):
            bgr, t = self._grab()
            if bgr is None:
                break
            self.height, self.width = bgr.shape[:2]
            times.append(t)
        if not times:
            raise UserError(f"camera {self.device} opened but delivered no frames")
        # The first interval includes the driver's start-up, so it is left out when there are enough.
        times = times[1 if len(times) > 3 else 0:]
        if len(times) >= 2 and times[-1] > times[0]:
            self.fps = (len(times) - 1) / (times[-1] - times[0])
        log.info("camera %s: measured %.1f fps (driver reports %s)", self.device, self.fps, self.reported_fps)

    def read(self) -> FramePacket | None:
        if self.max_frames is not None and self._seq >= self.max_frames:
            return None
        bgr, t = self._grab()
        if bgr is None:         # unplugged, or taken by another app: end the run, but say why
            log.warning("camera %s stopped delivering frames after %d", self.device, self._seq)
            return None
        self._t0 = t if self._t0 is None else self._t0
        packet = FramePacket(seq=self._seq, frame=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                             pts=round((t - self._t0) * 1000), time_base=TIME_BASE, capture_time=t)
        self._seq += 1
        return packet

    async def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
