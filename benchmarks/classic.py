"""Classic engine alone (encode + render + style) per 640×480 frame, for every preset: median / p95 ms, plot.

    python -m benchmarks.classic [--clip ../shared/clips/s18.mp4] [--frames 60] [--yaw 15] [--plot classic.png]

Faces come from the real face stage (untimed); the target is well under 25 ms per frame on one core.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

import testdata
from benchmarks.classic_e2e import to_640x480
from pipeline.errors import UserError
from stages.edit.classic import PRESETS, ClassicEngine
from stages.face import FaceConfig, FaceTracker
from threedpe.camera import apply_offsets

TARGET_MS = 25.0


def webcam_frames(clip: Path, count: int) -> list[tuple[np.ndarray, float]]:
    """Up to `count` frames of `clip` framed like a 640×480 webcam (centre 4:3 crop), with their times."""
    frames = []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            frames.append((to_640x480(frame.to_ndarray(format="rgb24")), float(frame.time or 0.0)))
            if len(frames) >= count:
                break
    return frames


def measure(clip: Path, count: int, yaw: float, pitch: float, styles: list[str]) -> dict[str, dict[str, float]]:
    """{style: {"encode_ms", "render_ms", "total_ms" (medians), "total_p95_ms"}} over the clip's faces."""
    with FaceTracker(FaceConfig(smoothing=True)) as tracker:
        faces = [(rgb, tracker.track(rgb, t).face) for rgb, t in tqdm(webcam_frames(clip, count), desc="faces")]
    faces = [(rgb, face) for rgb, face in faces if face is not None]
    if not faces:
        raise SystemExit(f"no face found in {clip}")
    engine = ClassicEngine()
    results = {}
    for name in tqdm(styles, desc="styles"):
        style = engine.prepare(name)
        encode_ms, render_ms = [], []
        for rgb, face in faces:
            camera = apply_offsets(face.camera, yaw=yaw, pitch=pitch)
            t0 = time.perf_counter()
            scene = engine.encode(face, rgb, style)
            t1 = time.perf_counter()
            engine.render(scene, camera)
            t2 = time.perf_counter()
            encode_ms.append((t1 - t0) * 1000)
            render_ms.append((t2 - t1) * 1000)
        total = np.add(encode_ms, render_ms)
        results[name] = {"encode_ms": float(np.median(encode_ms)), "render_ms": float(np.median(render_ms)),
                         "total_ms": float(np.median(total)), "total_p95_ms": float(np.percentile(total, 95))}
    return results


def plot(results: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    encode = [results[n]["encode_ms"] for n in names]
    render = [results[n]["render_ms"] for n in names]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.barh(names, encode, label="encode (head region, depth proxy)")
    ax.barh(names, render, left=encode, label="render (paint once, view warp)")
    ax.axvline(TARGET_MS, color="red", linestyle="--", label=f"{TARGET_MS:.0f} ms budget")
    ax.set_xlabel("median ms per 640×480 frame")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=None, help="default: the reference clip s18.mp4 (testdata)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--yaw", type=float, default=15.0)
    parser.add_argument("--pitch", type=float, default=-5.0)
    parser.add_argument("--styles", nargs="*", default=["none", *PRESETS])
    parser.add_argument("--plot", type=Path, default=None, help="write a bar chart (PNG) here")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers (JSON) here")
    args = parser.parse_args(argv)
    args.clip = args.clip or testdata.path("clips/s18.mp4")
    try:
        results = measure(args.clip, args.frames, args.yaw, args.pitch, args.styles)
    except UserError as err:                                    # e.g. no face model: say how to get one
        print(f"error: {err}")
        return 2
    print(f"{'style':<16} {'encode':>8} {'render':>8} {'total':>8} {'p95':>8}   (ms, 640×480, one process)")
    for name, r in results.items():
        print(f"{name:<16} {r['encode_ms']:8.2f} {r['render_ms']:8.2f} {r['total_ms']:8.2f} {r['total_p95_ms']:8.2f}")
    if args.plot:
        plot(results, args.plot)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
