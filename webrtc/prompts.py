"""Uploaded image prompts: size/type checks by content (OpenCV decode), stored as PNG under an id."""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import cv2
import numpy as np

MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_SIDE = 4096
_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpeg"}


class PromptError(ValueError):
    """An upload that is not an acceptable image; the message says why."""


def image_kind(data: bytes) -> str | None:
    """"png", "jpeg" or "webp" from the file's first bytes, else None (the name is never trusted)."""
    for signature, kind in _SIGNATURES.items():
        if data.startswith(signature):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


class PromptStore:
    """Keeps validated image prompts in a private temp folder for the server's lifetime."""

    def __init__(self, max_bytes: int = MAX_UPLOAD_BYTES):
        self.max_bytes = max_bytes
        self._dir = tempfile.TemporaryDirectory(prefix="live3dpe-prompts-")

    def add(self, data: bytes) -> str:
        """Validate and store an upload; return its id (content hash, so re-uploads are free)."""
        if len(data) > self.max_bytes:
            raise PromptError(f"image prompt too large: {len(data)} bytes, the limit is {self.max_bytes}")
        if image_kind(data) is None:
            raise PromptError("image prompt must be a PNG, JPEG or WebP image")
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise PromptError("image prompt could not be decoded (corrupt or truncated image)")
        if max(bgr.shape[:2]) > MAX_SIDE or min(bgr.shape[:2]) < 16:
            raise PromptError(f"image prompt must be between 16 and {MAX_SIDE} pixels on each side")
        prompt_id = hashlib.sha1(data).hexdigest()[:20]
        path = self.path(prompt_id, must_exist=False)
        if not path.exists():
            cv2.imwrite(str(path), bgr)
        return prompt_id

    def path(self, prompt_id: str, must_exist: bool = True) -> Path:
        if not prompt_id.isalnum():
            raise PromptError("unknown image prompt id")
        path = Path(self._dir.name) / f"{prompt_id}.png"
        if must_exist and not path.exists():
            raise PromptError("unknown image prompt id: upload it again with POST /prompt")
        return path

    def close(self) -> None:
        self._dir.cleanup()
