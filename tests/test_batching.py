"""Batching streams onto one network: the micro-batcher (threads → batches → futures), and `BatchedNetwork`
giving each stream what an unbatched call gives it (B = 1, 2, 4, 8 through the real renderer and a stand-in
encoder; a small neural render without the 512² superresolution keeps the CPU time low)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from pipeline.batcher import MicroBatcher
from threedpe.backends.batched import BatchedNetwork, encode_batch, render_batch
from threedpe.camera import eural_to_camera_label
from threedpe.fill_rule import fill_by_rule
from threedpe.checkpoint import shapes_of
from threedpe.renderer import RenderOptions, TriplaneRenderer

SMALL = RenderOptions(neural_resolution=16, depth_resolution=6, depth_resolution_importance=6, superresolution=False)


def test_micro_batcher_batches_concurrent_requests_and_keeps_their_order():
    gate = threading.Event()
    calls: list[list[int]] = []

    def run(items):
        gate.wait(5)                                       # hold the first batch so the rest queue up
        calls.append(list(items))
        return [i * 10 for i in items]

    batcher = MicroBatcher(run, max_batch=4, max_wait_s=0.05)
    first = batcher.submit(0)
    futures = [batcher.submit(i) for i in range(1, 9)]
    gate.set()
    assert first.result(5) == 0 and [f.result(5) for f in futures] == [i * 10 for i in range(1, 9)]
    assert max(len(c) for c in calls) == 4 and sorted(sum(calls, [])) == list(range(9))
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(1)


def test_micro_batcher_hands_a_failure_to_every_caller_of_the_batch_and_goes_on():
    def run(items):
        if "bad" in items:
            raise ValueError("boom")
        return items

    batcher = MicroBatcher(run, max_batch=8, max_wait_s=0.2)
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda x: batcher.submit(x), ["a", "bad", "c"]))
    outcomes = {f.exception() is not None for f in results}
    assert True in outcomes                                # the batch with "bad" failed for each of its callers
    assert batcher("ok") == "ok"                           # and the worker is still serving
    batcher.close()


class _RendererNetwork:
    """The real TriplaneRenderer behind the network interface (the encoder is too slow for this CPU test)."""

    def __init__(self):
        self.renderer = TriplaneRenderer().eval()
        self.renderer.load_state_dict(fill_by_rule("renderer_state_dict", shapes_of(self.renderer), 3))
        self.device = torch.device("cpu")
        self.calls: list[int] = []

    @torch.no_grad()
    def render(self, triplane, cameras, opts=None):
        self.calls.append(triplane.shape[0])
        return self.renderer(triplane, cameras, opts)

    def encode(self, image, tokens, taps=None):
        self.calls.append(image.shape[0])
        return image.mean(1, keepdim=True).expand(-1, 96, -1, -1)[..., :256, :256] + tokens.mean()


@pytest.mark.parametrize("batch", [1, 2, 4, 8])
def test_batched_render_gives_each_stream_its_own_render(batch):
    net = _RendererNetwork()
    gen = torch.Generator().manual_seed(batch)
    planes = [torch.randn(1, 96, 256, 256, generator=gen) for _ in range(batch)]
    cams = [torch.from_numpy(eural_to_camera_label(0.1 * i - 0.3, 0.05 * i)).reshape(1, 25) for i in range(batch)]
    alone = [net.render(p, c, SMALL) for p, c in zip(planes, cams)]
    together = render_batch(net, list(zip(planes, cams)), SMALL)
    assert net.calls[-1] == batch
    for a, t in zip(alone, together):
        for key in ("feature_image", "image_depth", "weight_sum"):
            assert torch.allclose(a[key], t[key], atol=2e-5, rtol=1e-5), key


def test_batched_network_serves_concurrent_streams_in_batches():
    net = _RendererNetwork()
    batched = BatchedNetwork(net, max_batch=4, max_wait_s=0.5)
    gen = torch.Generator().manual_seed(7)
    planes = [torch.randn(1, 96, 256, 256, generator=gen) for _ in range(4)]
    cams = [torch.from_numpy(eural_to_camera_label(0.2 * i - 0.3, 0.0)).reshape(1, 25) for i in range(4)]
    with ThreadPoolExecutor(4) as pool:                    # four streams, one frame each
        outs = list(pool.map(lambda i: batched.render(planes[i], cams[i], SMALL), range(4)))
    assert batched.batch_sizes()["render"] == [4]          # one batched call for the four streams
    for i, out in enumerate(outs):
        assert torch.allclose(out["feature_image"], net.render(planes[i], cams[i], SMALL)["feature_image"], atol=2e-5)
    images = torch.rand(3, 3, 512, 512)
    tokens = torch.rand(1, 197, 768)
    triplanes = encode_batch(net, [(images[i:i + 1], tokens) for i in range(3)])
    assert len(triplanes) == 3 and all(t.shape == (1, 96, 256, 256) for t in triplanes)
    assert batched.device == net.device                   # the rest of the interface passes through
    batched.close()
