"""Adaptation benchmark: seconds per `live3dpe adapt` step, and how many steps fit in the paper's 5 minutes.

`python -m benchmarks.adapt [--device cuda] [--pairs 10] [--steps 20 | --minutes 5] [--batch 2] [--json out.json]`
Random weights (the timing does not depend on the values) at the official size — 512² crops, 128² rays,
48+48 samples, superresolution — unless reduced with --resolution/--neural-resolution/--samples. Pairs are
the official EG3D crops of ../shared (inputs, their prompts as targets) when present, else random images;
the camera is frontal, so no face stage runs (GPU machines have no MediaPipe). `--steps` projects the
5-minute count from the mean step time; `--minutes 5` runs the real budget and counts.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

from benchmarks.model import _device, machine_info
from pipeline.errors import UserError
from pipeline.packets import CROP_SIZE

PAPER_MINUTES = 5.0
SHARED_CROPS = Path(__file__).resolve().parents[2] / "shared" / "images" / "eg3d_crops"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--pairs", type=int, default=10, help="number of pairs (default 10, as in the paper)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=None, help="timed steps (default 20; 3 on CPU)")
    budget.add_argument("--minutes", type=float, help="run this long and count the steps instead")
    parser.add_argument("--batch", type=int, default=2, help="pairs per step (default 2)")
    parser.add_argument("--lora-rank", type=int, help="time LoRA adaptation of this rank instead of full E_p")
    parser.add_argument("--resolution", type=int, default=CROP_SIZE)
    parser.add_argument("--neural-resolution", type=int, default=128)
    parser.add_argument("--samples", type=int, default=48, help="coarse and importance samples per ray (each)")
    parser.add_argument("--no-superresolution", action="store_true")
    parser.add_argument("--perceptual-layers", default="2,5,8,11", help="MAE blocks of the perceptual distance")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 on CUDA")
    parser.add_argument("--json", type=Path, help="write the results here")


def benchmark_pairs(n: int) -> list:
    """`n` samples: the official crops (cycled) when ../shared is beside the repo, else random images."""
    from threedpe.camera import orbit_label
    from training.data import Sample

    camera = orbit_label(0.0)
    files = sorted(SHARED_CROPS.glob("input_*.png")) if SHARED_CROPS.is_dir() else []
    samples = []
    rng = np.random.default_rng(0)
    for i in range(n):
        if files:
            from stages.source_image import load_rgb
            path = files[i % len(files)]
            image, target = load_rgb(path), load_rgb(path.with_name(path.name.replace("input", "prompt")))
        else:
            image, target = (rng.integers(0, 256, (CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8) for _ in range(2))
        samples.append(Sample(f"pair{i}", image, target, None, camera))
    return samples


def run_benchmark(args: argparse.Namespace) -> dict:
    import torch

    from threedpe.model import ThreeDPE
    from threedpe.renderer import RenderOptions
    from training.adapt import AdaptConfig, adapt

    device = _device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
    steps = args.steps if args.steps is not None else (None if args.minutes else (20 if device.type == "cuda" else 3))
    render = RenderOptions(neural_resolution=args.neural_resolution, depth_resolution=args.samples,
                           depth_resolution_importance=args.samples, superresolution=not args.no_superresolution)
    try:
        layers = tuple(int(v) for v in args.perceptual_layers.split(","))
        config = AdaptConfig(steps=steps, minutes=args.minutes if steps is None else None, batch=args.batch,
                             lora_rank=args.lora_rank, resolution=args.resolution, render=render,
                             perceptual_layers=layers).validated()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.pairs < 1:
        raise UserError("--pairs must be at least 1")
    samples = benchmark_pairs(args.pairs)
    base = ThreeDPE.random(seed=0, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = adapt(base, samples, samples[0].target, config)
    seconds = [b["seconds"] - a["seconds"] for a, b in zip([{"seconds": 0.0}] + result.history, result.history)]
    timed = seconds[1:] or seconds                          # the first step warms up kernels and allocators
    mean = statistics.fmean(timed)
    out = {"machine": machine_info(device),
           "settings": {"pairs": args.pairs, "batch": config.batch, "lora_rank": config.lora_rank,
                        "resolution": config.resolution, "neural_resolution": render.neural_resolution,
                        "samples_per_ray": 2 * render.depth_resolution, "superresolution": render.superresolution,
                        "perceptual_layers": list(config.perceptual_layers),
                        "weights": "random (ThreeDPE.random)"},
           "setup_s": round(result.setup_seconds, 3), "steps_run": len(seconds),
           "step_s": {"median": statistics.median(timed), "mean": mean, "min": min(timed), "max": max(timed)},
           "steps_in_5_min": (len(seconds) if args.minutes == PAPER_MINUTES
                              else int(PAPER_MINUTES * 60 // mean)),
           "steps_in_5_min_measured": args.minutes == PAPER_MINUTES}
    if device.type == "cuda":
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return out


def main(args: argparse.Namespace) -> int:
    result = run_benchmark(args)
    m = result["machine"]
    print(f"adapt on {m.get('gpu') or m['cpu']}: {result['step_s']['median']:.3f} s per step (median of "
          f"{result['steps_run']}), setup {result['setup_s']:.1f} s; {result['steps_in_5_min']} steps in 5 minutes"
          f"{'' if result['steps_in_5_min_measured'] else ' (projected)'}")
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.adapt", description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        sys.exit(main(parser.parse_args()))
    except UserError as exc:
        print(f"benchmarks.adapt: error: {exc}", file=sys.stderr)
        sys.exit(2)
