"""`live3dpe bench`: pipeline throughput and latency, compared with the pipelining bound and serial execution.

Runs a clip (or a synthetic pattern) through the edit chain of `live3dpe run` or through
synthetic stages of known cost (`--synthetic 10,20,15`), then reports per-stage p50/p95/p99,
e2e fps and latency, drops, fps / (1 / slowest stage) and fps / serial fps; writes JSON + PNG.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from cli import run as run_command
from pipeline.errors import UserError
from pipeline.graph import Graph
from pipeline.metrics import RunMetrics, percentiles
from pipeline.stage import Source, Stage
from stages.sink_null import NullSink
from stages.source_synthetic import SyntheticSource
from stages.sources import open_source
from benchmarks.synthetic_stages import STAGE_KINDS, make_stages, parse_costs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", default="synthetic", help="clip, image, camera:N or 'synthetic' (default)")
    parser.add_argument("--synthetic", metavar="MS,MS,...",
                        help="instead of the edit chain, stages costing these milliseconds (e.g. 10,20,15)")
    parser.add_argument("--stage-kind", choices=STAGE_KINDS, default="sleep",
                        help="synthetic stages sleep (no CPU) or do numpy work (default sleep)")
    parser.add_argument("--frames", type=int, default=150, help="frames to run (default 150)")
    parser.add_argument("--live", action="store_true",
                        help="live input: frames arrive at --fps in real time, queues drop the oldest")
    parser.add_argument("--fps", type=float, default=30.0, help="input rate for --live / synthetic input")
    parser.add_argument("--size", default="640x480", help="synthetic frame size WxH (default 640x480)")
    parser.add_argument("--queue-size", type=int, default=2, choices=(1, 2))
    parser.add_argument("--no-serial", action="store_true", help="skip the serial comparison run")
    parser.add_argument("--out", default="bench_out", help="folder for fps.json and fps.png (default bench_out)")
    run_command.add_chain_arguments(parser)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--size must look like 640x480, not {text!r}") from None
    if w < 8 or h < 8:
        raise UserError(f"--size must be at least 8x8, not {text!r}")
    return w, h


def stage_factory(args: argparse.Namespace) -> Callable[[], list[Stage]]:
    """Makes a fresh stage chain per run (stages are not reused after close())."""
    if args.synthetic:
        try:
            costs = parse_costs(args.synthetic)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        return lambda: make_stages(costs, args.stage_kind)
    args.realtime = args.live            # the edit chain reads run's flag for live behaviour
    return lambda: run_command.build_stages(args)


def source_factory(args: argparse.Namespace) -> Callable[[], Source]:
    if args.frames < 2:
        raise UserError("--frames must be at least 2")
    if not args.fps > 0:
        raise UserError(f"--fps must be above 0, not {args.fps:g}")
    width, height = _size(args.size)
    if args.input == "synthetic":
        return lambda: SyntheticSource(width, height, args.fps, count=args.frames, live=args.live)
    return lambda: open_source(args.input, realtime=args.live, max_frames=args.frames, fps=args.fps,
                               width=width, height=height)


async def measure_serial(source: Source, stages: list[Stage]) -> dict[str, Any]:
    """The same work one packet at a time in one thread: fps and each node's mean cost."""
    nodes = [source, *stages]
    for node in nodes:
        await node.start()
    costs: dict[str, list[float]] = {"source": [], **{f"{i}:{s.name}": [] for i, s in enumerate(stages)}}
    frames = 0
    try:
        start = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            packet = source.read()
            costs["source"].append(time.perf_counter() - t0)
            if packet is None:
                break
            for i, stage in enumerate(stages):
                t0 = time.perf_counter()
                packet = stage.process(packet)
                costs[f"{i}:{stage.name}"].append(time.perf_counter() - t0)
                if packet is None:
                    break
            frames += 1
        seconds = time.perf_counter() - start
    finally:
        for node in reversed(nodes):
            await node.close()
    return {"frames": frames, "seconds": seconds, "fps": frames / seconds if seconds else 0.0,
            "stages": {name: percentiles(values) for name, values in costs.items()}}


