"""The face stage: MediaPipe tracking, head pose as an EG3D camera, the EG3D-aligned 512² crop.

`FaceStage` and `FaceTracker` are imported on first use, so the MediaPipe-free parts (alignment, pose,
smoothing) load on machines without MediaPipe (the GPU benchmark machines)."""
from stages.face.config import FaceConfig

__all__ = ["FaceConfig", "FaceStage", "FaceTracker"]


def __getattr__(name: str):
    if name == "FaceStage":
        from stages.face.stage import FaceStage
        return FaceStage
    if name == "FaceTracker":
        from stages.face.tracker import FaceTracker
        return FaceTracker
    raise AttributeError(f"module 'stages.face' has no attribute {name!r}")
