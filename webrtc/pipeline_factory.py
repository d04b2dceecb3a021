"""The per-peer edit pipeline: a fresh engine and stage chain (face → edit → render → composite) per call."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from pipeline.config import EditControls, EngineConfig
from pipeline.stage import Stage

if TYPE_CHECKING:
    from stages.face import FaceConfig


def edit_pipeline_factory(engine_config: EngineConfig, face_config: "FaceConfig | None" = None):
    """Return `make_pipeline(controls, on_style_error) -> (stages, engine)` for the server; each peer gets
    its own engine and face tracker (3dpe weights are shared by path, per-stream state is not)."""
    from stages.chain import build_edit_stages, create_engine
    from stages.face import FaceConfig

    face_config = face_config or FaceConfig(smoothing=True)

    def make_pipeline(controls: EditControls, on_style_error: Callable[[str], None]) -> tuple[list[Stage], Any]:
        engine = create_engine(engine_config)
        stages = build_edit_stages(controls, engine, face_config, live=True,
                                   on_error=on_style_error)
        return stages, engine

    return make_pipeline


def preset_names() -> list[str]:
    from stages.edit.classic import PRESETS
    return list(PRESETS)
