"""`FaceConfig`: every setting of the face stage in one typed object."""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.packets import CROP_SIZE


@dataclass(frozen=True)
class FaceConfig:
    """How faces are found, chosen, smoothed and cropped."""

    model_path: str | None = None   # face_landmarker.task; None: pipeline.assets.FACE_LANDMARKER.resolve()
    smoothing: bool = True          # causal One-Euro filtering of crop and pose (live sources)
    face_index: int | None = None   # None: the largest face; else the index in left-to-right order
    min_confidence: float = 0.5     # MediaPipe presence/tracking threshold
    # Finding a new face: MediaPipe's detector at its own default threshold; one threshold alone cannot
    # both keep turned and grayscale faces (lost at 0.8) and drop animals (a dog passes at 0.5), so every
    # new face also needs the second opinion below (stages.face.verify).
    min_detection_confidence: float = 0.5
    verify: bool = True             # YuNet confirms each new face (off: every MediaPipe face counts)
    verifier_path: str | None = None  # YuNet ONNX; None: pipeline.assets.YUNET.resolve()
    verify_min_score: float = 0.85  # YuNet's score on the face's aligned crops (real faces: ≥ 0.89)
    max_faces: int = 4
    crop_size: int = CROP_SIZE
    # One-Euro settings (cutoffs in Hz). Translation is filtered in crop pixels, scale as log-scale,
    # angles in radians; beta makes the filter follow fast motion with little lag. Scale gets a low
    # beta: talking moves the landmarks' spread (jaw, brows) while the head's distance changes slowly;
    # on ../shared d10.mp4 beta_scale 0.5 instead of 2 takes crop jitter from 0.47 to 0.34 px.
    min_cutoff: float = 0.4
    beta_translation: float = 0.005
    beta_scale: float = 0.5
    beta_angle: float = 2.0
    rotation_min_cutoff: float = 0.8
    rotation_beta: float = 1.0
    mask_downscale: int = 4         # the soft mask is drawn at 1/mask_downscale resolution

    def validated(self) -> "FaceConfig":
        if not all(0.0 <= v <= 1.0 for v in (self.min_confidence, self.min_detection_confidence, self.verify_min_score)):
            raise ValueError("min_confidence, min_detection_confidence and verify_min_score must be within 0..1")
        if self.max_faces < 1:
            raise ValueError("max_faces must be at least 1")
        if self.face_index is not None and not 0 <= self.face_index < self.max_faces:
            raise ValueError(f"face_index must be within 0..{self.max_faces - 1}")
        if self.crop_size < 16:
            raise ValueError("crop_size must be at least 16 px")
        if min(self.min_cutoff, self.rotation_min_cutoff) <= 0 or min(
                self.beta_translation, self.beta_scale, self.beta_angle, self.rotation_beta) < 0:
            raise ValueError("One-Euro cutoffs must be > 0 Hz and betas ≥ 0")
        return self
