"""Thin wrapper over MediaPipe's Face Landmarker (Tasks API): frames in, `RawFace`s in pixels out."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import mediapipe as mp
import numpy as np
from mediapipe.tasks.python import BaseOptions, vision

from pipeline.errors import UserError
from stages import mediapipe_tasks


@dataclass
class RawFace:
    """One face as MediaPipe reports it, converted to frame pixels."""

    landmarks: np.ndarray            # (478, 3) float32: x, y pixels; z pixels (x scale), smaller = nearer
    transform: np.ndarray            # (4, 4) canonical face → camera (OpenGL axes: x right, y up, z to the viewer)
    blendshapes: dict[str, float]


class Landmarker:
    """One MediaPipe FaceLandmarker in VIDEO mode (`video=True`, temporal tracking) or IMAGE mode."""

    def __init__(self, model_path: str, max_faces: int, min_confidence: float, video: bool,
                 min_detection_confidence: float | None = None):
        self.video = video
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
            num_faces=max_faces,
            min_face_detection_confidence=max(min_confidence, min_detection_confidence or 0.0),
            min_face_presence_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        try:
            self._landmarker = mediapipe_tasks.opened(vision.FaceLandmarker.create_from_options(options))
        except (RuntimeError, ValueError) as exc:    # not a .task bundle, a truncated download, ...
            raise UserError(f"cannot load the face model {model_path} ({str(exc).splitlines()[0]}); "
                            "pass MediaPipe's face_landmarker.task (--face-model or $LIVE3DPE_FACE_MODEL)") from None

    def detect(self, frame: np.ndarray, timestamp_ms: int | None = None, pad: int = 0) -> list[RawFace]:
        """Faces in an RGB uint8 frame; VIDEO mode needs strictly increasing `timestamp_ms`.

        `pad` > 0 shows the model the frame inside a border of `pad` pixels (the frame's mean colour), i.e.
        at a smaller scale: MediaPipe's short-range detector misses a face that fills the frame or is cut by
        its edge, and finds it there. Landmarks are always in the frame's own pixels.
        """
        if pad > 0:
            fill = [float(c) for c in frame[::8, ::8].reshape(-1, 3).mean(0)]
            frame = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=fill)
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
        if self.video:
            result = self._landmarker.detect_for_video(image, int(timestamp_ms))
        else:
            result = self._landmarker.detect(image)
        h, w = frame.shape[:2]
        faces = []
        for i, points in enumerate(result.face_landmarks):
            landmarks = np.array([(p.x, p.y, p.z) for p in points], np.float32) * np.float32([w, h, w])
            landmarks[:, :2] -= pad
            transform = np.asarray(result.facial_transformation_matrixes[i], np.float64).reshape(4, 4)
            shapes = {c.category_name: float(c.score) for c in result.face_blendshapes[i]} if result.face_blendshapes else {}
            faces.append(RawFace(landmarks, transform, shapes))
        return faces

    def close(self) -> None:
        if self._landmarker is not None:
            mediapipe_tasks.close(self._landmarker)
            self._landmarker = None
