"""End-to-end benchmark of the default `classic` engine: decode → face → edit → render → composite → encode
at 640×480 through the real graph; per-stage figures, fps against the 25 fps target, JSON + a PNG plot.

    python -m benchmarks.classic_e2e --clip ../shared/clips/s18.mp4 --frames 150 --style "bronze statue"
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from pipeline.config import COMPOSITE_MODES, EditControls, EditSettings
from pipeline.graph import Graph
from pipeline.packets import FramePacket
from pipeline.stage import Source
from stages.chain import build_edit_stages
from stages.edit.classic import ClassicEngine
from stages.face import FaceConfig
from stages.sink_file import FileSink

TARGET_FPS = 25.0
SIZE = (640, 480)


def to_640x480(rgb: np.ndarray) -> np.ndarray:
    """Centre-crop to 4:3 and resize (the webcam framing the target is stated for)."""
    h, w = rgb.shape[:2]
    cw, ch = min(w, h * 4 // 3), min(h, w * 3 // 4)
    x, y = (w - cw) // 2, (h - ch) // 2
    return cv2.resize(rgb[y:y + ch, x:x + cw], SIZE, interpolation=cv2.INTER_AREA)


class ClipSource640(Source):
    """Decodes a clip (looping if it is shorter than `frames`) and delivers 640×480 RGB packets."""

    name = "decode"

    def __init__(self, path: Path, frames: int):
        self.path, self.frames = path, frames
        self._seq = 0
        self._container = av.open(str(path))
        self._decoder = self._container.decode(video=0)
        self._fps = float(self._container.streams.video[0].average_rate or 30)

    def read(self) -> FramePacket | None:
        if self._seq >= self.frames:
            return None
        try:
            frame = next(self._decoder)
        except StopIteration:
            self._container.close()
            self._container = av.open(str(self.path))
            self._decoder = self._container.decode(video=0)
            frame = next(self._decoder)
        packet = FramePacket(seq=self._seq, frame=to_640x480(frame.to_ndarray(format="rgb24")), pts=self._seq,
                             time_base=Fraction(1, round(self._fps)), capture_time=time.perf_counter())
        self._seq += 1
        return packet

    async def close(self) -> None:
        self._container.close()


def run(clip: Path, frames: int, settings: EditSettings, output: Path) -> dict:
    stages = build_edit_stages(EditControls(settings), ClassicEngine(), FaceConfig(smoothing=True))
    graph = Graph(ClipSource640(clip, frames), stages, FileSink(output, fps=30.0), policy="offline", name="classic-e2e")
    metrics = asyncio.run(graph.run())
    result = metrics.as_dict()
    result.pop("e2e_series", None)
    result.update(clip=str(clip), size=list(SIZE), settings={"style": settings.style, "yaw": settings.yaw,
                  "pitch": settings.pitch, "mode": settings.mode}, target_fps=TARGET_FPS,
                  meets_target=metrics.fps >= TARGET_FPS)
    print(metrics.table())
    return result


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["stages"])
    p50 = [result["stages"][n]["p50_ms"] for n in names]
    p95 = [result["stages"][n]["p95_ms"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.arange(len(names))
    ax.bar(x - 0.2, p50, 0.4, label="p50")
    ax.bar(x + 0.2, p95, 0.4, label="p95")
    ax.axhline(1000.0 / TARGET_FPS, color="r", linestyle="--", label=f"{TARGET_FPS:g} fps budget per stage")
    ax.set_xticks(x, names)
    ax.set_ylabel("ms per frame")
    ax.set_title(f"classic engine end to end, 640×480: {result['fps']:.1f} fps")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--style", default="bronze statue")
    parser.add_argument("--yaw", type=float, default=15.0)
    parser.add_argument("--pitch", type=float, default=0.0)
    parser.add_argument("--mode", choices=COMPOSITE_MODES, default="paste")
    parser.add_argument("--json", type=Path, default=Path("classic_e2e.json"))
    parser.add_argument("--plot", type=Path, default=Path("classic_e2e.png"))
    args = parser.parse_args(argv)
    settings = EditSettings(style=args.style, yaw=args.yaw, pitch=args.pitch, mode=args.mode).validated()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.clip, args.frames, settings, Path(tmp) / "out.mp4")
    args.json.write_text(json.dumps(result, indent=2))
    plot(result, args.plot)
    print(f"{result['fps']:.1f} fps end to end (target {TARGET_FPS:g}); wrote {args.json} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
