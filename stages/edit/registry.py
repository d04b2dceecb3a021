"""Engine creation by name: `create_engine(EngineConfig) -> Engine` (classic or 3dpe)."""
from __future__ import annotations

from pipeline.config import EngineConfig
from pipeline.errors import UserError
from stages.edit.engine import Engine

ENGINES = ("classic", "3dpe")


def create_engine(config: EngineConfig) -> Engine:
    """A fresh engine (per stream/peer: engines hold temporal state); 3dpe model weights are shared by path."""
    if config.name == "classic":
        if config.weights or config.random_weights:
            raise UserError("the classic engine uses no weights: drop --weights/--random-weights or use --engine 3dpe")
        from stages.edit.classic import ClassicEngine

        return ClassicEngine(segmenter_model=config.segmenter_model, face_model=config.face_model)
    if config.name == "3dpe":
        from stages.edit.threedpe_engine import ThreeDPEEngine

        return ThreeDPEEngine(config)
    raise UserError(f"unknown engine {config.name!r}: choose one of {', '.join(ENGINES)}")
