"""Uploaded image prompts: size/type checks by content (header, then OpenCV decode), stored as PNG under an id."""
from __future__ import annotations

import hashlib
import io
import re
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_SIDE = 4096
_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpeg"}
_PROMPT_ID = re.compile(r"[0-9a-f]{20}")          # what `PromptStore.add` returns
BAD_SIZE = f"image prompt must be between 16 and {MAX_SIDE} pixels on each side"
UNDECODABLE = "image prompt could not be decoded (corrupt or truncated image)"


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


def is_prompt_id(text: object) -> bool:
    """True for text shaped like an id `PromptStore.add` returns (never a path)."""
    return isinstance(text, str) and _PROMPT_ID.fullmatch(text) is not None


def header_size(data: bytes) -> tuple[int, int]:
    """(width, height) read from the image header alone, before any pixel is decoded: a small PNG can
    inflate to gigabytes, so the size limit must be checked before decoding."""
    try:
        with Image.open(io.BytesIO(data), formats=["PNG", "JPEG", "WEBP"]) as image:
            return image.size
    except Image.DecompressionBombError:
        raise PromptError(BAD_SIZE) from None
    except Exception:                        # Pillow raises several types for unreadable headers
        raise PromptError(UNDECODABLE) from None


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
        width, height = header_size(data)
        if max(width, height) > MAX_SIDE or min(width, height) < 16:
            raise PromptError(BAD_SIZE)
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise PromptError(UNDECODABLE)
        prompt_id = hashlib.sha1(data).hexdigest()[:20]
        path = self.path(prompt_id, must_exist=False)
        if not path.exists():
            cv2.imwrite(str(path), bgr)
        return prompt_id

    def path(self, prompt_id: str, must_exist: bool = True) -> Path:
        if not is_prompt_id(prompt_id):
            raise PromptError("unknown image prompt id")
        path = Path(self._dir.name) / f"{prompt_id}.png"
        if must_exist and not path.exists():
            raise PromptError("unknown image prompt id: upload it again with POST /prompt")
        return path

    def close(self) -> None:
        self._dir.cleanup()
