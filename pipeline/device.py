"""Per-stage CUDA streams with event handoff between stages; a no-op on CPU.

Each stage runs its `process` under its own stream after waiting (on that stream, not on the
host) for the event the previous stage recorded on the packet; then it records a new event.
No global synchronize, and stages never see any of this.
"""
from __future__ import annotations

import sys
from dataclasses import fields, is_dataclass
from typing import Any, Callable

from pipeline.packets import FramePacket


def default_cuda() -> Any | None:
    """torch.cuda if torch is already imported and a GPU is present, else None.

    A stage that uses CUDA imports torch in its `start()`; when nothing imported torch, no stage
    can have queued GPU work, so we skip the (slow) import.
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return torch.cuda


class StreamHandoff:
    """Owns one CUDA stream per stage name; `call(name, fn, packet)` wraps a stage call."""

    def __init__(self, cuda: Any | None = None):
        self.cuda = cuda
        self._streams: dict[str, Any] = {}

    @property
    def enabled(self) -> bool:
        return self.cuda is not None

    def stream_for(self, name: str) -> Any:
        if name not in self._streams:
            self._streams[name] = self.cuda.Stream()
        return self._streams[name]

    def call(self, name: str, fn: Callable[[FramePacket], Any], packet: FramePacket) -> Any:
        """`fn(packet)` on `name`'s stream, ordered after the packet's producer; the result carries the new event."""
        if not self.enabled:
            return fn(packet)
        stream = self.stream_for(name)
        if packet.cuda_event is not None:
            stream.wait_event(packet.cuda_event)
            # The producer may drop its references now; without this the caching allocator could hand
            # the memory to new work on the producer's stream while this stream still reads it.
            for tensor in gpu_tensors(packet):
                tensor.record_stream(stream)
        with self.cuda.stream(stream):
            result = fn(packet)
        if isinstance(result, FramePacket):
            event = self.cuda.Event()
            event.record(stream)
            result.cuda_event = event
        return result


def gpu_tensors(packet: FramePacket) -> list[Any]:
    """Tensors a packet hands on: each edited face's `scene` when it is a tensor, or the tensor fields of a
    dataclass/dict scene, and its render's image and mask when a GPU-resident engine left them on the device;
    the uploaded `device_frame`."""
    values = [packet.device_frame]
    for edit in packet.edits:
        scene = edit.scene
        if scene is None:
            pass
        elif is_dataclass(scene):
            values += [getattr(scene, f.name) for f in fields(scene)]
        elif isinstance(scene, dict):
            values += list(scene.values())
        else:
            values.append(scene)
        if edit.render is not None:
            values += [edit.render.image, edit.render.mask]
    return [v for v in values if getattr(v, "is_cuda", False) and hasattr(v, "record_stream")]


def resolve_device(name: str) -> str:
    """"auto" → "cuda" when a GPU is present, else "cpu"; a CUDA name without CUDA is a UserError."""
    import torch

    from pipeline.errors import UserError

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available here; use --device cpu")
    return name
