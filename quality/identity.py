"""The meter's instruments: SFace identity similarity (YuNet + SFace) and the head pose our own face stage
measures on a frame."""
from __future__ import annotations

import cv2
import numpy as np

from pipeline.assets import SFACE, YUNET


class IdentityMeter:
    """SFace 128-D embeddings of the largest face YuNet finds; `similarity(a, b)` is their cosine
    (OpenCV Zoo: the same person above 0.363)."""

    def __init__(self, yunet_path: str | None = None, sface_path: str | None = None, min_score: float = 0.6):
        self._detector = cv2.FaceDetectorYN.create(str(YUNET.resolve(yunet_path)), "", (320, 320), min_score)
        self._recognizer = cv2.FaceRecognizerSF.create(str(SFACE.resolve(sface_path)), "")

    def embedding(self, rgb: np.ndarray) -> np.ndarray | None:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        self._detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, faces = self._detector.detect(bgr)
        if faces is None or len(faces) == 0:
            return None
        largest = max(faces, key=lambda f: f[2] * f[3])
        aligned = self._recognizer.alignCrop(bgr, largest)
        return self._recognizer.feature(aligned).copy()

    def cosine(self, a: np.ndarray, b: np.ndarray) -> float:
        """Cosine between two embeddings."""
        return float(self._recognizer.match(a, b, cv2.FaceRecognizerSF_FR_COSINE))

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float | None:
        """Cosine between the identities in two RGB frames; None when either has no face."""
        ea, eb = self.embedding(a), self.embedding(b)
        return None if ea is None or eb is None else self.cosine(ea, eb)


class PoseMeter:
    """Head pose (yaw, pitch, roll in degrees, threedpe.camera convention) as our face stage measures it."""

    def __init__(self, face_config=None):
        from stages.face import FaceConfig, FaceTracker

        self._tracker = FaceTracker(face_config or FaceConfig(smoothing=False))

    def pose(self, rgb: np.ndarray) -> tuple[float, float, float] | None:
        face = self._tracker.detect(rgb).face
        return None if face is None else (face.yaw, face.pitch, face.roll)

    def close(self) -> None:
        self._tracker.close()


def pose_change(meter: PoseMeter, before: np.ndarray, after: np.ndarray) -> tuple[float, float] | None:
    """(Δyaw, Δpitch) measured from `before` to `after`; None when a face is missing in either."""
    a, b = meter.pose(before), meter.pose(after)
    if a is None or b is None:
        return None
    return b[0] - a[0], b[1] - a[1]
