"""Frames to the engine's device once (pinned host memory, non-blocking copies) and finished frames back."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


def is_tensor(x: Any) -> bool:
    """True for a torch tensor, without importing torch for NumPy-only callers."""
    return type(x).__module__.startswith("torch") and hasattr(x, "device")


def to_host(x: Any) -> np.ndarray:
    """A tensor (any device) or an array → a NumPy array."""
    return x.detach().cpu().numpy() if is_tensor(x) else np.asarray(x)


class FrameUploader:
    """uint8 HWC frames → tensors on `device`. On CUDA the copy goes through a small ring of pinned buffers
    and does not block the host; a buffer is reused only after its previous copy has finished. On CPU the
    array is wrapped without a copy."""

    def __init__(self, device: str | torch.device, ring: int = 3):
        self.device = torch.device(device)
        self._slots: list[tuple[torch.Tensor, Any] | None] = [None] * ring
        self._count = 0

    def upload(self, frame: np.ndarray) -> torch.Tensor:
        frame = np.ascontiguousarray(frame)
        if self.device.type != "cuda":
            return torch.from_numpy(frame).to(self.device)
        index = self._count % len(self._slots)
        self._count += 1
        slot = self._slots[index]
        if slot is not None:
            slot[1].synchronize()                       # the slot's last copy must be done before it is rewritten
        host = slot[0] if slot is not None and tuple(slot[0].shape) == frame.shape else \
            torch.empty(frame.shape, dtype=torch.uint8, pin_memory=True)
        host.numpy()[...] = frame
        out = host.to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._slots[index] = (host, event)
        return out
