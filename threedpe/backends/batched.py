"""`BatchedNetwork`: many streams, one network — their encoder and render calls are run in batches.

Each stream's engine calls `encode(image, tokens)` / `render(triplane, cameras)` with batch 1 as before;
the calls of all streams are collected by two `pipeline.batcher.MicroBatcher`s and run as one batched call
(B up to `max_batch`), then split again. `encode_batch` / `render_batch` are the pure batch functions, for
a serving layer with its own batching (Ray Serve's `@serve.batch`) to call directly.
"""
from __future__ import annotations

import threading
from typing import Any

import torch

from pipeline.batcher import MicroBatcher


def encode_batch(network: Any, requests: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """[(image [1,3,512,512], tokens [1,197,768]), ...] → one triplane [1,96,256,256] per request."""
    images = torch.cat([image.to(network.device) for image, _ in requests])
    tokens = torch.cat([tok.to(network.device) for _, tok in requests])
    return list(network.encode(images, tokens).split(1))


def render_batch(network: Any, requests: list[tuple[torch.Tensor, torch.Tensor]], options: Any = None
                 ) -> list[dict[str, torch.Tensor]]:
    """[(triplane [1,96,256,256], camera [1,25]), ...] → one render dict (batch 1) per request.

    Every request is one triplane seen from one camera (a cached triplane re-rendered at a frame's camera);
    the batch renders triplane i from camera i."""
    planes = torch.cat([planes.to(network.device) for planes, _ in requests])
    cameras = torch.cat([cams.reshape(1, 25).to(network.device, torch.float32) for _, cams in requests])
    out = network.render(planes, cameras, options)
    return [{k: v[i:i + 1] for k, v in out.items() if torch.is_tensor(v)} for i in range(len(requests))]


class BatchedNetwork:
    """Wraps a network (ThreeDPE or a backend); `encode`/`render` of batch 1 from any thread are batched.

    Renders are grouped by their render options (only equal options share a batch). Calls with a batch
    larger than 1, encoder taps or several cameras go straight to the network.
    """

    def __init__(self, network: Any, max_batch: int = 8, max_wait_s: float = 0.002):
        self.network = network
        self.max_batch = max_batch
        self._encoder = MicroBatcher(lambda reqs: encode_batch(network, reqs), max_batch, max_wait_s, "batch-encode")
        self._renderers: dict[Any, MicroBatcher] = {}
        self._max_wait_s = max_wait_s
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:          # label, is_random, device, precision, ... of the network
        if name == "network":
            raise AttributeError(name)
        return getattr(self.network, name)

    def encode_prompt(self, prompt: torch.Tensor) -> torch.Tensor:
        return self.network.encode_prompt(prompt)      # once per style: not worth batching

    def encode(self, image: torch.Tensor, tokens: torch.Tensor, taps: dict | None = None) -> torch.Tensor:
        if taps is not None or image.shape[0] != 1:
            return self.network.encode(image, tokens, taps=taps)
        return self._encoder((image, tokens[:1]))

    def render(self, triplane: torch.Tensor, cameras: torch.Tensor, opts: Any = None) -> dict[str, torch.Tensor]:
        cameras = cameras.reshape(-1, 25)
        if triplane.shape[0] != 1 or cameras.shape[0] != 1 or (opts is not None and not opts.deterministic):
            return self.network.render(triplane, cameras, opts)
        return self._renderer(opts)((triplane, cameras))

    def _renderer(self, opts: Any) -> MicroBatcher:
        with self._lock:                                # RenderOptions is frozen, so it is a dict key
            if opts not in self._renderers:
                self._renderers[opts] = MicroBatcher(lambda reqs: render_batch(self.network, reqs, opts),
                                                     self.max_batch, self._max_wait_s, "batch-render")
            return self._renderers[opts]

    def batch_sizes(self) -> dict[str, list[int]]:
        """Recent batch sizes of the encoder and the renderers (how well the streams share the GPU)."""
        renders = [n for b in self._renderers.values() for n in b.batch_sizes]
        return {"encode": list(self._encoder.batch_sizes), "render": renders}

    def close(self) -> None:
        self._encoder.close()
        for batcher in self._renderers.values():
            batcher.close()
