"""`PersonSegmenter`: MediaPipe's selfie segmenter (Tasks `ImageSegmenter`) — an RGB image in, the soft person
mask (hair included) out. A thin wrapper: what the mask is used for belongs to its callers.

Long-lived users (engines) share one segmenter per model file for the process (`shared_segmenter`)."""
from __future__ import annotations

import threading

import mediapipe as mp
import numpy as np
from mediapipe.tasks.python import BaseOptions, vision

from pipeline.assets import SELFIE_SEGMENTER
from pipeline.errors import UserError
from stages import mediapipe_tasks

INPUT_SIDE = 256                    # the model's square input: images are resized to it internally


class PersonSegmenter:
    """One selfie segmenter in IMAGE mode (no temporal state: callers smooth; safe to share between threads);
    call `close()`."""

    def __init__(self, model_path: str | None = None):
        path = SELFIE_SEGMENTER.resolve(model_path)
        self._lock = threading.Lock()
        options = vision.ImageSegmenterOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.IMAGE,
            output_confidence_masks=True,
            output_category_mask=False,
        )
        try:
            self._segmenter = mediapipe_tasks.opened(vision.ImageSegmenter.create_from_options(options))
        except (RuntimeError, ValueError) as exc:        # not a segmenter model, a truncated download, ...
            raise UserError(f"cannot load the person segmenter {path} ({str(exc).splitlines()[0]}); pass "
                            f"MediaPipe's selfie_segmenter.tflite ({SELFIE_SEGMENTER.flag} or "
                            f"${SELFIE_SEGMENTER.env_var})") from None

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W) float32 person confidence in [0, 1] for an RGB uint8 image (H, W, 3)."""
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        with self._lock:
            if self._segmenter is None:
                raise RuntimeError("the person segmenter is closed")
            masks = self._segmenter.segment(image).confidence_masks
            return np.array(masks[0].numpy_view(), np.float32).reshape(rgb.shape[:2])

    def close(self) -> None:
        with self._lock:
            if self._segmenter is not None:
                mediapipe_tasks.close(self._segmenter)
                self._segmenter = None

    def __enter__(self) -> "PersonSegmenter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_shared: dict[str, PersonSegmenter] = {}
_shared_lock = threading.Lock()


def shared_segmenter(model_path: str | None = None) -> PersonSegmenter:
    """The process's segmenter for this model (loaded on first use, closed at exit); callers never close it."""
    key = str(SELFIE_SEGMENTER.resolve(model_path))
    with _shared_lock:
        if key not in _shared:
            _shared[key] = PersonSegmenter(key)
        return _shared[key]

