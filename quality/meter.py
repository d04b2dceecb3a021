"""Run the real chain (face → edit → render → composite) over a clip at each requested yaw and measure the edit.

Per clip and style (`ClipQuality`):
- `id_t`: SFace cosine, input frame vs its edit at yaw 0 (the paper's ID column, with SFace for ArcFace);
- `cons3d`: SFace cosine between the edits of one frame at the two most distant yaws (the paper's 3D column);
- `change` / `hair`: mean absolute difference, edit vs input, in the face box / the hair above it (0–255);
- `flicker`: frame-to-frame difference in the face box, output over input (1.0: the edit adds none);
- `background`: PSNR of the edit vs the input away from the person (dB, over all yaws);
- `pose`: the output's head pose measured by our face stage, minus the input's, at every yaw.
A face the identity network cannot find in an edit scores 0 (and is counted in `*_missed`).
"""
from __future__ import annotations

import asyncio
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.config import EditControls, EditSettings, EngineConfig
from pipeline.graph import Graph
from pipeline.packets import FramePacket
from pipeline.stage import Sink
from quality.identity import IdentityMeter, PoseMeter
from quality.regions import Regions, frame_regions
from stages.chain import build_edit_stages, create_engine, style_setting
from stages.face import FaceConfig
from stages.person_mask import PersonSegmenter
from stages.source_file import FileSource

IDENTITY_NOTE = ("identity: SFace (OpenCV Zoo) cosine; the paper uses ArcFace, which is not available offline, "
                 "so values are comparable in kind, not in scale")


@dataclass
class QualityOptions:
    """What to measure: the yaws (0 is always measured), frames read from the clip, every `stride`-th frame
    for identity and pose, the models."""

    yaws: tuple[float, ...] = (-20.0, 0.0, 20.0)
    frames: int = 60
    stride: int = 5
    face_model: str | None = None
    segmenter_model: str | None = None
    sface_model: str | None = None
    yunet_model: str | None = None

    def all_yaws(self) -> list[float]:
        return sorted(set(self.yaws) | {0.0}, key=lambda y: (y != 0.0, y))      # yaw 0 first


@dataclass
class ClipQuality:
    clip: str
    style: str
    engine: str
    frames: int
    id_t: float | None
    id_t_missed: int
    cons3d: float | None
    cons3d_missed: int
    change: float | None
    hair: float | None
    flicker: float | None
    background_db: float | None
    pose: dict[str, dict[str, float]] = field(default_factory=dict)   # "yaw" → measured Δyaw, Δpitch

    @property
    def pose_error(self) -> float | None:
        """Mean |measured − requested| yaw over the non-zero yaws, degrees."""
        errors = [abs(p["yaw"] - float(y)) for y, p in self.pose.items() if float(y) != 0.0]
        return float(np.mean(errors)) if errors else None

    def as_dict(self) -> dict:
        return {**asdict(self), "pose_error": self.pose_error}


class _Recorder(Sink):
    """Keeps what the meter needs from one run: sampled inputs and outputs, and running sums."""

    name = "meter"

    def __init__(self, yaw: float, stride: int, regions: dict[int, Regions], segmenter: PersonSegmenter | None):
        self.yaw, self.stride, self.regions, self.segmenter = yaw, stride, regions, segmenter
        self.inputs: dict[int, np.ndarray] = {}
        self.outputs: dict[int, np.ndarray] = {}
        self.sums = {k: 0.0 for k in ("change", "change_n", "hair", "hair_n", "flicker_out", "flicker_in",
                                      "bg_sq", "bg_n")}
        self._previous: tuple[np.ndarray, np.ndarray] | None = None

    def write(self, packet: FramePacket) -> None:
        frame, out = packet.frame, packet.out_frame
        face = packet.face.face if packet.face is not None else None
        if self.segmenter is not None and face is not None:            # the yaw-0 run measures the input
            self.regions[packet.seq] = frame_regions(face, self.segmenter.segment(frame))
        if packet.seq % self.stride == 0:
            self.inputs[packet.seq] = frame
            self.outputs[packet.seq] = out
        regions = self.regions.get(packet.seq)
        previous, self._previous = self._previous, (frame, out)
        if regions is None or out.shape != frame.shape:
            return
        diff = np.abs(out.astype(np.float32) - frame.astype(np.float32))
        s = self.sums
        s["bg_sq"] += float((diff[regions.background] ** 2).sum())
        s["bg_n"] += int(regions.background.sum()) * 3
        if self.yaw != 0.0:
            return
        s["change"] += float(diff[regions.face].sum())
        s["change_n"] += int(regions.face.sum()) * 3
        if regions.hair is not None:
            s["hair"] += float(diff[regions.hair].sum())
            s["hair_n"] += int(regions.hair.sum()) * 3
        if previous is not None and previous[0].shape == frame.shape:
            box = regions.face
            s["flicker_out"] += float(np.abs(out[box].astype(np.float32) - previous[1][box]).sum())
            s["flicker_in"] += float(np.abs(frame[box].astype(np.float32) - previous[0][box]).sum())


