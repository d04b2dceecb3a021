"""The torch backend's fast paths: CUDA graphs for the fixed-shape calls, or `torch.compile`.

`AcceleratedNetwork(model, "cuda-graphs")` captures `encode` (per input shape, e.g. 512² at B = 1, 2, 4, 8)
and `render` (per triplane batch, camera count and render options) once, then replays them: one launch
instead of hundreds, the host free for the next frame. `"compile"` runs the same calls through
`torch.compile` (Inductor). Both are optional and measured against `"eager"` by `benchmarks.gpu_suite`.
Calls the graphs cannot hold (encoder taps, the stochastic mode) run eagerly.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from pipeline.errors import UserError
from threedpe.backends import ACCELERATIONS


class GraphedCall:
    """`fn(*tensors) -> tensor or tuple` captured into one CUDA graph per input signature and replayed.

    Inputs are copied into the graph's static buffers, outputs are cloned out of them (a later replay
    overwrites them). `cuda` is `torch.cuda` (a stand-in in the tests that have no GPU).
    """

    def __init__(self, fn: Callable[..., Any], cuda: Any = None, warmup: int = 2):
        self.fn = fn
        self.cuda = cuda if cuda is not None else torch.cuda
        self.warmup = warmup
        self._graphs: dict[tuple, tuple[Any, list[torch.Tensor], Any]] = {}

    @staticmethod
    def signature(tensors: tuple[torch.Tensor, ...]) -> tuple:
        return tuple((tuple(t.shape), t.dtype, str(t.device)) for t in tensors)

    def __call__(self, *tensors: torch.Tensor) -> Any:
        key = self.signature(tensors)
        if key not in self._graphs:
            self._graphs[key] = self._capture(tensors)
        graph, static_in, static_out = self._graphs[key]
        for buffer, tensor in zip(static_in, tensors):
            buffer.copy_(tensor)
        graph.replay()
        if isinstance(static_out, tuple):
            return tuple(t.clone() for t in static_out)
        return static_out.clone()

    def _capture(self, tensors: tuple[torch.Tensor, ...]) -> tuple[Any, list[torch.Tensor], Any]:
        cuda = self.cuda
        static_in = [t.clone() for t in tensors]
        side = cuda.Stream()
        side.wait_stream(cuda.current_stream())
        with cuda.stream(side):                       # warm-up (cuDNN autotuning, lazy init) off the capture
            for _ in range(self.warmup):
                self.fn(*static_in)
        cuda.current_stream().wait_stream(side)
        graph = cuda.CUDAGraph()
        # thread_local: other stages' threads may touch CUDA (uploads, events) while this thread captures
        with cuda.graph(graph, capture_error_mode="thread_local"):
            static_out = self.fn(*static_in)
        return graph, static_in, static_out

    @property
    def captured(self) -> int:
        """How many input signatures have a graph."""
        return len(self._graphs)


class AcceleratedNetwork:
    """A `ThreeDPE` whose `encode` and deterministic `render` run as CUDA graphs or compiled code."""

    def __init__(self, model: Any, mode: str = "cuda-graphs", cuda: Any = None, compile_options: dict | None = None):
        if mode not in ACCELERATIONS:
            raise UserError(f"unknown acceleration {mode!r}: choose one of {', '.join(ACCELERATIONS)}")
        if mode == "cuda-graphs" and cuda is None and model.device.type != "cuda":
            raise UserError("--accel cuda-graphs needs the model on a CUDA device (use --accel eager on CPU)")
        self.model = model
        self.mode = mode
        self._cuda = cuda
        self._compile_options = compile_options or {"mode": "max-autotune-no-cudagraphs"}
        self._encode: Callable | None = None
        self._renders: dict[Any, Callable] = {}

    def __getattr__(self, name: str) -> Any:           # label, device, precision, ... of the model
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)

    def _wrap(self, fn: Callable) -> Callable:
        if self.mode == "cuda-graphs":
            return GraphedCall(fn, self._cuda)
        if self.mode == "compile":
            return torch.compile(fn, dynamic=False, **self._compile_options)
        return fn

    def encode_prompt(self, prompt: torch.Tensor) -> torch.Tensor:
        return self.model.encode_prompt(prompt)        # once per style

    @torch.no_grad()
    def encode(self, image: torch.Tensor, tokens: torch.Tensor, taps: dict | None = None) -> torch.Tensor:
        if taps is not None or self.model.stochastic:
            return self.model.encode(image, tokens, taps=taps)
        if self._encode is None:
            self._encode = self._wrap(self.model.encode)
        device = self.model.device
        return self._encode(image.to(device), tokens.to(device).expand(image.shape[0], -1, -1))

    @torch.no_grad()
    def render(self, triplane: torch.Tensor, cameras: torch.Tensor, opts: Any = None) -> dict[str, torch.Tensor]:
        from threedpe.backends.graphs import RENDER_OUTPUTS
        from threedpe.renderer import RenderOptions

        opts = opts or RenderOptions()
        if self.model.stochastic or not opts.deterministic or not opts.superresolution:
            return self.model.render(triplane, cameras, opts)
        if opts not in self._renders:
            self._renders[opts] = self._wrap(
                lambda planes, cams: tuple(self.model.render(planes, cams, opts)[k] for k in RENDER_OUTPUTS))
        device = self.model.device
        outs = self._renders[opts](triplane.to(device), cameras.reshape(-1, 25).to(device, torch.float32))
        out = dict(zip(RENDER_OUTPUTS, outs))
        out["image_raw"] = out["feature_image"][:, :3]
        return out
