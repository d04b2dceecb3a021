"""The torch backend's fast paths without a GPU: CUDA-graph bookkeeping against a stand-in for torch.cuda
(capture once per input shape, inputs copied into the static buffers, outputs cloned out), and the renderer
traced whole by torch.compile (dynamo, no graph breaks) giving the eager result. The real capture, replay and
Inductor speed are measured by benchmarks.gpu_suite on a GPU."""
from __future__ import annotations

import contextlib

import pytest
import torch

from pipeline.errors import UserError
from threedpe.backends.accelerated import AcceleratedNetwork, GraphedCall
from threedpe.camera import eural_to_camera_label
from threedpe.checkpoint import shapes_of
from threedpe.fill_rule import fill_by_rule
from threedpe.renderer import RenderOptions, TriplaneRenderer

SMALL = RenderOptions(neural_resolution=16, depth_resolution=6, depth_resolution_importance=6)


class FakeCuda:
    """Records what GraphedCall asks of torch.cuda; a 'replay' only counts (no kernels to re-run here)."""

    def __init__(self):
        self.captures, self.replays, self.stream_switches = 0, 0, 0
        fake = self

        class Graph:
            def replay(self):
                fake.replays += 1

        class Stream:
            def wait_stream(self, other):
                pass

        self.CUDAGraph, self.Stream = Graph, Stream

    def current_stream(self):
        return self.Stream()

    @contextlib.contextmanager
    def stream(self, stream):
        self.stream_switches += 1
        yield

    @contextlib.contextmanager
    def graph(self, graph, capture_error_mode="global"):
        assert capture_error_mode == "thread_local"          # the graph's stages run in other threads
        self.captures += 1
        yield


def test_graphed_call_captures_per_shape_and_copies_inputs_fake_cuda():
    cuda, seen = FakeCuda(), []

    def fn(x, y):
        seen.append(x.data_ptr())
        return x * 2 + y, y.sum()

    call = GraphedCall(fn, cuda=cuda, warmup=2)
    a, b = torch.ones(2, 3), torch.zeros(2, 3)
    out, total = call(a, b)
    assert cuda.captures == 1 and cuda.replays == 1 and cuda.stream_switches == 1 and len(seen) == 3
    assert len(set(seen)) == 1 and seen[0] not in (a.data_ptr(), b.data_ptr())    # static buffers, not the caller's
    assert torch.equal(out, torch.full((2, 3), 2.0)) and out.data_ptr() != seen[0]
    static_x = call._graphs[GraphedCall.signature((a, b))][1][0]
    call(torch.full((2, 3), 5.0), b)                            # same shapes: replay, the input copied in
    assert cuda.captures == 1 and cuda.replays == 2 and torch.equal(static_x, torch.full((2, 3), 5.0))
    call(torch.ones(4, 3), torch.zeros(4, 3))                   # a new batch size gets its own graph
    assert cuda.captures == 2 and call.captured == 2


class _RendererModel:
    """The real renderer behind the model interface AcceleratedNetwork wraps (no 170M-parameter encoder)."""

    stochastic = False
    device = torch.device("cpu")

    def __init__(self):
        self.renderer = TriplaneRenderer().eval()
        self.renderer.load_state_dict(fill_by_rule("renderer_state_dict", shapes_of(self.renderer), 5))

    @torch.no_grad()
    def render(self, triplane, cameras, opts=None):
        return self.renderer(triplane, cameras, opts)


def test_compile_traces_the_renderer_without_graph_breaks():
    model = _RendererModel()
    net = AcceleratedNetwork(model, "compile", compile_options={"backend": "eager", "fullgraph": True})
    planes = torch.randn(1, 96, 256, 256, generator=torch.Generator().manual_seed(0))
    cams = torch.from_numpy(eural_to_camera_label(0.3, 0.0))[None]
    ours, ref = net.render(planes, cams, SMALL), model.render(planes, cams, SMALL)
    for key in ("image", "feature_image", "image_depth", "weight_sum"):
        assert torch.allclose(ours[key], ref[key], atol=1e-5), key


def test_cuda_graphs_need_a_cuda_model():
    with pytest.raises(UserError, match="CUDA device"):
        AcceleratedNetwork(_RendererModel(), "cuda-graphs")
    with pytest.raises(UserError, match="unknown acceleration"):
        AcceleratedNetwork(_RendererModel(), "turbo")