def _run(clip: Path, style: str, engine: EngineConfig, yaw: float, options: QualityOptions,
         recorder: _Recorder) -> None:
    settings = EditSettings(style=style_setting(style), yaw=yaw).validated()
    stages = build_edit_stages(EditControls(settings), create_engine(engine),
                               FaceConfig(model_path=options.face_model), live=False)
    graph = Graph(FileSource(clip, max_frames=options.frames), stages, recorder, name="quality")
    asyncio.run(graph.run())


def measure_clip(clip: Path, style: str, engine: EngineConfig, options: QualityOptions,
                 identity: IdentityMeter, pose: PoseMeter, progress: bool = True) -> tuple[ClipQuality, dict]:
    """The quality of `style` on `clip`, and the sampled frames ({"input": {seq: rgb}, yaw: {seq: rgb}})."""
    yaws = options.all_yaws()
    regions: dict[int, Regions] = {}
    recorders: dict[float, _Recorder] = {}
    with PersonSegmenter(options.segmenter_model) as segmenter:
        for yaw in tqdm(yaws, desc=f"{clip.stem} · {style}", unit="yaw", disable=not progress, leave=False):
            recorders[yaw] = _Recorder(yaw, options.stride, regions, segmenter if yaw == 0.0 else None)
            _run(clip, style, engine, yaw, options, recorders[yaw])
    base = recorders[0.0]
    samples = sorted(base.inputs)
    input_ids = {s: identity.embedding(base.inputs[s]) for s in samples}
    samples = [s for s in samples if input_ids[s] is not None and s in regions]

    def cosine(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
        return None if a is None or b is None else identity.cosine(a, b)

    edit_ids = {yaw: {s: identity.embedding(recorders[yaw].outputs[s]) for s in samples if s in recorders[yaw].outputs}
                for yaw in yaws}
    id_t = [cosine(input_ids[s], edit_ids[0.0].get(s)) for s in samples]
    lo, hi = min(yaws), max(yaws)
    cons = [cosine(edit_ids[lo].get(s), edit_ids[hi].get(s)) for s in samples] if lo != hi else []
    poses = {}
    for yaw in yaws:
        deltas = [d for s in samples if (d := _pose_delta(pose, base.inputs[s], recorders[yaw].outputs.get(s)))]
        if deltas:
            poses[f"{yaw:g}"] = {"yaw": float(np.mean([d[0] for d in deltas])),
                                 "pitch": float(np.mean([d[1] for d in deltas])), "frames": len(deltas)}
    s = base.sums
    bg_sq = sum(r.sums["bg_sq"] for r in recorders.values())
    bg_n = sum(r.sums["bg_n"] for r in recorders.values())
    result = ClipQuality(
        clip=clip.stem, style=style, engine=engine.name, frames=len(regions),
        id_t=_mean_scored(id_t), id_t_missed=sum(v is None for v in id_t),
        cons3d=_mean_scored(cons), cons3d_missed=sum(v is None for v in cons),
        change=s["change"] / s["change_n"] if s["change_n"] else None,
        hair=s["hair"] / s["hair_n"] if s["hair_n"] else None,
        flicker=s["flicker_out"] / s["flicker_in"] if s["flicker_in"] > 0 else None,
        background_db=_psnr(bg_sq / bg_n) if bg_n else None,
        pose=poses)
    frames = {"input": {k: base.inputs[k] for k in samples}}
    frames.update({yaw: {k: recorders[yaw].outputs[k] for k in samples if k in recorders[yaw].outputs} for yaw in yaws})
    return result, frames


def _mean_scored(values: list[float | None]) -> float | None:
    """Mean with misses scored 0; None when nothing was measured."""
    return float(np.mean([0.0 if v is None else v for v in values])) if values else None


def _pose_delta(meter: PoseMeter, before: np.ndarray, after: np.ndarray | None) -> tuple[float, float] | None:
    if after is None:
        return None
    a, b = meter.pose(before), meter.pose(after)
    return None if a is None or b is None else (b[0] - a[0], b[1] - a[1])


def _psnr(mse: float) -> float:
    return math.inf if mse <= 0 else 10.0 * math.log10(255.0 ** 2 / mse)
