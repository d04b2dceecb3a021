"""The GPU suite: one prepared run that measures 3DPE where it is meant to run, writing one JSON and a plot.

    python -m benchmarks.gpu_suite --out DIR [--inputs gpu_inputs] [--quick]       # on the GPU machine
    python -m benchmarks.gpu_suite --out DIR --device cpu --smoke                 # proves it runs, anywhere

Runs from a plain checkout with torch, numpy and opencv only (no install, no MediaPipe, no PyAV; tqdm and
matplotlib are used when present). Random weights (timing does not depend on them): every figure is labelled.
Sections, each recorded even when another fails:
  parts       per-stage ms (prompt encoder, encoder, volume render, superresolution) for fp32/fp16/bf16,
              eager vs CUDA graphs; frame = encoder + render + SR
  compile     the same with torch.compile (last: Inductor takes minutes; --quick compiles fp16 only)
  rerender    a cached triplane re-rendered (render + SR, 512²) at a new camera per frame: fps
  batch       encode and render of B = 1, 2, 4, 8 crops in one call: ms per call and per stream
  e2e         the stage graph on three talking-face clips (frames and face tracks prepared on CPU by
              `python -m benchmarks.gpu_inputs`): edit (decoupled encoder) → render → composite, GPU-resident,
              with per-stage CUDA streams vs serialised stages
  conformance fp32 (TF32 off), fp16, bf16 against the bundle, with the tolerances of threedpe.conformance
Peak GPU memory is recorded per section.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"frame_ms_fp16_b1": 10.0, "rerender_fps": 300.0, "e2e_fps_one_stream": 100.0, "streams_at_30fps": 8}
WEIGHTS_LABEL = "random weights (the conformance fill rule): timing only, not an edit"


def _progress(items, desc: str):
    try:
        from tqdm import tqdm
        return tqdm(items, desc=desc, file=sys.stderr, leave=False)
    except ImportError:
        print(f"[gpu_suite] {desc} ...", file=sys.stderr, flush=True)
        return items


class Timer:
    """Median milliseconds of a call, synchronising the device around each run."""

    def __init__(self, device: torch.device, warmup: int, repeat: int):
        self.device, self.warmup, self.repeat = device, warmup, repeat

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __call__(self, fn: Callable[[], Any]) -> dict:
        for _ in range(self.warmup):
            fn()
        times = []
        for _ in range(self.repeat):
            self.sync()
            start = time.perf_counter()
            fn()
            self.sync()
            times.append((time.perf_counter() - start) * 1000.0)
        return {"median_ms": statistics.median(times), "min_ms": min(times), "runs": len(times)}


class Settings:
    """What a run measures: the GPU defaults, `--quick` (fewer combinations) or `--smoke` (tiny, for CPU)."""

    def __init__(self, args: argparse.Namespace, device: torch.device):
        from threedpe.renderer import RenderOptions
        smoke = args.smoke
        self.precisions = ["fp32"] if smoke else ["fp32", "fp16", "bf16"]
        self.accels = ["eager"] if device.type != "cuda" else ["eager", "cuda-graphs"]
        self.compile_precisions = [] if device.type != "cuda" else (["fp16"] if args.quick else self.precisions)
        self.budget_s = args.budget_s if args.budget_s is not None else (420.0 if args.quick else float("inf"))
        self.render = RenderOptions.preview(neural_resolution=32) if smoke else RenderOptions()
        self.warmup, self.repeat = (0, 1) if smoke else (3, 10 if args.quick else 20)
        self.batches = [1, 2] if smoke else [1, 2, 4, 8]
        self.rerender_frames = 2 if smoke else 200
        self.e2e_frames = 3 if smoke else (150 if args.quick else 300)
        self.e2e_clips = 1 if smoke else 3
        self.e2e_decoupled = not smoke          # smoke: encode inline, so its few CPU frames are all edited
        self.conformance = ["fp32"] if smoke else ["fp32", "fp16", "bf16"]
        self.conformance_encoder_only = smoke
        self.out = args.out


def machine(device: torch.device) -> dict:
    info = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
            "cuda": torch.version.cuda, "cpu_count": os.cpu_count(), "weights": WEIGHTS_LABEL}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=torch.cuda.get_device_name(device), gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    cudnn=torch.backends.cudnn.version())
    return info


@contextlib.contextmanager
def peak_memory(device: torch.device, into: dict):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    try:
        yield
    finally:
        if device.type == "cuda":
            into["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def _inputs(device: torch.device, batch: int = 1):
    from threedpe.camera import eural_to_camera_label
    gen = torch.Generator().manual_seed(0)
    image = (torch.rand(batch, 3, 512, 512, generator=gen) * 2 - 1).to(device)
    prompt = torch.randn(1, 3, 224, 224, generator=gen).to(device)
    cams = torch.stack([torch.from_numpy(eural_to_camera_label(0.3 * np.sin(i), 0.1 * np.cos(i)))
                        for i in range(batch)]).float().to(device)
    return image, prompt, cams


def _network(model, accel: str):
    from threedpe.backends.accelerated import AcceleratedNetwork
    return model if accel == "eager" else AcceleratedNetwork(model, accel, compile_options={})


def section_parts(model, device, s: Settings, out: dict, accels: list[str], precisions: list[str],
                  deadline: float = float("inf")) -> None:
    """Per-stage ms for each precision × acceleration; frame = encoder + render + SR."""
    from dataclasses import replace

    from threedpe.backends.accelerated import GraphedCall
    image, prompt, cams = _inputs(device)
    timer = Timer(device, s.warmup, s.repeat)
    volume_opts = replace(s.render, superresolution=False)
    for precision in precisions:
        if time.perf_counter() > deadline:
            out.setdefault("skipped", []).append(f"{precision}: over the time budget")
            continue
        model.precision = precision
        tokens = model.encode_prompt(prompt)
        triplane = model.encode(image, tokens)
        volume = model.render(triplane, cams, volume_opts)
        calls = {
            "prompt_encoder": lambda: model.encode_prompt(prompt),
            "encoder": lambda: model.encode(image, tokens),
            "render": lambda: model.render(triplane, cams, volume_opts)["feature_image"],
            "superresolution": lambda: model.renderer.superresolve(volume["image_raw"], volume["feature_image"]),
        }
        for accel in accels:
            row = out.setdefault(precision, {}).setdefault(accel, {})
            with peak_memory(device, row):
                for name, fn in _progress(list(calls.items()), f"parts {precision} {accel}"):
                    try:
                        wrapped = _accelerated(fn, accel, GraphedCall)
                        row[name] = timer(wrapped)
                    except Exception as exc:                       # recorded; the other parts go on
                        row[name] = {"error": f"{type(exc).__name__}: {exc}"}
            ms = [row.get(k, {}).get("median_ms") for k in ("encoder", "render", "superresolution")]
            if all(m is not None for m in ms):
                row["frame_ms"] = sum(ms)
    model.precision = "fp32"


def _accelerated(fn: Callable[[], Any], accel: str, graphed_call) -> Callable[[], Any]:
    if accel == "cuda-graphs":
        graph = graphed_call(lambda: _tensors(fn()))
        return lambda: graph()
    if accel == "compile":
        compiled = torch.compile(fn)
        return compiled
    return fn


def _tensors(x):
    return x if torch.is_tensor(x) else tuple(v for v in x.values() if torch.is_tensor(v))


def section_rerender(model, device, s: Settings, out: dict, precision: str, accel: str) -> None:
    """A cached triplane rendered (render + SR) at a new camera per frame, B = 1."""
    from threedpe.camera import eural_to_camera_label
    model.precision = precision
    network = _network(model, accel)
    image, prompt, _ = _inputs(device)
    triplane = model.encode(image, model.encode_prompt(prompt))
    cams = [torch.from_numpy(eural_to_camera_label(0.4 * np.sin(i / 20), 0.1 * np.cos(i / 30)))[None].float()
            .to(device) for i in range(s.rerender_frames)]
    with peak_memory(device, out):
        for cam in cams[:3]:
            network.render(triplane, cam, s.render)
        Timer(device, 0, 1).sync()
        start = time.perf_counter()
        for cam in _progress(cams, "re-render"):
            network.render(triplane, cam, s.render)
        Timer(device, 0, 1).sync()
        seconds = time.perf_counter() - start
    out.update(precision=precision, accel=accel, frames=len(cams), fps=len(cams) / seconds,
               ms_per_frame=1000 * seconds / len(cams))
    model.precision = "fp32"


def section_batch(model, device, s: Settings, out: dict, precision: str, accel: str) -> None:
    """Encode and render B crops in one call (B triplanes, each from its own camera)."""
    model.precision = precision
    network = _network(model, accel)
    timer = Timer(device, s.warmup, s.repeat if s.repeat < 3 else max(3, s.repeat // 2))
    out.update(precision=precision, accel=accel, rows=[])
    for batch in _progress(s.batches, "batch"):
        image, prompt, cams = _inputs(device, batch)
        tokens = model.encode_prompt(prompt).expand(batch, -1, -1)
        row: dict[str, Any] = {"batch": batch}
        with peak_memory(device, row):
            triplane = network.encode(image, tokens)
            row["encode"] = timer(lambda: network.encode(image, tokens))
            row["render"] = timer(lambda: network.render(triplane, cams, s.render))
        per_call = row["encode"]["median_ms"] + row["render"]["median_ms"]
        row.update(ms_per_call=per_call, ms_per_stream=per_call / batch,
                   streams_at_30fps=batch * (1000.0 / per_call) / 30.0 if per_call > 0 else None)
        out["rows"].append(row)
    model.precision = "fp32"


def section_e2e(model, device, s: Settings, out: dict, inputs: Path | None, precision: str, accel: str) -> None:
    """The stage graph on prepared clips, per-stage CUDA streams vs serialised stages."""
    from benchmarks.gpu_inputs import load
    if inputs is None or not (inputs / "clips.npz").is_file():
        out["skipped"] = ("no prepared clips: run `python -m benchmarks.gpu_inputs --out gpu_inputs` on a CPU "
                          "machine and carry gpu_inputs/ here")
        return
    clips = load(inputs / "clips.npz")[: s.e2e_clips]
    model.precision = precision
    network = _network(model, accel)
    image, prompt, cams = _inputs(device)                  # capture the graphs before the stages' threads run
    network.render(network.encode(image, model.encode_prompt(prompt)), cams, s.render)
    out.update(precision=precision, accel=accel, clips=[],
               note="decode and face tracking replaced by frames and tracks prepared on CPU (benchmarks.gpu_inputs)")
    modes = ["streams", "serial"] if device.type == "cuda" else ["serial"]
    for clip in clips:
        for mode in modes:
            row = {"clip": clip.name, "mode": mode, "frames": s.e2e_frames}
            with peak_memory(device, row):
                metrics, sink = asyncio.run(_run_graph(network, device, clip, s, mode))
            row.update(rendered=sink.rendered, decoupled=s.e2e_decoupled, fps=metrics.fps, e2e_p50_ms=metrics.e2e["p50_ms"], e2e_p95_ms=metrics.e2e["p95_ms"],
                       drops=metrics.drops, stages={k: {"p50_ms": v["p50_ms"], "p95_ms": v["p95_ms"]}
                                                    for k, v in metrics.stages.items()})
            out["clips"].append(row)
            print(f"[gpu_suite] e2e {clip.name} {mode}: {metrics.fps:.1f} fps", file=sys.stderr, flush=True)
    model.precision = "fp32"


async def _run_graph(network, device, clip, s: Settings, mode: str):
    from benchmarks.gpu_replay import CountingSink, PreparedSource, SerialCuda, TrackStage
    from pipeline.config import EditControls, EditSettings, EngineConfig
    from pipeline.graph import Graph
    from stages.composite import CompositeStage
    from stages.edit.stage import EditStage
    from stages.edit.threedpe_engine import ThreeDPEEngine
    from stages.render import RenderStage

    config = EngineConfig(name="3dpe", random_weights=True, device=str(device), extra={"resident": True})
    engine = ThreeDPEEngine(config, model=network, render_options=s.render)
    prompt = s.out / f"prompt_{clip.name}.png"             # a 512² image prompt: the clip's first frame
    cv2.imwrite(str(prompt), cv2.cvtColor(cv2.resize(clip.frames[0], (512, 512)), cv2.COLOR_RGB2BGR))
    controls = EditControls(EditSettings(style=f"image:{prompt}", yaw=15.0))
    edit = EditStage(controls, engine, live=s.e2e_decoupled)   # decoupled: the encoder runs beside the stream
    stages = [TrackStage(clip), edit, RenderStage(controls, engine), CompositeStage(controls)]
    cuda = SerialCuda() if mode == "serial" and device.type == "cuda" else None
    sink = CountingSink()
    graph = Graph(PreparedSource(clip, s.e2e_frames), stages, sink, policy="offline", queue_size=2,
                  name=f"e2e-{clip.name}-{mode}", cuda=cuda)
    return await graph.run(), sink


def section_conformance(model, device, s: Settings, out: dict, bundle) -> None:
    from threedpe.conformance import compare, compute_taps
    if bundle is None:
        out["skipped"] = "no conformance bundle (benchmarks.gpu_inputs copies it into gpu_inputs/3dpe_v1)"
        return
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for precision in _progress(s.conformance, "conformance"):
        model.precision = precision
        taps = compute_taps(model, bundle, render=not s.conformance_encoder_only)
        results = [r for r in compare(taps, bundle, precision) if r.status != "not run"]
        out[precision] = {"passed": sum(r.passed for r in results), "arrays": len(results),
                          "worst_ratio": max((r.worst_ratio for r in results), default=None),
                          "max_abs": {r.array: r.max_abs for r in results},
                          "failed": [r.array for r in results if not r.passed]}
    model.precision = "fp32"


def write_plot(result: dict, path: Path) -> str:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed here: no plot (the JSON has every figure)"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    labels, values = [], []
    sections = [result.get("parts", {}), result.get("compile", {})]
    for precision, by_accel in [item for section in sections for item in section.items()]:
        if not isinstance(by_accel, dict):                     # "seconds", "skipped"
            continue
        for accel, row in by_accel.items():
            if isinstance(row, dict) and "frame_ms" in row:
                labels.append(f"{precision}\n{accel}")
                values.append(row["frame_ms"])
    ax1.bar(labels, values, color="tab:blue")
    ax1.axhline(TARGETS["frame_ms_fp16_b1"], color="tab:red", ls="--", label="target 10 ms (fp16)")
    ax1.set_ylabel("encoder + render + SR, ms (B = 1)")
    ax1.legend(fontsize=8)
    ax1.tick_params(axis="x", labelsize=7)
    rows = result.get("batch", {}).get("rows", [])
    if rows:
        ax2.plot([r["batch"] for r in rows], [r["ms_per_stream"] for r in rows], "o-", label="ms per stream")
        ax2.set_xlabel("batch B")
        ax2.set_ylabel("ms per stream (encode + render)")
        ax2.legend(fontsize=8)
    where = result["machine"].get("gpu") or result["machine"]["device"]
    fig.suptitle(f"3DPE GPU suite on {where} — {WEIGHTS_LABEL}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def summary(result: dict) -> dict:
    """The headline figures next to the issue's targets (None where a section did not run)."""
    rows16 = [result.get(section, {}).get("fp16", {}) for section in ("parts", "compile")]
    best_frame = min((row["frame_ms"] for rows in rows16 for row in rows.values()
                      if isinstance(row, dict) and "frame_ms" in row), default=None)
    rows = result.get("batch", {}).get("rows", [])
    streams = max((r["streams_at_30fps"] for r in rows if r.get("streams_at_30fps")), default=None)
    e2e = [c["fps"] for c in result.get("e2e", {}).get("clips", []) if c["mode"] == "streams"]
    return {"targets": TARGETS, "frame_ms_fp16_b1": best_frame, "rerender_fps": result.get("rerender", {}).get("fps"),
            "e2e_fps_one_stream_min": min(e2e) if e2e else None, "streams_at_30fps": streams}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_suite", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_suite.json and gpu_suite.png")
    parser.add_argument("--inputs", type=Path, default=REPO / "gpu_inputs",
                        help="folder written by benchmarks.gpu_inputs (clips.npz, 3dpe_v1/); default ./gpu_inputs")
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu with --smoke")
    parser.add_argument("--quick", action="store_true", help="fewer runs, compile for fp16 only (≤ 8 min on an H100)")
    parser.add_argument("--smoke", action="store_true", help="tiny settings: proves the suite runs end to end")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip")
    parser.add_argument("--budget-s", type=float, help="start no section after this many seconds "
                                                        "(default 420 with --quick, else none)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_suite: error: no CUDA GPU visible to torch; use --device cpu --smoke to check the script",
              file=sys.stderr)
        return 2
    if device.type == "cpu" and not args.smoke:
        print("gpu_suite: error: on CPU only --smoke runs (the full suite would take hours)", file=sys.stderr)
        return 2
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
    from threedpe.model import ThreeDPE
    s = Settings(args, device)
    skip = {x.strip() for x in args.skip.split(",") if x.strip()}
    started = time.perf_counter()
    result: dict[str, Any] = {"machine": machine(device), "settings": {
        "quick": args.quick, "smoke": args.smoke, "render": {k: v for k, v in vars(s.render).items() if k != "generator"},
        "precisions": s.precisions, "accelerations": s.accels}, "errors": {}}
    bundle = _bundle(args.inputs / "3dpe_v1")
    # the bundle's fill-rule weights serve every section (one fill); random values either way, and labelled
    model = _rule_model(bundle, device) if bundle is not None else ThreeDPE.random(seed=0, device=device)
    result["machine"]["weights_source"] = model.source
    best = "cuda-graphs" if device.type == "cuda" else "eager"
    deadline = started + s.budget_s
    sections = {
        "parts": lambda out: section_parts(model, device, s, out, s.accels, s.precisions),
        "rerender": lambda out: section_rerender(model, device, s, out, "fp16" if device.type == "cuda" else "fp32", best),
        "batch": lambda out: section_batch(model, device, s, out, "fp16" if device.type == "cuda" else "fp32", best),
        "e2e": lambda out: section_e2e(model, device, s, out, args.inputs, "fp16" if device.type == "cuda" else "fp32",
                                       best),
        "conformance": lambda out: section_conformance(model, device, s, out, bundle),
        # last: Inductor compiles for minutes; a budget cut costs only these rows
        "compile": lambda out: section_parts(model, device, s, out, ["compile"], s.compile_precisions, deadline),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for name, run in sections.items():
        if name in skip or (name == "compile" and not s.compile_precisions):
            continue
        if time.perf_counter() > deadline:
            result[name] = {"skipped": f"over the time budget ({s.budget_s:g} s)"}
            continue
        out: dict[str, Any] = {}
        section_start = time.perf_counter()
        try:
            run(out)
        except Exception as exc:                               # one failing section must not lose the others
            result["errors"][name] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            traceback.print_exc()
        out["seconds"] = round(time.perf_counter() - section_start, 1)
        result[name] = out
        _write(result, args.out)                               # after every section: a killed run keeps its data
        print(f"[gpu_suite] {name} done in {out['seconds']} s", file=sys.stderr, flush=True)
    result["summary"] = summary(result)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["plot"] = write_plot(result, args.out / "gpu_suite.png")
    _write(result, args.out)
    print(json.dumps(result["summary"], indent=1))
    return 1 if result["errors"] else 0


def _bundle(folder: Path):
    from threedpe.conformance import Bundle
    return Bundle(folder) if (folder / "vectors.npz").is_file() and (folder / "manifest.json").is_file() else None


def _rule_model(bundle, device):
    from threedpe.fill_rule import fill_state_dicts
    from threedpe.model import ThreeDPE
    sds = fill_state_dicts(bundle.manifest, verify_sha256=False)
    return ThreeDPE.from_state_dicts(sds["encoder_state_dict"], sds["renderer_state_dict"], is_random=True,
                                     source="conformance fill rule").to(device)


def _write(result: dict, folder: Path) -> None:
    tmp = folder / "gpu_suite.json.partial"
    tmp.write_text(json.dumps(result, indent=1, default=float))
    tmp.replace(folder / "gpu_suite.json")


if __name__ == "__main__":
    sys.exit(main())
