"""The face stage: MediaPipe tracking, head pose as an EG3D camera, the EG3D-aligned 512² crop."""
from stages.face.config import FaceConfig
from stages.face.stage import FaceStage
from stages.face.tracker import FaceTracker

__all__ = ["FaceConfig", "FaceStage", "FaceTracker"]
