"""Face stage time per 640×480 frame (landmarks + pose + crop warp + mask): median and p95 over a clip.

Usage: python -m benchmarks.face [CLIP] [--frames N]   (default: the reference clip d10.mp4 via testdata, 150 frames)
Frames are resized to 640×480 before timing; the target is ≤ 15 ms median.
"""
from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

import testdata
from stages.face import FaceConfig, FaceTracker
from stages.source_file import FileSource


def measure(clip: Path, frames: int) -> np.ndarray:
    """Milliseconds per frame spent in FaceTracker.track (as the stage calls it)."""
    source = FileSource(clip, max_frames=frames)
    frames_640 = []
    while (packet := source.read()) is not None:
        frames_640.append((cv2.resize(packet.frame, (640, 480), interpolation=cv2.INTER_AREA), packet.seconds))
    asyncio.run(source.close())
    tracker = FaceTracker(FaceConfig(smoothing=True))
    try:
        return np.array([tracker.track(f, t).seconds * 1000.0 for f, t in tqdm(frames_640, desc="face stage")])
    finally:
        tracker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", default=None, help="default: the reference clip d10.mp4 (testdata)")
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args()
    args.clip = args.clip or testdata.path("clips/d10.mp4")
    ms = measure(Path(args.clip), args.frames)[5:]          # the first frames include graph warm-up
    print(f"face stage, 640×480: median {np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms "
          f"over {len(ms)} frames (target ≤ 15 ms median)")


if __name__ == "__main__":
    main()
