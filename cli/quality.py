"""`live3dpe quality`: measure edits on clips the way the 3DPE paper does (identity, 3D consistency) plus change,
hair, flicker, background and pose; a table, JSON, a chart and a contact sheet."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.config import EngineConfig
from pipeline.errors import UserError
from quality.identity import IdentityMeter, PoseMeter
from quality.meter import IDENTITY_NOTE, QualityOptions, measure_clip
from quality.report import contact_sheet, plot, table
from stages.edit.registry import ENGINES
from stages.face import FaceConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", action="append", required=True, metavar="CLIP",
                        help="a video clip (give --input several times for several clips)")
    parser.add_argument("--engine", choices=ENGINES, default="classic")
    parser.add_argument("--weights", metavar="PATH", help="3DPE checkpoint for --engine 3dpe")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (3dpe engine)")
    parser.add_argument("--style", action="append", metavar="S",
                        help="preset, text, image path or none; several times for several styles; "
                             "'presets' for every preset and none (default: bronze statue)")
    parser.add_argument("--yaws", default="-20,0,20", help="virtual-camera yaw offsets, degrees (--yaws=-20,0,20)")
    parser.add_argument("--pitches", default="", help="pitch offsets measured at yaw 0, degrees (--pitches=-10,10)")
    parser.add_argument("--frames", type=int, default=60, help="frames read from each clip (default 60)")
    parser.add_argument("--stride", type=int, default=5, help="identity and pose on every Nth frame (default 5)")
    parser.add_argument("--json", metavar="FILE", help="write the results here")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (for docs/quality.md)")
    parser.add_argument("--plot", metavar="PNG", help="chart of the criteria against the targets")
    parser.add_argument("--sheet", metavar="PNG", help="contact sheet: input and edit at each yaw, per clip and style")
    parser.add_argument("--face-model", metavar="PATH", help="face_landmarker.task")
    parser.add_argument("--segmenter-model", metavar="PATH", help="selfie_segmenter.tflite")


def _styles(args: argparse.Namespace) -> list[str]:
    from stages.edit.classic import PRESETS

    styles = []
    for style in args.style or ["bronze statue"]:
        styles.extend(["none", *PRESETS] if style == "presets" else [style])
    return styles


def _degrees(text: str, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"{flag} must be comma-separated degrees, not {text!r}") from None


def _options(args: argparse.Namespace) -> QualityOptions:
    if args.frames < 2 or args.stride < 1:
        raise UserError("--frames must be at least 2 and --stride at least 1")
    return QualityOptions(yaws=_degrees(args.yaws, "--yaws"), pitches=_degrees(args.pitches, "--pitches"),
                          frames=args.frames, stride=args.stride, face_model=args.face_model,
                          segmenter_model=args.segmenter_model)


def _check_outputs(args: argparse.Namespace) -> None:
    """Fail before any work when a result cannot be written."""
    for path in (args.json, args.plot, args.sheet):
        if path and not Path(path).resolve().parent.is_dir():
            raise UserError(f"cannot write {path}: its folder does not exist")


def main(args: argparse.Namespace) -> int:
    clips = [Path(c) for c in args.input]
    for clip in clips:
        if not clip.is_file():
            raise UserError(f"input not found: {clip}")
    _check_outputs(args)
    options = _options(args)
    engine = EngineConfig(name=args.engine, weights=args.weights, device=args.device)
    if args.engine == "3dpe" and not args.weights:
        raise UserError("--engine 3dpe needs --weights 3dpe.pt (random weights make no edit to measure)")
    identity = IdentityMeter(options.yunet_model, options.sface_model)
    pose = PoseMeter(FaceConfig(smoothing=False, model_path=args.face_model))
    results, sheet = [], []
    try:
        for clip in clips:
            for style in _styles(args):
                try:
                    result, frames = measure_clip(clip, style, engine, options, identity, pose)
                except ValueError as exc:                      # a style the engine refuses
                    raise UserError(f"--style {style!r}: {exc}") from None
                results.append(result)
                if frames["input"]:
                    seq = sorted(frames["input"])[len(frames["input"]) // 2]
                    sheet.append((f"{clip.stem} {style}", [frames["input"][seq]] +
                                  [frames[v][seq] for v in sorted(options.views()) if seq in frames[v]]))
    finally:
        pose.close()
    print(table(results, markdown=args.markdown))
    print(IDENTITY_NOTE)
    if args.json:
        Path(args.json).write_text(json.dumps({"note": IDENTITY_NOTE, "results": [r.as_dict() for r in results]},
                                              indent=2))
    if args.plot:
        plot(results, Path(args.plot))
    if args.sheet and sheet:
        contact_sheet(sheet, Path(args.sheet))
    return 0
