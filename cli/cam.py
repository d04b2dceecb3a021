"""`live3dpe cam`: edit the webcam live into a virtual camera that Zoom, Meet or OBS can pick."""
from __future__ import annotations

import argparse
import asyncio

from pipeline.errors import StageError, UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from stages.chain import add_edit_arguments

    parser.add_argument("--device", type=int, default=0, dest="camera",
                        help="webcam index to read (default 0: /dev/video0)")
    parser.add_argument("--virtual-camera", action="store_true",
                        help="send the edited video to a virtual camera (v4l2loopback on Linux, OBS elsewhere)")
    parser.add_argument("--virtual-device", default=None,
                        help="which virtual camera, e.g. /dev/video10 (default: the first one found)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--max-frames", type=int, default=None, help="stop after N frames (testing)")
    # add_edit_arguments defines --device for the engine's torch device; ours is the webcam, so the
    # engine's flag is renamed on this command.
    add_edit_arguments(_RenamedDevice(parser))


class _RenamedDevice:
    """Forwards add_argument_group/add_argument, turning the engine's --device into --engine-device."""

    def __init__(self, parser):
        self._parser = parser

    def add_argument_group(self, *args, **kwargs):
        return _RenamedDevice(self._parser.add_argument_group(*args, **kwargs))

    def add_argument(self, *names, **kwargs):
        if names == ("--device",):
            names, kwargs["dest"] = ("--engine-device",), "device"
        return self._parser.add_argument(*names, **kwargs)


def validate(args: argparse.Namespace) -> None:
    if not args.virtual_camera:
        raise UserError("nothing to send the edited video to: add --virtual-camera "
                        "(or use `live3dpe serve` to see it in a browser)")
    if args.camera < 0:
        raise UserError("--device must be a webcam index (0, 1, ...)")
    if not (16 <= args.width <= 4096 and 16 <= args.height <= 4096) or args.width % 2 or args.height % 2:
        raise UserError("--width/--height must be even numbers of pixels within 16..4096")
    if not 1 <= args.fps <= 120:
        raise UserError("--fps must be within 1..120")


def main(args: argparse.Namespace, backend: str | None = None) -> int:
    """`backend` picks a pyvirtualcam backend by name (None: the platform's); tests pass a fake one."""
    from pipeline.graph import Graph
    from stages.chain import build_stages_from_args
    from webrtc.virtualcam import VirtualCameraSink

    validate(args)
    sink = VirtualCameraSink(args.width, args.height, args.fps, device=args.virtual_device, backend=backend)

    async def run() -> None:
        # The virtual camera first: its absence is the likeliest problem and needs no webcam or model.
        await sink.start()
        try:
            print(f"live3dpe cam: sending to virtual camera {sink.device_name} (Ctrl-C to stop)", flush=True)
            source = open_webcam(args)
            graph = Graph(source, build_stages_from_args(args, live=True), sink, policy="live", queue_size=1,
                          name="cam")
            try:
                metrics = await graph.run()
            except StageError as exc:
                if isinstance(exc.__cause__, UserError):     # e.g. the webcam vanished: one line
                    raise exc.__cause__ from None
                raise
            print(metrics.table())
        finally:
            await sink.close()

    asyncio.run(run())
    return 0


def open_webcam(args: argparse.Namespace):
    from stages.source_webcam import WebcamSource

    return WebcamSource(args.camera, args.width, args.height, args.fps, max_frames=args.max_frames)
