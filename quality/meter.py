"""Run the real chain (face → edit → render → composite) over a clip at each requested view and measure the edit.

Per clip and style (`ClipQuality`):
- `id_t`: SFace cosine, input frame vs its edit at yaw 0 (the paper's ID column, with SFace for ArcFace);
- `cons3d`: SFace cosine between the edits of one frame at the two most distant yaws (the paper's 3D column);
- `change` / `hair`: mean absolute difference, edit vs input, in the face box / the hair above it (0–255);
- `flicker`: frame-to-frame difference in the face box, output over input (1.0: the edit adds none);
- `background`: PSNR of the edit vs the input away from the person (dB, over all yaws);
- `pose`: the output's head pose measured by our face stage, minus the input's, at every view (and the SFace
  cosine of input and edit there: how far the view can turn before the person is lost).
A face the identity network cannot find in an edit scores 0 (and is counted in `*_missed`).
"""
from __future__ import annotations

import asyncio
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from pipeline.config import EditControls, EditSettings, EngineConfig
from pipeline.graph import Graph
from pipeline.packets import FramePacket
from pipeline.stage import Sink, Stage
from quality.identity import IdentityMeter, PoseMeter
from quality.regions import Regions, frame_regions
from stages.chain import build_edit_stages, create_engine, style_setting
from stages.face import FaceConfig
from stages.person_mask import PersonSegmenter
from stages.source_file import FileSource

IDENTITY_NOTE = ("identity: SFace (OpenCV Zoo) cosine; the paper uses ArcFace, which is not available offline, "
                 "so values are comparable in kind, not in scale")


View = tuple[float, float]          # virtual-camera (yaw, pitch) offsets, degrees


@dataclass
class QualityOptions:
    """What to measure: the yaws and pitches (the straight view is always measured; pitches at yaw 0), frames
    read from the clip, every `stride`-th frame for identity and pose, the models."""

    yaws: tuple[float, ...] = (-20.0, 0.0, 20.0)
    pitches: tuple[float, ...] = ()
    frames: int = 60
    stride: int = 5
    face_model: str | None = None
    segmenter_model: str | None = None
    sface_model: str | None = None
    yunet_model: str | None = None

    def views(self) -> list[View]:
        """(0, 0) first, then each yaw, then each pitch."""
        turns = [(y, 0.0) for y in sorted(set(self.yaws)) if y] + [(0.0, p) for p in sorted(set(self.pitches)) if p]
        return [(0.0, 0.0), *turns]


def view_name(view: View) -> str:
    yaw, pitch = view
    return f"yaw {yaw:+g}" if not pitch else f"pitch {pitch:+g}" if not yaw else f"yaw {yaw:+g} pitch {pitch:+g}"


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
    # view name → requested and measured yaw/pitch offsets, frames measured, SFace cosine of input and edit
    pose: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def pose_error(self) -> float | None:
        """Mean distance between requested and measured (yaw, pitch) over the turned views, degrees."""
        errors = [np.hypot(p["yaw"] - p["asked_yaw"], p["pitch"] - p["asked_pitch"])
                  for p in self.pose.values() if p["asked_yaw"] or p["asked_pitch"]]
        return float(np.mean(errors)) if errors else None

    def as_dict(self) -> dict:
        return {**asdict(self), "pose_error": self.pose_error}


class _Recorder(Sink):
    """Keeps what the meter needs from one run: sampled inputs and outputs, and running sums."""

    name = "meter"

    def __init__(self, straight: bool, stride: int, regions: dict[int, Regions], segmenter: PersonSegmenter | None):
        self.straight, self.stride, self.regions, self.segmenter = straight, stride, regions, segmenter
        self.inputs: dict[int, np.ndarray] = {}
        self.outputs: dict[int, np.ndarray] = {}
        self.sums = {k: 0.0 for k in ("change", "change_n", "hair", "hair_n", "flicker_out", "flicker_in",
                                      "bg_sq", "bg_n")}
        self._previous: tuple[np.ndarray, np.ndarray] | None = None

    def write(self, packet: FramePacket) -> None:
        frame, out = packet.frame, packet.out_frame
        face = packet.face.face if packet.face is not None else None
        if self.segmenter is not None and face is not None:          # the straight run measures the input
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
        if not self.straight:
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


ChainFactory = Callable[[str, View], list[Stage]]


def edit_chain(engine: EngineConfig, options: QualityOptions) -> ChainFactory:
    """The product's chain (face → edit → render → composite) for a style and a view, as `run` builds it."""
    def build(style: str, view: View) -> list[Stage]:
        settings = EditSettings(style=style_setting(style), yaw=view[0], pitch=view[1]).validated()
        return build_edit_stages(EditControls(settings), create_engine(engine),
                                 FaceConfig(model_path=options.face_model), live=False)
    return build


def measure_clip(clip: Path, style: str, engine: EngineConfig, options: QualityOptions,
                 identity: IdentityMeter, pose: PoseMeter, progress: bool = True,
                 chain: ChainFactory | None = None) -> tuple[ClipQuality, dict]:
    """The quality of `style` on `clip`, and the sampled frames ({"input": {seq: rgb}, view: {seq: rgb}}).
    `chain` replaces the product's chain (tests measure known edits with it)."""
    chain = chain or edit_chain(engine, options)
    views = options.views()
    regions: dict[int, Regions] = {}
    recorders: dict[View, _Recorder] = {}
    with PersonSegmenter(options.segmenter_model) as segmenter:
        for view in tqdm(views, desc=f"{clip.stem} · {style}", unit="view", disable=not progress, leave=False):
            straight = view == (0.0, 0.0)
            recorders[view] = _Recorder(straight, options.stride, regions, segmenter if straight else None)
            graph = Graph(FileSource(clip, max_frames=options.frames), chain(style, view), recorders[view],
                          name="quality")
            asyncio.run(graph.run())
    base = recorders[(0.0, 0.0)]
    samples = sorted(base.inputs)
    input_ids = {s: identity.embedding(base.inputs[s]) for s in samples}
    samples = [s for s in samples if input_ids[s] is not None and s in regions]

    def cosine(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
        return None if a is None or b is None else identity.cosine(a, b)

    edit_ids = {view: {s: identity.embedding(recorders[view].outputs[s]) for s in samples
                       if s in recorders[view].outputs} for view in views}
    id_t = [cosine(input_ids[s], edit_ids[(0.0, 0.0)].get(s)) for s in samples]
    turned = [v for v in views if not v[1]]
    lo, hi = min(turned), max(turned)                        # the two most distant yaws
    cons = [cosine(edit_ids[lo].get(s), edit_ids[hi].get(s)) for s in samples] if lo != hi else []
    poses = {}
    for view in views:
        deltas = [d for s in samples if (d := _pose_delta(pose, base.inputs[s], recorders[view].outputs.get(s)))]
        if deltas:
            poses[view_name(view)] = {
                "asked_yaw": view[0], "asked_pitch": view[1],
                "yaw": float(np.mean([d[0] for d in deltas])), "pitch": float(np.mean([d[1] for d in deltas])),
                "frames": len(deltas),
                "identity": _mean_scored([cosine(input_ids[s], edit_ids[view].get(s)) for s in samples])}
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
    frames.update({view: {k: recorders[view].outputs[k] for k in samples if k in recorders[view].outputs}
                   for view in views})
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
