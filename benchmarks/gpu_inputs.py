"""Inputs for `benchmarks.gpu_suite`, prepared on a CPU machine and carried to the GPU machine (which has no
MediaPipe and no PyAV): talking-face clips decoded and face-tracked here, stored as JPEG frames + tracks in
one compact .npz; plus a copy of the conformance bundle.

    python -m benchmarks.gpu_inputs --out gpu_inputs [--clips d10,s18,d3] [--frames 90]

writes gpu_inputs/clips.npz (≤ 64 MiB with the bundle; checked) and gpu_inputs/3dpe_v1/. The suite reads
the frames back with OpenCV and replays the stored tracks as the face stage's output, so its end-to-end
figures exclude decoding and face tracking (both measured on CPU elsewhere: docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CARRY_LIMIT = 64 * 2**20
TRACK_FIELDS = ("crop_matrix", "crop_inverse", "camera", "pose", "box")


def _shared() -> Path:
    return Path(os.environ.get("LIVE3DPE_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def prepare(clips: list[Path], frames: int, quality: int = 85) -> dict[str, np.ndarray]:
    """Decode + track the first `frames` frames of each clip → arrays for `np.savez` (no pickled objects)."""
    from stages.face import FaceConfig, FaceTracker
    from stages.source_file import FileSource

    out: dict[str, np.ndarray] = {"clip_names": np.array([c.stem for c in clips])}
    for index, clip in enumerate(clips):
        source, tracker = FileSource(clip, max_frames=frames), FaceTracker(FaceConfig(smoothing=True))
        jpegs, tracks, found, fps = [], {k: [] for k in TRACK_FIELDS}, [], source.fps
        try:
            while (packet := source.read()) is not None:
                result = tracker.track(packet.frame, packet.seconds or packet.seq / fps)
                ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(packet.frame, cv2.COLOR_RGB2BGR),
                                        [cv2.IMWRITE_JPEG_QUALITY, quality])
                if not ok:
                    raise RuntimeError(f"{clip}: JPEG encoding failed")
                jpegs.append(jpeg.reshape(-1))
                face = result.face
                found.append(face is not None)
                values = (face.crop_matrix, face.crop_inverse, face.camera, (face.yaw, face.pitch, face.roll),
                          face.box) if face is not None else (np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(25),
                                                               (0.0, 0.0, 0.0), (0.0,) * 4)
                for name, value in zip(TRACK_FIELDS, values):
                    tracks[name].append(np.asarray(value, np.float64))
        finally:
            tracker.close()
            import asyncio
            asyncio.run(source.close())
        out[f"c{index}_jpeg"] = np.concatenate(jpegs)
        out[f"c{index}_jpeg_offsets"] = np.cumsum([0] + [len(j) for j in jpegs])
        out[f"c{index}_found"] = np.array(found)
        out[f"c{index}_fps"] = np.array(fps)
        for name, values in tracks.items():
            out[f"c{index}_{name}"] = np.stack(values)
    return out


@dataclass
class PreparedClip:
    """One clip as the suite replays it: RGB frames and, per frame, the stored track (or None)."""

    name: str
    fps: float
    frames: list[np.ndarray]
    faces: list[dict | None]


def load(path: str | Path) -> list[PreparedClip]:
    """Read a clips.npz written by `prepare` (OpenCV decodes the JPEGs; nothing is unpickled)."""
    clips = []
    with np.load(path, allow_pickle=False) as data:
        for index, name in enumerate(data["clip_names"]):
            blob, offsets = data[f"c{index}_jpeg"], data[f"c{index}_jpeg_offsets"]
            frames = [cv2.cvtColor(cv2.imdecode(blob[a:b], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                      for a, b in zip(offsets[:-1], offsets[1:])]
            tracks = {k: data[f"c{index}_{k}"] for k in TRACK_FIELDS}
            faces = [{k: tracks[k][i] for k in TRACK_FIELDS} if ok else None
                     for i, ok in enumerate(data[f"c{index}_found"])]
            clips.append(PreparedClip(str(name), float(data[f"c{index}_fps"]), frames, faces))
    return clips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_inputs", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write clips.npz and 3dpe_v1/ into")
    parser.add_argument("--clips", default="d10,s18,d3", help="clip names in ../shared/clips (default d10,s18,d3)")
    parser.add_argument("--frames", type=int, default=90, help="frames per clip (default 90; the suite loops them)")
    parser.add_argument("--no-bundle", action="store_true", help="do not copy the conformance bundle")
    parser.add_argument("--shared", type=Path, help="reference folder (default: $LIVE3DPE_SHARED, else ../shared)")
    args = parser.parse_args(argv)
    shared = args.shared or _shared()
    clips = [shared / "clips" / f"{name.strip()}.mp4" for name in args.clips.split(",") if name.strip()]
    missing = [str(c) for c in clips if not c.is_file()]
    if missing or args.frames < 1:
        print(f"benchmarks.gpu_inputs: error: {'missing ' + ', '.join(missing) if missing else '--frames >= 1'}",
              file=sys.stderr)
        return 2
    model = shared / "models" / "face_landmarker.task"
    if model.is_file():
        os.environ.setdefault("LIVE3DPE_FACE_MODEL", str(model))
    args.out.mkdir(parents=True, exist_ok=True)
    partial = args.out / "clips.partial.npz"
    from pipeline.errors import UserError
    try:
        np.savez(partial, **prepare(clips, args.frames))
    except UserError as exc:
        partial.unlink(missing_ok=True)
        print(f"benchmarks.gpu_inputs: error: {exc}", file=sys.stderr)
        return 2
    partial.replace(args.out / "clips.npz")
    bundle = shared / "conformance" / "3dpe_v1"
    if not args.no_bundle and not (bundle / "vectors.npz").is_file():
        print(f"note: no conformance bundle in {bundle}: the suite's conformance section will be skipped")
    elif not args.no_bundle:
        (args.out / "3dpe_v1").mkdir(exist_ok=True)
        for name in ("manifest.json", "vectors.npz"):          # contents only: ../shared is read-only
            shutil.copyfile(bundle / name, args.out / "3dpe_v1" / name)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out} ({total / 2**20:.1f} MiB; the carry limit is {CARRY_LIMIT / 2**20:.0f} MiB)")
    return 0 if total <= CARRY_LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
