"""`live3dpe` command line: one entry point, one module per subcommand.

Each subcommand module defines `add_arguments(parser)` and `main(args) -> int`; modules are
imported only when their subcommand runs, so `live3dpe --help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys
from contextlib import nullcontext

from cli.quiet import native_noise_hidden
from pipeline.errors import UserError

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("cli.run", "edit a video file or camera into a file"),
    "quality": ("cli.quality", "measure edit quality on clips: identity, 3D consistency, change, flicker, pose"),
    "bench": ("benchmarks.fps", "measure pipeline fps and per-stage latency on a clip"),
    "face": ("cli.face", "inspect face tracking: pose, EG3D camera, crop per frame"),
    "edit": ("cli.edit", "3DPE edit of one still image, rendered from several views"),
    "conformance": ("cli.conformance", "check the network against a conformance bundle"),
    "serve": ("cli.serve", "start the WebRTC server and browser page"),
    "cam": ("cli.cam", "edit the webcam into a virtual camera (Zoom, Meet, OBS)"),
    "adapt": ("cli.adapt", "teach 3DPE a new style from ~10 image pairs (writes an adapter)"),
    "train": ("cli.train", "the 3DPE distillation trainer (torchrun for several GPUs)"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="live3dpe", description="Live 3D-aware portrait editing.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--verbose", action="store_true",
                       help="also show the native libraries' start-up log (MediaPipe, TensorFlow Lite)")
        if name == only:
            importlib.import_module(module_name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if a in SUBCOMMANDS), None)
    args = build_parser(only=command).parse_args(argv)
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    terminated: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: _stop_like_ctrl_c(terminated, frame))
    try:
        with nullcontext() if args.verbose else native_noise_hidden():
            return int(module.main(args) or 0)
    except UserError as exc:
        print(f"live3dpe {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if terminated:
            print(f"live3dpe {args.command}: terminated", file=sys.stderr)
            return 128 + signal.SIGTERM
        print(f"live3dpe {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_like_ctrl_c(terminated: list[int], frame) -> None:
    """SIGTERM (kill, systemd, docker stop) takes the Ctrl-C path, so outputs are finished the same way:
    inside asyncio.run that cancels the main task; elsewhere it raises KeyboardInterrupt."""
    terminated.append(signal.SIGTERM)
    handler = signal.getsignal(signal.SIGINT)
    if not callable(handler):
        raise KeyboardInterrupt
    handler(signal.SIGINT, frame)


if __name__ == "__main__":
    sys.exit(main())