def latency_trend(metrics: RunMetrics) -> dict[str, float]:
    """Mean e2e latency over the first and last third of the run: equal when no queue builds up."""
    latencies = [ms for _, ms in metrics.e2e_series]
    third = max(len(latencies) // 3, 1)
    first, last = latencies[:third], latencies[-third:]
    return {"first_third_ms": sum(first) / len(first) if first else 0.0,
            "last_third_ms": sum(last) / len(last) if last else 0.0}


async def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    make_source, make_chain = source_factory(args), stage_factory(args)
    policy = "live" if args.live else "offline"
    graph = Graph(make_source(), make_chain(), NullSink(), policy=policy, queue_size=args.queue_size, name="bench")
    metrics = await graph.run()
    result: dict[str, Any] = {"input": args.input, "synthetic": args.synthetic, "stage_kind": args.stage_kind,
                              "policy": policy, "frames": args.frames, "pipelined": metrics.as_dict(),
                              "latency_trend": latency_trend(metrics)}
    if not args.no_serial:
        serial = await measure_serial(make_source(), make_chain())
        slowest_ms = max(s["mean_ms"] for s in serial["stages"].values())
        bound = 1000.0 / slowest_ms if slowest_ms > 0 else float("inf")
        # CPU-bound stages also cannot beat (cores × serial fps); sleep stages (no CPU) are not limited by it.
        cores = os.cpu_count() or 1
        core_bound = min(bound, cores * serial["fps"])
        result.update(serial=serial, bound_fps=bound, slowest_stage_ms=slowest_ms,
                      ratio_to_bound=metrics.fps / bound, speedup_vs_serial=metrics.fps / serial["fps"],
                      cores=cores, core_bound_fps=core_bound, ratio_to_core_bound=metrics.fps / core_bound)
    return result


def summary(result: dict[str, Any]) -> str:
    p = result["pipelined"]
    lines = [f"pipelined: {p['fps']:.1f} fps, e2e p50 {p['e2e']['p50_ms']:.1f} ms, "
             f"p99 {p['e2e']['p99_ms']:.1f} ms, drops {p['drops']} ({result['policy']})"]
    trend = result["latency_trend"]
    lines.append(f"e2e latency first third {trend['first_third_ms']:.1f} ms, last third {trend['last_third_ms']:.1f} ms")
    if "serial" in result:
        lines.append(f"serial: {result['serial']['fps']:.1f} fps; bound 1/max(stage) = {result['bound_fps']:.1f} fps "
                     f"(slowest {result['slowest_stage_ms']:.1f} ms)")
        lines.append(f"ratio to bound {result['ratio_to_bound']:.3f}, speed-up vs serial {result['speedup_vs_serial']:.2f}x")
        lines.append(f"if CPU-bound on {result['cores']} cores: bound {result['core_bound_fps']:.1f} fps, "
                     f"ratio {result['ratio_to_core_bound']:.3f}")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Per-node latency bars (p50/p95/p99) and e2e latency over time."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = result["pipelined"]["stages"]
    names = list(stages)
    fig, (bars, line) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.27
    for k, key in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        bars.bar([i + (k - 1) * width for i in range(len(names))], [stages[n][key] for n in names],
                 width, label=key.replace("_ms", ""))
    bars.set_xticks(range(len(names)), names, rotation=20, ha="right")
    bars.set_ylabel("ms per frame")
    bars.set_title("per-node latency")
    bars.legend()
    series = result["pipelined"]["e2e_series"]
    line.plot([t for t, _ in series], [ms for _, ms in series], lw=1)
    line.set_xlabel("seconds since start")
    line.set_ylabel("capture → sink ms")
    line.set_title(f"end-to-end latency ({result['policy']}, {result['pipelined']['fps']:.1f} fps, "
                   f"{result['pipelined']['drops']} drops)")
    line.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(run_benchmark(args))
    print(metrics_table(result))
    print(summary(result))
    (out / "fps.json").write_text(json.dumps(result, indent=2))
    plot(result, out / "fps.png")
    print(f"wrote {out / 'fps.json'} and {out / 'fps.png'}")
    return 0


def metrics_table(result: dict[str, Any]) -> str:
    p = result["pipelined"]
    metrics = RunMetrics(name="bench", policy=p["policy"], stages=p["stages"], frames_in=p["frames_in"],
                         frames_out=p["frames_out"], drops=p["drops"], seconds=p["seconds"], fps=p["fps"],
                         e2e=p["e2e"], e2e_series=[])
    return metrics.table()


if __name__ == "__main__":
    from cli.main import main as cli_main
    sys.exit(cli_main(["bench", *sys.argv[1:]]))
