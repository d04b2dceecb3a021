"""Is it a human face? A cheap landmark-geometry check for every face, and a second opinion from YuNet.

MediaPipe's detector alone trades misses for false faces through one threshold (at 0.8 it loses turned
and grayscale faces, at 0.5 it takes a dog for a face), and its landmark model fits a face mesh to
whatever it is given. So faces are found at a lower threshold and then confirmed by YuNet, a detector
trained on human faces, on the face's own EG3D-aligned crop (upright, the face at a fixed size) at four
sizes: at each, YuNet must score ≥ 0.85 and put the eyes, nose tip and mouth corners within 0.4 eye
distances of MediaPipe's; a face needs three of the four. Measured on ../shared: every portrait (as is,
mirrored, grayscale, turned ±10°/±20°: 20 variants each) scores 0.89–0.95 at every size, and every
sampled frame of every clip ≥ 0.89 with points ≤ 0.4 off; the shiba dog (same 20 variants) scores
0.0–0.88 with its points up to 0.9 eye distances off, and agrees at two sizes at most.
"""
from __future__ import annotations

import cv2
import numpy as np

from pipeline.assets import YUNET
from stages.face import alignment

CHECK_SIZES = (112, 128, 160, 192)  # sides of the aligned crops YuNet looks at (the face is ~45 % of the width)
VOTES = 3                           # sizes at which YuNet must agree
MAX_POINT_ERROR = 0.4               # YuNet's five points within this many eye distances of MediaPipe's
# Bounds of the scaled-orthographic (POS) fit of the five points to the 3D face template: residual per
# unit of scale, ratio and skew of the two projection rows. Human faces in any pose measured here stay
# below 0.05, within 0.85..1.35 and below 0.15; a mesh outside these bounds is no human head.
MAX_FIT_RESIDUAL = 0.1
ANISOTROPY = (0.6, 1.7)
MAX_SKEW = 0.35
_TEMPLATE = np.hstack([alignment.STANDARD_3D, np.ones((5, 1))])   # [X, 1] of the POS fit


def plausible(landmarks: np.ndarray) -> bool:
    """Whether the five key points of a (478, ≥2) landmark set can be a human face seen by a camera."""
    points = alignment.mtcnn_points(landmarks)
    if not np.isfinite(points).all():
        return False
    k = alignment.POS_SOLVE @ points                          # [X, 1] @ k ≈ points
    rows = k[:3].T                                            # the projection's x and y rows
    norms = np.linalg.norm(rows, axis=1)
    if norms.min() < 1e-6:
        return False
    residual = np.sqrt(((_TEMPLATE @ k - points) ** 2).sum(1).mean()) / norms.mean()
    skew = abs(rows[0] @ rows[1]) / (norms[0] * norms[1])
    return bool(residual < MAX_FIT_RESIDUAL and ANISOTROPY[0] <= norms[0] / norms[1] <= ANISOTROPY[1] and skew < MAX_SKEW)


class FaceVerifier:
    """YuNet (OpenCV Zoo, resolved like every model: path → $LIVE3DPE_YUNET_MODEL → cache → download)."""

    def __init__(self, model_path: str | None = None, min_score: float = 0.85):
        self.min_score = min_score
        self._yunet = cv2.FaceDetectorYN.create(str(YUNET.resolve(model_path)), "", (CHECK_SIZES[0],) * 2, 0.3)

    def confirms(self, frame: np.ndarray, landmarks: np.ndarray) -> bool:
        """True when YuNet agrees with MediaPipe at VOTES of the crop sizes (stops as soon as that is decided)."""
        votes = 0
        for n, size in enumerate(CHECK_SIZES):
            votes += self._agrees(frame, landmarks, size)
            if votes >= VOTES or votes + len(CHECK_SIZES) - n - 1 < VOTES:
                break
        return votes >= VOTES

    def _agrees(self, frame: np.ndarray, landmarks: np.ndarray, size: int) -> bool:
        matrix = alignment.crop_matrix(landmarks, size)
        crop = alignment.warp_crop(frame, matrix, size)
        self._yunet.setInputSize((size, size))
        _, found = self._yunet.detect(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        if found is None:
            return False
        points = np.asarray(landmarks, np.float64)[:, :2] - 0.5      # pixel-index coordinates, as crop_matrix
        ours = alignment.mtcnn_points(points @ matrix[:, :2].T + matrix[:, 2])
        eyes = max(float(np.linalg.norm(ours[1] - ours[0])), 1e-6)
        for face in found:                                    # x, y, w, h, 5 × (x, y), score
            error = np.linalg.norm(face[4:14].reshape(5, 2) - ours, axis=1).max() / eyes
            if face[-1] >= self.min_score and error <= MAX_POINT_ERROR:
                return True
        return False
