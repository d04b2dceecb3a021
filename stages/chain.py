"""The edit chain face → edit → render → composite, and its command-line flags (shared by `run`, `serve`, `cam`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from pipeline.config import (CAMERA_LIMITS, COMPOSITE_MODES, FACE_CHOICES, FACE_LOST_POLICIES, EditControls,
                             EditSettings, EngineConfig)
from pipeline.errors import UserError
from pipeline.stage import Stage
from stages.composite import CompositeStage
from stages.edit.engine import Engine
from stages.edit.registry import ENGINES, create_engine
from stages.edit.stage import EditStage, style_prompt
from stages.render import RenderStage
from threedpe.backends import ACCELERATIONS, BACKENDS

if TYPE_CHECKING:
    from stages.face import FaceConfig

__all__ = ["add_edit_arguments", "style_setting", "settings_from_args", "engine_config_from_args", "face_config_from_args",
           "create_engine", "build_edit_stages", "build_stages_from_args"]


def add_edit_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = EditSettings()
    g = parser.add_argument_group("editing")
    g.add_argument("--engine", choices=ENGINES, default=None,
                   help="editing engine (default: classic; 3dpe when --weights or --random-weights is given)")
    g.add_argument("--weights", metavar="PATH", help="3DPE checkpoint (3dpe.pt) for the 3dpe engine")
    g.add_argument("--random-weights", action="store_true",
                   help="3dpe with random weights, for tests/benchmarks only (output is labelled, not an edit)")
    g.add_argument("--trust-pickle", action="store_true", help="allow checkpoints that need full unpickling")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 (3dpe engine)")
    g.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32", help="3dpe autocast precision")
    g.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="3dpe: torch (default), or its ONNX export through onnxruntime or TensorRT")
    g.add_argument("--accel", choices=ACCELERATIONS, default="eager",
                   help="3dpe torch backend: eager (default), cuda-graphs or compile")
    g.add_argument("--max-batch", type=int, default=1,
                   help="3dpe: streams sharing the model encode and render in batches of up to this many")
    g.add_argument("--onnx-dir", metavar="DIR", help="3dpe exported backends: the ONNX export folder")
    g.add_argument("--triplane-ema", type=float, default=EngineConfig().triplane_ema,
                   help="3dpe temporal smoothing: weight of the previous triplane (0 = off)")
    g.add_argument("--style", default=defaults.style,
                   help="preset name, free text (classic), an image path or image:<path>, or none")
    g.add_argument("--yaw", type=float, default=0.0, help=f"virtual camera yaw offset, degrees, within ±{CAMERA_LIMITS['yaw']:g} "
                   "(+ = the head turns towards image left)")
    g.add_argument("--pitch", type=float, default=0.0, help=f"virtual camera pitch offset, degrees, within ±{CAMERA_LIMITS['pitch']:g} (+ = chin up)")
    g.add_argument("--roll", type=float, default=0.0, help=f"virtual camera roll offset, degrees, within ±{CAMERA_LIMITS['roll']:g}")
    g.add_argument("--zoom", type=float, default=1.0, help="virtual camera zoom (0.25..4)")
    g.add_argument("--look-at-lens", action="store_true", help="render from the frontal camera, not the tracked one")
    g.add_argument("--mode", choices=COMPOSITE_MODES, default=defaults.mode, help="how the edit is composited")
    g.add_argument("--on-face-lost", choices=FACE_LOST_POLICIES, default=defaults.on_face_lost,
                   help="no face: hold the last edit then fade to the original, or blur the frame")
    g.add_argument("--hold", type=float, default=defaults.hold_seconds, help="seconds to hold the last edit")
    g.add_argument("--fade", type=float, default=defaults.fade_seconds, help="seconds to fade to the original")
    g.add_argument("--grid-yaws", default=",".join(f"{y:g}" for y in defaults.grid_yaws),
                   help="yaw offsets of the grid mode, comma-separated degrees (--grid-yaws=-25,0,25)")
    g.add_argument("--faces", choices=FACE_CHOICES, default=defaults.faces,
                   help="edit one face (the largest, or --face-index) or all faces in the frame, each tracked on its own")
    g.add_argument("--face-index", type=int, default=None, metavar="N",
                   help="the face to edit, counted from 0 left to right (default: the largest)")
    g.add_argument("--no-smooth", action="store_true", help="no temporal smoothing of the face track")
    g.add_argument("--face-model", metavar="PATH",
                   help="MediaPipe face_landmarker.task (default: $LIVE3DPE_FACE_MODEL, the user cache, or download)")
    g.add_argument("--segmenter-model", metavar="PATH",
                   help="MediaPipe selfie_segmenter.tflite for the classic engine (default: $LIVE3DPE_SEGMENTER_MODEL, "
                        "the user cache, or download)")


def style_setting(style: str) -> str:
    """An `EditSettings.style` for a command-line style: an existing file becomes "image:<path>"."""
    if style_prompt(style) is not None and not style.startswith("image:") and Path(style).is_file():
        return f"image:{style}"
    return style


def settings_from_args(args: argparse.Namespace) -> EditSettings:
    """The settings the flags ask for; camera offsets beyond the range the engines render well are clamped to it,
    and a line on stderr says so."""
    style = style_setting(args.style)
    try:
        grid = tuple(float(y) for y in str(args.grid_yaws).split(",") if y.strip())
        asked = EditSettings(style=style, yaw=args.yaw, pitch=args.pitch, roll=args.roll, zoom=args.zoom,
                             look_at_lens=args.look_at_lens, mode=args.mode, on_face_lost=args.on_face_lost,
                             faces=args.faces, hold_seconds=max(args.hold, 0.0), fade_seconds=max(args.fade, 0.0),
                             grid_yaws=grid or (0.0,))
        settings = asked.validated().within_camera_limits()
    except ValueError as exc:
        raise UserError(f"bad edit setting: {exc}") from None
    clamped = asked.beyond_camera_limits()
    if clamped:
        limits = ", ".join(f"{axis} ±{limit:g}°" for axis, limit in CAMERA_LIMITS.items())
        print(f"note: the virtual camera renders well within {limits} (docs/quality.md); clamped "
              f"{', '.join(clamped)}", file=sys.stderr)
    return settings


def engine_config_from_args(args: argparse.Namespace) -> EngineConfig:
    wants_3dpe = bool(args.weights or args.random_weights)
    name = args.engine or ("3dpe" if wants_3dpe else "classic")
    if not 0.0 <= args.triplane_ema < 1.0:
        raise UserError("--triplane-ema must be within [0, 1)")
    if args.max_batch < 1:
        raise UserError("--max-batch must be at least 1")
    return EngineConfig(name=name, weights=args.weights, random_weights=args.random_weights, device=args.device,
                        precision=args.precision, backend=args.backend, accel=args.accel, max_batch=args.max_batch,
                        onnx_dir=args.onnx_dir, triplane_ema=args.triplane_ema, trust_pickle=args.trust_pickle,
                        segmenter_model=args.segmenter_model, face_model=args.face_model)


def face_config_from_args(args: argparse.Namespace) -> "FaceConfig":
    from stages.face import FaceConfig

    try:
        return FaceConfig(smoothing=not args.no_smooth, model_path=args.face_model, face_index=args.face_index).validated()
    except ValueError as exc:
        raise UserError(f"--face-index: {exc}") from None


def build_edit_stages(controls: EditControls, engine: Engine, face_config: "FaceConfig", live: bool = False,
                      on_error: Callable[[str], None] | None = None) -> list[Stage]:
    """[FaceStage, EditStage, RenderStage, CompositeStage] sharing `controls` (changeable while running).

    `live=True` for cameras/WebRTC: style changes and slow encoders never hold a frame up.
    """
    from stages.face import FaceStage

    return [FaceStage(face_config), EditStage(controls, engine, live=live, on_error=on_error),
            RenderStage(controls, engine), CompositeStage(controls)]


def build_stages_from_args(args: argparse.Namespace, live: bool = False) -> list[Stage]:
    """The chain for a command line; a style the engine cannot use is a UserError before any frame is read."""
    settings = settings_from_args(args)
    engine = create_engine(engine_config_from_args(args))
    try:
        engine.prepare(style_prompt(settings.style))           # cached by the engine: the stage reuses it
    except ValueError as exc:
        raise UserError(f"--style {args.style!r}: {exc}") from None
    return build_edit_stages(EditControls(settings), engine, face_config_from_args(args), live=live)
