"""`live3dpe run`: a video file, camera, image or pattern through the stage chain into a file or window."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from tqdm import tqdm

from pipeline.errors import StageError, UserError
from pipeline.frame_size import describe_working_size
from pipeline.graph import Graph
from pipeline.metrics import RunMetrics
from pipeline.outputs import check_output_path, write_error
from pipeline.stage import Sink, Source, Stage
from stages.chain import add_edit_arguments, build_stages_from_args
from stages.sink_file import FileSink
from stages.sink_preview import PreviewSink
from stages.source_webcam import parse_camera
from stages.sources import open_source


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True,
                        help="video file, image, camera index (0 or camera:0) or 'synthetic'")
    parser.add_argument("--output", help="output video (.mp4: H.264 with the input's audio)")
    parser.add_argument("--realtime", action="store_true",
                        help="pace a file like a live camera (live queues: late frames are dropped)")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--preview", action="store_true", help="show the output in a window")
    parser.add_argument("--queue-size", type=int, default=2, choices=(1, 2),
                        help="packets each queue holds between stages (default 2)")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate for cameras, images, synthetic")
    parser.add_argument("--repeat", type=int, default=90, help="frames made from a still image")
    parser.add_argument("--metrics-json", help="also write the run's metrics to this JSON file")
    add_chain_arguments(parser)


def add_chain_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the edit chain (face → edit → render → composite): engine, style, virtual camera, mode."""
    add_edit_arguments(parser)


def build_stages(args: argparse.Namespace) -> list[Stage]:
    """The edit chain between source and sink (engine classic by default; 3dpe when weights are given)."""
    camera = parse_camera(args.input) is not None
    return build_stages_from_args(args, live=bool(args.realtime or camera))


def build_source(args: argparse.Namespace) -> Source:
    if args.max_frames is not None and args.max_frames < 1:
        raise UserError("--max-frames must be at least 1")
    if not args.fps > 0:
        raise UserError(f"--fps must be above 0, not {args.fps:g}")
    return open_source(args.input, realtime=args.realtime, max_frames=args.max_frames,
                       repeat=args.repeat, fps=args.fps)


def build_sink(args: argparse.Namespace, source: Source) -> Sink:
    if not args.output and not args.preview:
        raise UserError("give --output FILE.mp4 (or --preview to only watch)")
    sink: Sink | None = None
    if args.output:
        output = Path(args.output)
        if getattr(source, "path", None) is not None and output.resolve() == Path(source.path).resolve():
            raise UserError("--output must differ from --input")
        sink = FileSink(output, audio_from=getattr(source, "audio_path", None), fps=getattr(source, "fps", 30.0))
    return PreviewSink(then=sink) if args.preview else sink


async def run_graph(graph: Graph, total: int | None, progress: bool = True) -> RunMetrics:
    """Run the graph with a tqdm bar fed from its live metrics."""
    bar: tqdm | None = None
    task = asyncio.create_task(graph.run())
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=0.2)
            if bar is None and graph.metrics.frames_in:   # not before: a start-up error stays one line
                bar = tqdm(total=total, unit="frame", disable=not progress, file=sys.stderr, dynamic_ncols=True)
            if bar is not None:
                bar.update(graph.metrics.frames_out - bar.n)
        return task.result()
    finally:
        if not task.done():        # Ctrl-C: let the graph shut down its threads before we return
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if bar is not None:
            bar.close()


def main(args: argparse.Namespace) -> int:
    source = build_source(args)
    sink = build_sink(args, source)          # before the chain: bad paths fail before models load
    if args.metrics_json:
        check_output_path(args.metrics_json, min_free_bytes=0)
    note = describe_working_size(getattr(source, "width", 0), getattr(source, "height", 0))
    if note:
        print(f"live3dpe run: {note}", file=sys.stderr)
    stages = build_stages(args)
    graph = Graph(source, stages, sink, queue_size=args.queue_size, name="run")
    try:
        metrics = asyncio.run(run_graph(graph, getattr(source, "frame_count", None), progress=not source.live))
    except StageError as exc:
        if isinstance(exc.__cause__, UserError):   # e.g. a camera that cannot open: say it in one line
            raise exc.__cause__ from None
        raise
    if metrics.frames_out == 0:
        raise UserError(f"no frames came out of {args.input}")
    print(metrics.table())
    if args.metrics_json:
        try:
            Path(args.metrics_json).write_text(json.dumps(metrics.as_dict(), indent=2))
        except OSError as exc:
            raise UserError(f"cannot write {args.metrics_json}: {write_error(exc)}") from None
    if args.output:
        print(f"wrote {metrics.frames_out} frames to {args.output}")
    shortfall = getattr(source, "incomplete", lambda: None)()
    if shortfall:                            # what could be read is written; the exit status says it fell short
        raise UserError(shortfall)
    return 0
