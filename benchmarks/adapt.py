"""Adaptation benchmark: seconds per `live3dpe adapt` step, and how many steps fit in the paper's 5 minutes.

`python -m benchmarks.adapt [--device cuda] [--pairs 10] [--steps 20 | --minutes 5] [--batch 2] [--json out.json]`
Random weights and random 512² pairs with a frontal camera (the timing depends on neither; no face stage
runs, which GPU machines lack) at the official size — 512² crops, 128² rays, 48+48 samples,
superresolution — unless reduced with --resolution/--neural-resolution/--samples. `--steps` projects the
5-minute count from the mean step time (the first step, which warms kernels up, left out); `--minutes 5`
runs the real budget and counts. The GPU suite (`benchmarks.gpu_suite`, section `adapt`) runs the same.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

from pipeline.errors import UserError
from pipeline.packets import CROP_SIZE
from training import options

PAPER_MINUTES = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--pairs", type=int, default=10, help="number of pairs (default 10, as in the paper)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=None, help="timed steps (default 20; 3 on CPU)")
    budget.add_argument("--minutes", type=float, help="run this long and count the steps instead")
    parser.add_argument("--batch", type=int, default=2, help="pairs per step (default 2)")
    parser.add_argument("--lora-rank", type=int, help="time LoRA adaptation of this rank instead of full E_p")
    options.add_size_arguments(parser)
    parser.add_argument("--tf32", action="store_true", help="allow TF32 on CUDA")
    parser.add_argument("--json", type=Path, help="write the results here")


def random_pairs(n: int, seed: int = 0) -> list:
    """`n` samples of random 512² images seen from the frontal camera."""
    from threedpe.camera import orbit_label
    from training.data import Sample

    rng = np.random.default_rng(seed)
    return [Sample(f"pair{i}", *(rng.integers(0, 256, (CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8) for _ in range(2)),
                   None, orbit_label(0.0)) for i in range(n)]


def measure(model, pairs: int, config, progress: bool = True) -> dict:
    """Adapt `model` (a ThreeDPE) on random pairs with `config` (an AdaptConfig): step times and the 5-minute count."""
    import torch

    from training.adapt import adapt

    samples = random_pairs(pairs)
    device = model.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = adapt(model, samples, samples[0].target, config, progress=progress)
    ends = [r["seconds"] for r in result.history]
    steps = [b - a for a, b in zip([0.0] + ends, ends)]
    timed = steps[1:] or steps
    mean = statistics.fmean(timed)
    measured = config.steps is None and config.minutes == PAPER_MINUTES
    render = config.render
    out = {"settings": {"pairs": pairs, "batch": config.batch, "lora_rank": config.lora_rank,
                        "resolution": config.resolution, "neural_resolution": render.neural_resolution,
                        "samples_per_ray": render.depth_resolution + render.depth_resolution_importance,
                        "superresolution": render.superresolution, "perceptual_layers": list(config.perceptual_layers),
                        "weights": model.source},
           "setup_s": round(result.setup_seconds, 3), "steps_run": len(steps),
           "step_s": {"median": statistics.median(timed), "mean": mean, "min": min(timed), "max": max(timed)},
           "steps_in_5_min": len(steps) if measured else int(PAPER_MINUTES * 60 // mean),
           "steps_in_5_min_measured": measured}
    if device.type == "cuda":
        out["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def main(args: argparse.Namespace) -> int:
    import torch

    from benchmarks.model import _device, machine_info
    from threedpe.model import ThreeDPE
    from training.adapt import AdaptConfig

    device = _device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
    if args.pairs < 1:
        raise UserError("--pairs must be at least 1")
    steps = args.steps if args.steps is not None else (None if args.minutes else (20 if device.type == "cuda" else 3))
    try:
        config = AdaptConfig(steps=steps, minutes=args.minutes if steps is None else None, batch=args.batch,
                             lora_rank=args.lora_rank, resolution=args.resolution, render=options.render_options(args),
                             views=args.views, perceptual_layers=options.perceptual_layers(args)).validated()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    result = {"machine": machine_info(device), **measure(ThreeDPE.random(seed=0, device=device), args.pairs, config)}
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
