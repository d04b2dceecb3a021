"""Face tracks: which face of this frame continues which face of the last one, each with its own smoothing
and its own verdict (is it a human face?)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from stages.face.config import FaceConfig
from stages.face.smoothing import OneEuroFilter, RotationOneEuroFilter

# Between two frames a crop centre moving by more than this fraction of the crop (about half a head width),
# or the face's scale changing by more than this log step (35 %), is not head motion but another face or
# a cut: a new track, and no smoothing across it.
JUMP_FRACTION = 0.25
MAX_LOG_SCALE_STEP = 0.3
# A track whose face looks different from one frame to the next (mean absolute difference of 16² grey
# thumbnails of the landmarks' box, 0..255) may no longer be the face it was confirmed as.
APPEARANCE_JUMP = 40.0


@dataclass
class Track:
    """One face followed over frames."""

    id: int
    params: np.ndarray              # the last raw crop parameters (cx, cy, log scale, angle; alignment.to_params)
    crop_filter: OneEuroFilter
    rotation_filter: RotationOneEuroFilter
    verified: bool = False          # confirmed as a human face (stages.face.verify)
    checked_ms: int | None = None   # source time of the last second opinion
    misses: int = 0                 # failed re-checks in a row since it was confirmed
    thumbnail: np.ndarray | None = None   # the face's look in the last frame (see `thumbnail`)

    @classmethod
    def start(cls, track_id: int, params: np.ndarray, c: FaceConfig) -> "Track":
        crop = OneEuroFilter(c.min_cutoff, [c.beta_translation, c.beta_translation, c.beta_scale, c.beta_angle])
        return cls(track_id, params, crop, RotationOneEuroFilter(c.rotation_min_cutoff, c.rotation_beta))

    def reset_smoothing(self) -> None:
        self.crop_filter.reset()
        self.rotation_filter.reset()

    def looks_changed(self, frame: np.ndarray, landmarks: np.ndarray) -> bool:
        """Whether the face looks abruptly different from the last frame (remembers this frame's look)."""
        previous, self.thumbnail = self.thumbnail, thumbnail(frame, landmarks)
        return previous is not None and float(np.abs(self.thumbnail - previous).mean()) > APPEARANCE_JUMP


def thumbnail(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """16² grey thumbnail (float32) of the landmarks' bounding box: a fraction of a millisecond."""
    h, w = frame.shape[:2]
    x0, y0 = np.clip(np.floor(landmarks[:, :2].min(0)).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(landmarks[:, :2].max(0)).astype(int) + 1, [x0 + 1, y0 + 1], [w, h])
    step = max(1, min(x1 - x0, y1 - y0) // 32)                 # area-average from every step-th pixel only
    box = cv2.resize(frame[y0:y1:step, x0:x1:step], (16, 16), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(box, cv2.COLOR_RGB2GRAY).astype(np.float32)


def continues(tracks: list[Track], params: list[np.ndarray], crop_size: int) -> list[int | None]:
    """For each new face (its crop parameters), the index of the track it continues, or None for a new face.

    Nearest crop centres pair first; each track is continued at most once.
    """
    pairs = []
    for i, p in enumerate(params):
        for j, track in enumerate(tracks):
            distance = math.hypot(*(p[:2] - track.params[:2]))
            reach = JUMP_FRACTION * crop_size * math.exp(track.params[2])   # frame px per crop px
            if distance <= reach and abs(p[2] - track.params[2]) <= MAX_LOG_SCALE_STEP:
                pairs.append((distance, i, j))
    result: list[int | None] = [None] * len(params)
    taken: set[int] = set()
    for _, i, j in sorted(pairs):
        if result[i] is None and j not in taken:
            result[i] = j
            taken.add(j)
    return result
