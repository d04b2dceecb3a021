"""Headless Debian Chromium with a fake camera fed from a y4m file (for the page's tests and benchmarks)."""
from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and quiet on a closed network: no background connections that this machine refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def y4m_writer(path: Path, width: int, height: int, fps: int = 30):
    """An open yuv4mpeg container and its raw stream (Chromium loops the file as its camera)."""
    out = av.open(str(path), "w", format="yuv4mpegpipe")
    stream = out.add_stream("rawvideo", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    return out, stream


def still_y4m(frame: np.ndarray, path: Path, seconds: float = 3.0, fps: int = 30) -> Path:
    """One RGB frame held for `seconds`."""
    out, stream = y4m_writer(path, frame.shape[1], frame.shape[0], fps)
    with out:
        yuv = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
        for _ in range(int(seconds * fps)):
            out.mux(stream.encode(yuv))
        out.mux(stream.encode())
    return path


def clip_y4m(clip: str | Path, path: Path, seconds: float = 15.0, size: tuple[int, int] = (512, 512),
             fps: int = 30) -> Path:
    """The first `seconds` of a clip, centre-cropped to the aspect of `size` (faces keep their shape) and
    resized to it."""
    out, stream = y4m_writer(path, size[0], size[1], fps)
    with av.open(str(clip)) as source, out:
        for index, frame in enumerate(source.decode(video=0)):
            if index >= seconds * fps:
                break
            rgb = _crop_to_aspect(frame.to_ndarray(format="rgb24"), size[0] / size[1])
            resized = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(resized, format="rgb24").reformat(format="yuv420p")))
        out.mux(stream.encode())
    return path


def _crop_to_aspect(rgb: np.ndarray, aspect: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    if w / h > aspect:
        keep = round(h * aspect)
        return rgb[:, (w - keep) // 2: (w - keep) // 2 + keep]
    keep = round(w / aspect)
    return rgb[(h - keep) // 2: (h - keep) // 2 + keep]


async def launch(playwright, camera: Path, extra: list[str] | None = None):
    """Chromium whose camera plays `camera` (a y4m)."""
    args = [*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={camera}", *(extra or [])]
    return await playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
