"""Command-line flags shared by `live3dpe adapt` and `live3dpe train`: weights, device, model size, losses."""
from __future__ import annotations

import argparse

from pipeline.errors import UserError
from pipeline.packets import CROP_SIZE
from threedpe.renderer import RenderOptions
from training.perceptual import MAE_LAYERS


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--weights", help="base weights (default: $LIVE3DPE_WEIGHTS, then the cache folder)")
    weights.add_argument("--random-weights", action="store_true",
                         help="random base weights: tests and benchmarks only (the result is no style)")
    parser.add_argument("--trust-pickle", action="store_true", help="allow checkpoints that need full unpickling")
    parser.add_argument("--teacher", metavar="PATH",
                        help="the frozen 3D teacher for L3D, e.g. a Live3D-LT checkpoint (default: the base weights, "
                             "run on each target with the target itself as the prompt)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1")
    parser.add_argument("--lr", type=float, help="AdamW learning rate")
    parser.add_argument("--batch", type=int, help="samples per step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--face-model", help="face_landmarker.task (default: $LIVE3DPE_FACE_MODEL, cache, download)")
    loss = add_size_arguments(parser)
    loss.add_argument("--perceptual-weights", metavar="PATH",
                      help="torchvision AlexNet weights (alexnet-owt-*.pth): use LPIPS-alex instead of MAE features")
    loss.add_argument("--lpips-heads", metavar="PATH", help="LPIPS v0.1 alex.pth linear heads (with --perceptual-weights)")


def add_size_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """What a step costs: model size, views and perceptual layers (also `benchmarks.adapt`'s); returns the
    losses group."""
    size = parser.add_argument_group("model size (defaults: the official 512² crops, 128² rays, 48+48 samples, SR)")
    size.add_argument("--resolution", type=int, default=CROP_SIZE, help="encoder input side (multiple of 32, 64..512)")
    size.add_argument("--neural-resolution", type=int, default=128, help="rays per side of the volume render")
    size.add_argument("--samples", type=int, default=48, help="coarse and importance samples per ray (each)")
    size.add_argument("--no-superresolution", action="store_true",
                      help="compare the raw neural renders only (no 512² superresolved image term)")
    loss = parser.add_argument_group("losses (paper Eq. 7)")
    loss.add_argument("--views", type=int, default=1, help="random cameras per sample for L3D (default 1)")
    loss.add_argument("--perceptual-layers", default=",".join(map(str, MAE_LAYERS)),
                      help="MAE blocks (0-11) whose features the default perceptual distance compares")
    return loss


def render_options(args: argparse.Namespace) -> RenderOptions:
    if args.neural_resolution < 8 or args.samples < 2 or args.views < 0:
        raise UserError("--neural-resolution must be at least 8, --samples at least 2, --views at least 0")
    return RenderOptions(neural_resolution=args.neural_resolution, depth_resolution=args.samples,
                         depth_resolution_importance=args.samples, superresolution=not args.no_superresolution)


def perceptual_layers(args: argparse.Namespace) -> tuple[int, ...]:
    try:
        layers = tuple(int(v) for v in str(args.perceptual_layers).split(",") if v.strip())
    except ValueError:
        raise UserError(f"--perceptual-layers must be comma-separated block numbers, not {args.perceptual_layers!r}") from None
    if not layers or min(layers) < 0 or max(layers) > 11:
        raise UserError("--perceptual-layers must name MAE blocks within 0..11")
    return layers


def load_teacher(args: argparse.Namespace, device):
    """The --teacher model (a Live3D-LT checkpoint runs without a prompt), or None for the base weights."""
    if not args.teacher:
        return None
    from pathlib import Path

    from threedpe.model import ThreeDPE

    if not Path(args.teacher).expanduser().is_file():
        raise UserError(f"--teacher: no such file: {args.teacher}")

    return ThreeDPE.load(args.teacher, device=device, trust_pickle=args.trust_pickle, allow_untrained_prompt=True)
