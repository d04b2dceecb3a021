"""`live3dpe face`: per frame of an image or video, the face found, pose, EG3D camera, crop matrix, time."""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import UserError
from pipeline.packets import FramePacket
from stages.face.config import FaceConfig
from stages.face.stage import FaceStage
from stages.source_image import IMAGE_SUFFIXES, load_rgb


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="an image or a video file")
    parser.add_argument("--json", action="store_true", help="one JSON object per frame")
    parser.add_argument("--save-crops", metavar="DIR", help="write the 512² aligned crops as PNG files here")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    parser.add_argument("--smooth", action=argparse.BooleanOptionalAction, default=True,
                        help="temporal smoothing of a video (default: on; a single image is never smoothed)")
    parser.add_argument("--face-model", default=None, help="face_landmarker.task (default: $LIVE3DPE_FACE_MODEL, cache, download)")


def main(args: argparse.Namespace) -> int:
    path = Path(args.input)
    if not path.exists():
        raise UserError(f"input not found: {path}")
    if args.max_frames is not None and args.max_frames < 1:
        raise UserError("--max-frames must be at least 1")
    is_image = path.suffix.lower() in IMAGE_SUFFIXES
    crops = Path(args.save_crops) if args.save_crops else None
    if crops:
        try:
            crops.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"--save-crops: cannot create the folder {crops} ({exc.strerror})") from None
    stage = FaceStage(FaceConfig(model_path=args.face_model, smoothing=args.smooth))
    asyncio.run(stage.start())
    try:
        for packet in _packets(path, is_image, args.max_frames):
            try:
                if is_image:          # a single image: IMAGE mode, no temporal state
                    packet.face = stage.tracker.detect(packet.frame)
                else:
                    stage.process(packet)
            except ValueError as exc:  # the tracker refuses frames it cannot use (e.g. smaller than 16 px)
                raise UserError(f"{path}, frame {packet.seq}: {exc}") from None
            face, ms = packet.face.face, packet.face.seconds * 1000.0
            if crops and face is not None:
                target = crops / f"crop_{packet.seq:06d}.png"
                if not cv2.imwrite(str(target), cv2.cvtColor(face.crop, cv2.COLOR_RGB2BGR)):
                    raise UserError(f"--save-crops: cannot write {target}")
            print(_json_line(packet.seq, face, ms) if args.json else _text_line(packet.seq, face, ms), flush=True)
    finally:
        asyncio.run(stage.close())
    return 0


def _packets(path: Path, is_image: bool, max_frames: int | None) -> Iterator[FramePacket]:
    if is_image:
        yield FramePacket(seq=0, frame=load_rgb(path), capture_time=time.perf_counter())
        return
    from stages.source_file import FileSource
    source = FileSource(path, max_frames=max_frames)
    try:
        while (packet := source.read()) is not None:
            yield packet
    finally:
        asyncio.run(source.close())


def _json_line(seq: int, face, ms: float) -> str:
    record = {"frame": seq, "face": face is not None, "yaw": None, "pitch": None, "roll": None,
              "camera": None, "crop_matrix": None, "ms": round(ms, 2)}
    if face is not None:
        record.update(yaw=round(face.yaw, 3), pitch=round(face.pitch, 3), roll=round(face.roll, 3),
                      camera=[round(float(v), 6) for v in face.camera],
                      crop_matrix=np.round(face.crop_matrix, 6).tolist())
    return json.dumps(record)


def _text_line(seq: int, face, ms: float) -> str:
    if face is None:
        return f"frame {seq:5d}: no face  ({ms:.1f} ms)"
    camera = " ".join(f"{v:.4g}" for v in face.camera)
    matrix = " ".join(f"{v:.4g}" for v in face.crop_matrix.reshape(-1))
    return (f"frame {seq:5d}: face  yaw {face.yaw:+6.1f}°  pitch {face.pitch:+6.1f}°  roll {face.roll:+6.1f}°  "
            f"({ms:.1f} ms)\n  camera [{camera}]\n  crop_matrix [{matrix}]")
