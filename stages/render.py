"""The render stage: draws the packet's scene from the virtual camera (tracked camera + the user's offsets,
or the absolute frontal camera), plus the extra angles of the grid mode."""
from __future__ import annotations

import numpy as np

from pipeline.config import EditControls, EditSettings
from pipeline.packets import FramePacket
from pipeline.stage import Stage
from stages.edit.engine import Engine
from threedpe.camera import apply_offsets, orbit_label


def virtual_camera(tracked: np.ndarray, settings: EditSettings, yaw: float | None = None) -> np.ndarray:
    """The camera to render from: `tracked` moved by the user's offsets (`yaw` overrides the user's yaw, for
    the grid's fixed angles; zero offsets give `tracked` itself), or the frontal camera plus those offsets
    when looking at the lens."""
    yaw = settings.yaw if yaw is None else yaw
    if settings.look_at_lens:
        return orbit_label(yaw, settings.pitch, settings.roll, settings.zoom)
    return apply_offsets(tracked, yaw, settings.pitch, settings.roll, settings.zoom)


class RenderStage(Stage):
    """Fills each edited face's `render` from its scene at that face's camera in this frame (so a reused scene
    still follows the head). Only the chosen face is drawn for the crop and grid modes, which show it alone."""

    name = "render"

    def __init__(self, controls: EditControls, engine: Engine):
        self.controls = controls
        self.engine = engine

    def process(self, packet: FramePacket) -> FramePacket:
        settings = self.controls.current
        if not settings.enabled:
            return packet
        shown = packet.edits if settings.mode in ("paste", "side-by-side") else packet.edits[:1]
        for edit in shown:
            if edit.scene is None:
                continue
            if settings.mode == "grid":                        # the grid shows only its fixed angles
                views = [self.engine.render(edit.scene, virtual_camera(edit.face.camera, settings, y))
                         for y in settings.grid_yaws or (settings.yaw,)]
                edit.render = views[0]
                edit.render.views = [v.image for v in views]
            else:
                edit.render = self.engine.render(edit.scene, virtual_camera(edit.face.camera, settings))
        return packet
