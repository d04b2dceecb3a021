"""Where an image prompt's face and hair are: MediaPipe's face landmarker finds the face, the head cut of the
styles (head_region.py) the hair around it. Models are loaded per prompt: prompts are rare, and prepared off the
hot path (and apart from the models the stream is using)."""
from __future__ import annotations

import cv2
import numpy as np

from pipeline.assets import FACE_LANDMARKER
from stages.edit.classic.head_region import HeadRegionTracker, plain_skin
from stages.edit.classic.image_look import PromptParts
from stages.face.landmarker import Landmarker
from stages.person_mask import PersonSegmenter


class PromptPartsFinder:
    """`finder(rgb)` → the prompt's `PromptParts`, or None when it shows no face."""

    def __init__(self, face_model: str | None = None, segmenter_model: str | None = None):
        self.face_model, self.segmenter_model = face_model, segmenter_model

    def __call__(self, rgb: np.ndarray) -> PromptParts | None:
        landmarker = Landmarker(str(FACE_LANDMARKER.resolve(self.face_model)), 1, 0.5, video=False)
        try:
            faces = landmarker.detect(np.ascontiguousarray(rgb))
        finally:
            landmarker.close()
        if not faces:
            return None
        landmarks = faces[0].landmarks.astype(np.float64)
        with PersonSegmenter(self.segmenter_model) as segmenter:
            region = HeadRegionTracker(segmenter)(rgb, landmarks)
        h, w = rgb.shape[:2]
        hair = np.zeros((h, w), np.float32)
        values, (y0, y1, x0, x1) = region.in_frame((h, w), "hair")
        hair[y0:y1, x0:x1] = values
        hull = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(hull, cv2.convexHull(np.round(landmarks[:, :2]).astype(np.int32)), 1)
        return PromptParts(skin=plain_skin(rgb, hull > 0), hair=(hair > 0.5) & (hull == 0),
                           face_width=region.face_width)
