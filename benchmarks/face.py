"""Face stage time per 640×480 frame (landmarks + pose + crop warp + mask + the YuNet second opinion on new
tracks): median and p95 over a clip, with the second opinion on and off in one run, and its own cost.

Usage: python -m benchmarks.face [CLIP] [--frames N]   (default: the reference clip d10.mp4 via testdata, 150 frames)
Frames are resized to 640×480 before timing; the target is ≤ 15 ms median.
"""
from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

import testdata
from stages.face import FaceConfig, FaceTracker
from stages.face.verify import FaceVerifier
from stages.source_file import FileSource


def webcam_frames(clip: Path, frames: int) -> list[tuple[np.ndarray, float]]:
    source = FileSource(clip, max_frames=frames)
    out = []
    while (packet := source.read()) is not None:
        out.append((cv2.resize(packet.frame, (640, 480), interpolation=cv2.INTER_AREA), packet.seconds))
    asyncio.run(source.close())
    return out


def measure(frames: list[tuple[np.ndarray, float]], verify: bool = True) -> np.ndarray:
    """Milliseconds per frame spent in FaceTracker.track (as the stage calls it)."""
    with FaceTracker(FaceConfig(smoothing=True, verify=verify)) as tracker:
        return np.array([tracker.track(f, t).seconds * 1000.0
                         for f, t in tqdm(frames, desc=f"face stage, second opinion {'on' if verify else 'off'}")])


def second_opinion_ms(frames: list[tuple[np.ndarray, float]], count: int = 30) -> np.ndarray:
    """Milliseconds of one YuNet confirmation (what a new track costs once), on the clip's faces."""
    verifier, times = FaceVerifier(), []
    with FaceTracker(FaceConfig(smoothing=False, verify=False)) as tracker:
        for frame, _ in frames[:count]:
            face = tracker.detect(frame).face
            if face is not None:
                start = time.perf_counter()
                verifier.confirms(frame, face.landmarks)
                times.append((time.perf_counter() - start) * 1000.0)
    return np.array(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", default=None, help="default: the reference clip d10.mp4 (testdata)")
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args()
    frames = webcam_frames(Path(args.clip or testdata.path("clips/d10.mp4")), args.frames)
    on, off = measure(frames, True)[5:], measure(frames, False)[5:]    # the first frames include graph warm-up
    check = second_opinion_ms(frames)
    print(f"face stage, 640×480, {len(on)} frames: second opinion on: median {np.median(on):.1f} ms, "
          f"p95 {np.percentile(on, 95):.1f} ms | off: median {np.median(off):.1f} ms, p95 {np.percentile(off, 95):.1f} ms "
          f"| ratio of medians {np.median(on) / np.median(off):.3f} (target ≤ 15 ms median)")
    print(f"one second opinion (YuNet on 2–3 aligned crops, once per new track, then every 2 s): "
          f"median {np.median(check):.1f} ms, p95 {np.percentile(check, 95):.1f} ms")


if __name__ == "__main__":
    main()
