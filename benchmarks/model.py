"""Model benchmark: encoder, prompt encoding, volume render (128², 48+48 samples) and superresolution timed apart.

`python -m benchmarks.model [--device cpu|cuda] [--precision fp32|fp16|bf16] [--repeat N] [--json out.json]`
Random weights (`ThreeDPE.random`): the timing does not depend on the values. Warm-up, then the median of
N runs per part; prints a table naming the machine and writes the same numbers as JSON (and a bar plot).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from pipeline.errors import UserError
from threedpe.camera import eural_to_camera_label
from threedpe.model import ThreeDPE
from threedpe.renderer import RenderOptions

PAPER_MS_PER_IMAGE = 40.0        # 3DPE paper §4.1: ~0.04 s per image on one NVIDIA A6000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32",
                        help="autocast precision of encoder and render (the SR always runs fp32); fp16 on CUDA only")
    parser.add_argument("--repeat", type=int, help="timed runs per part (default 3 on CPU, 20 on CUDA)")
    parser.add_argument("--warmup", type=int, help="untimed runs first (default 1 on CPU, 3 on CUDA)")
    parser.add_argument("--views", type=int, default=1, help="cameras rendered per triplane (default 1)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 matmuls and convolutions on CUDA")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="write a bar chart of the part times here (PNG)")


def machine_info(device: torch.device) -> dict:
    """What ran the benchmark: the GPU name on CUDA, else the CPU model, cores, threads and the load."""
    info = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
            "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if hasattr(os, "getloadavg"):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        info["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
    return info


def time_part(fn: Callable[[], object], device: torch.device, warmup: int, repeat: int, name: str) -> dict:
    """Median/min/max milliseconds of `fn` after `warmup` untimed calls (CUDA synchronised around each)."""
    def once() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - start) * 1000.0

    for _ in range(warmup):
        once()
    times = [once() for _ in tqdm(range(repeat), desc=name, leave=False, file=sys.stderr)]
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times), "runs": repeat}


def run_benchmark(device: torch.device, precision: str, warmup: int, repeat: int, views: int = 1) -> dict:
    """Time each part of one frame; the prompt is encoded per style, the rest per frame."""
    model = ThreeDPE.random(seed=0, device=device)
    model.precision = precision
    gen = torch.Generator().manual_seed(0)
    image = (torch.rand(1, 3, 512, 512, generator=gen) * 2 - 1).to(device)
    prompt = torch.randn(1, 3, 224, 224, generator=gen).to(device)
    cams = torch.stack([torch.from_numpy(eural_to_camera_label(0.3 * i / max(views - 1, 1), 0.0))
                        for i in range(views)]).to(device)
    tokens = model.encode_prompt(prompt)
    triplane = model.encode(image, tokens)
    volume = model.render(triplane, cams, RenderOptions(superresolution=False))

    parts = {
        "prompt_encoding": lambda: model.encode_prompt(prompt),
        "encoder": lambda: model.encode(image, tokens),
        "render_128_96spp": lambda: model.render(triplane, cams, RenderOptions(superresolution=False)),
        "superresolution": lambda: _superresolve(model, volume),
    }
    results = {name: time_part(fn, device, warmup, repeat, name) for name, fn in parts.items()}
    frame_ms = sum(results[k]["median_ms"] for k in ("encoder", "render_128_96spp", "superresolution"))
    return {"machine": machine_info(device),
            "settings": {"precision": precision, "views": views,
                         "warmup": warmup, "repeat": repeat, "weights": "random (ThreeDPE.random)",
                         "render": {"neural_resolution": 128, "samples_per_ray": 96, "deterministic": True}},
            "parts": results,
            "frame_ms": frame_ms, "frame_fps": 1000.0 / frame_ms,
            "paper_ms_per_image": PAPER_MS_PER_IMAGE}


@torch.no_grad()
def _superresolve(model: ThreeDPE, volume: dict) -> torch.Tensor:
    return model.renderer.superresolve(volume["image_raw"], volume["feature_image"])


def format_table(result: dict) -> str:
    m = result["machine"]
    where = m.get("gpu") or f"{m['cpu']} ({m['cpu_count']} cores, {m['torch_threads']} torch threads, " \
                            f"load {m.get('load_average_1min', '?')})"
    lines = [f"3DPE model benchmark on {where}, {result['settings']['precision']}, "
             f"{result['settings']['views']} view(s), random weights",
             f"{'part':<20}{'median ms':>12}{'min ms':>10}{'max ms':>10}"]
    for name, r in result["parts"].items():
        lines.append(f"{name:<20}{r['median_ms']:>12.1f}{r['min_ms']:>10.1f}{r['max_ms']:>10.1f}")
    lines.append(f"{'frame (enc+render+SR)':<20}{result['frame_ms']:>11.1f}   = {result['frame_fps']:.2f} fps "
                 f"(paper: {result['paper_ms_per_image']:.0f} ms on an A6000)")
    return "\n".join(lines)


def write_plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["parts"])
    values = [result["parts"][n]["median_ms"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.barh(names, values, color="tab:blue")
    ax.set_xlabel("median ms")
    m = result["machine"]
    ax.set_title(f"3DPE parts on {m.get('gpu') or m['cpu']} ({result['settings']['precision']})", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    device = _device(args.device)
    if device.type != "cuda" and args.precision == "fp16":
        raise UserError("--precision fp16 needs --device cuda (CPU fp16 kernels are emulated); bf16 runs on CPU")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
    if args.threads is not None:
        if args.threads < 1:
            raise UserError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    on_cuda = device.type == "cuda"
    repeat = args.repeat if args.repeat is not None else (20 if on_cuda else 3)
    warmup = args.warmup if args.warmup is not None else (3 if on_cuda else 1)
    if repeat < 1 or warmup < 0 or args.views < 1:
        raise UserError("--repeat and --views must be at least 1, --warmup at least 0")
    result = run_benchmark(device, args.precision, warmup, repeat, args.views)
    print(format_table(result))
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    if args.plot:
        write_plot(result, args.plot)
    return 0


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device must be cpu, cuda or cuda:N, not {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but this torch build sees no CUDA GPU; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"--device must be cpu, cuda or cuda:N, not {name!r}")
    return device


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.model", description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        sys.exit(main(parser.parse_args()))
    except UserError as exc:
        print(f"benchmarks.model: error: {exc}", file=sys.stderr)
        sys.exit(2)
