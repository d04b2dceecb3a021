"""`open_source(spec)`: one input string → the right source (video file, camera, still image, synthetic)."""
from __future__ import annotations

from pathlib import Path

from pipeline.errors import UserError
from pipeline.stage import Source
from stages.source_file import FileSource
from stages.source_image import IMAGE_SUFFIXES, ImageSource
from stages.source_synthetic import SyntheticSource
from stages.source_webcam import WebcamSource, parse_camera


def open_source(spec: str | int, *, realtime: bool = False, max_frames: int | None = None,
                repeat: int = 90, fps: float = 30.0, width: int = 640, height: int = 480) -> Source:
    """The source for `spec`.

    - `"synthetic"` → moving pattern (`max_frames` or 300 frames of width×height at fps; live if realtime)
    - `0`, `"0"`, `"camera:0"` → webcam N (live)
    - an image file → that image `repeat` times at `fps` (or `max_frames` times)
    - any other file → video file (live only with `realtime`)
    """
    if isinstance(spec, str) and spec.strip().lower() == "synthetic":
        return SyntheticSource(width, height, fps, count=max_frames or 300, live=realtime)
    camera = parse_camera(spec)
    if camera is not None:
        return WebcamSource(camera, width, height, fps, max_frames=max_frames)
    path = Path(spec)
    if not path.exists():
        raise UserError(f"input not found: {path} (give a video, an image, camera:N or synthetic)")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path, repeat=max_frames or repeat, fps=fps, live=realtime)
    return FileSource(path, realtime=realtime, max_frames=max_frames)
