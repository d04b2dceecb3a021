"""Uploaded image prompts: size/type checks by content (header, then OpenCV decode), stored as PNG under an id
(the hash of the pixels, so an image is stored once), within a per-server quota that evicts the least
recently used prompt."""
from __future__ import annotations

import collections
import hashlib
import io
import re
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_SIDE = 4096
STORED_SIDE = 1024                 # px on the long side: both engines read a prompt at 512 px at most
MAX_PROMPTS = 64                   # per server: beyond these (or MAX_STORED_BYTES) the least recently used go
MAX_STORED_BYTES = 64 * 1024 * 1024
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
    """Keeps validated image prompts in a private temp folder for the server's lifetime, at most `max_prompts`
    of them and `max_stored_bytes` in all: adding one beyond that removes the least recently used (added or
    chosen by a peer). Peers already using an evicted prompt keep it (engines prepare a style once)."""

    def __init__(self, max_bytes: int = MAX_UPLOAD_BYTES, max_prompts: int = MAX_PROMPTS,
                 max_stored_bytes: int = MAX_STORED_BYTES):
        self.max_bytes = max_bytes
        self.max_prompts, self.max_stored_bytes = max_prompts, max_stored_bytes
        self._dir = tempfile.TemporaryDirectory(prefix="live3dpe-prompts-")
        self._sizes: collections.OrderedDict[str, int] = collections.OrderedDict()   # id → bytes, oldest use first
        self._lock = threading.Lock()          # `add` runs in worker threads, `path` on the event loop

    @property
    def stored_bytes(self) -> int:
        return sum(self._sizes.values())

    def add(self, data: bytes) -> str:
        """Validate and store an upload; return its id."""
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
        scale = STORED_SIDE / max(bgr.shape[:2])
        if scale < 1.0:
            bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        prompt_id = hashlib.sha1(repr(bgr.shape).encode() + bgr.tobytes()).hexdigest()[:20]
        with self._lock:
            if prompt_id in self._sizes:
                self._sizes.move_to_end(prompt_id)
                return prompt_id
        self.put(prompt_id, cv2.imencode(".png", bgr)[1].tobytes())
        return prompt_id

    def put(self, prompt_id: str, png: bytes) -> None:
        """Store a PNG that `add` (here or in another store) made under `prompt_id`, within the quota; the
        cluster's nodes keep the front's uploads this way."""
        if not is_prompt_id(prompt_id):
            raise PromptError("unknown image prompt id")
        with self._lock:
            self._path(prompt_id).write_bytes(png)
            self._sizes[prompt_id] = len(png)
            self._sizes.move_to_end(prompt_id)
            self._evict()

    def _evict(self) -> None:
        """Least recently used first, never the newest (it was just added)."""
        while len(self._sizes) > 1 and (len(self._sizes) > self.max_prompts or self.stored_bytes > self.max_stored_bytes):
            oldest, _ = self._sizes.popitem(last=False)
            self._path(oldest).unlink(missing_ok=True)

    def path(self, prompt_id: str) -> Path:
        """The stored file of a prompt (it becomes the most recently used)."""
        if not is_prompt_id(prompt_id):
            raise PromptError("unknown image prompt id")
        with self._lock:
            if prompt_id not in self._sizes:
                raise PromptError("unknown image prompt id: upload it again with POST /prompt")
            self._sizes.move_to_end(prompt_id)
            return self._path(prompt_id)

    def _path(self, prompt_id: str) -> Path:
        return Path(self._dir.name) / f"{prompt_id}.png"

    def close(self) -> None:
        self._dir.cleanup()
