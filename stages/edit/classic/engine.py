"""ClassicEngine: the weight-free default engine — depth-proxy novel view of the whole frame plus head styles."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.packets import FaceObservation, RenderResult
from stages.edit.classic.depth_proxy import DepthProxy, build_proxy
from stages.edit.classic.head_mask import styled_head
from stages.edit.classic.normals import normals_from_depth
from stages.edit.classic.prompt import resolve_prompt
from stages.edit.classic.view_warp import (
    FrameResampler,
    ViewWarp,
    relative_view,
    warp_view,
)
from stages.edit.engine import Style
from stages.source_image import image_path_in

MOVED_PIXELS = 0.5                  # displacement (pixels) at which a pixel counts as fully changed


@dataclass
class ClassicScene:
    """What `encode` keeps of a frame: the frame, the tracked camera and the depth proxy (None: pass through)."""

    frame: np.ndarray
    camera: np.ndarray
    crop_matrix: np.ndarray         # frame → crop: the in-plane turn between the label's axes and the frame's
    proxy: DepthProxy | None
    style: Style


class ClassicEngine:
    """Engine protocol (stages.edit.engine) without weights: `prepare` / `encode` / `render` on the CPU.

    `grid_step` is the proxy's cell size in pixels (4: a 160×120 grid for 640×480); `fov_deg` the
    horizontal field of view assumed for the webcam (60°, a typical laptop camera).
    """

    name = "classic"
    device = "cpu"

    def __init__(self, grid_step: int = 4, fov_deg: float = 60.0):
        self.grid_step = grid_step
        self.fov_deg = fov_deg
        self._by_prompt: dict[str, Style] = {}
        self._by_key: dict[str, Style] = {}
        self._resampler = FrameResampler()

    def prepare(self, prompt: str | np.ndarray | Path | None) -> Style:
        """A Style for a preset name, free text, image path ("image:<path>" too), RGB array or None/"none".

        Cached twice: by the prompt as given (text: case and spaces ignored) and by the style's key, so
        different prompts meaning the same style share one Style.
        """
        asked = None
        if prompt is None or isinstance(prompt, Path):
            asked = str(prompt)
        elif isinstance(prompt, str):
            asked = prompt.strip() if image_path_in(prompt) else " ".join(prompt.lower().split())
        if asked in self._by_prompt:
            return self._by_prompt[asked]
        style = resolve_prompt(prompt)
        style = self._by_key.setdefault(style.key, style)
        if asked is not None:
            self._by_prompt[asked] = style
        return style

    def encode(self, face: FaceObservation, frame: np.ndarray, style: Style) -> ClassicScene:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be RGB uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
        proxy = build_proxy(face.landmarks, frame.shape[:2], self.grid_step, self.fov_deg)
        if proxy is not None and style.kind != "none":
            proxy.head = styled_head(proxy, frame, np.asarray(face.landmarks, np.float64))
        return ClassicScene(frame=frame, camera=np.asarray(face.camera, np.float64),
                            crop_matrix=np.asarray(face.crop_matrix, np.float64), proxy=proxy, style=style)

    def render(self, scene: ClassicScene, camera: np.ndarray) -> RenderResult:
        camera = np.asarray(camera, np.float64)
        if camera.shape != (25,) or not np.isfinite(camera).all():
            raise ValueError(f"camera must be a finite 25-number EG3D label, got shape {camera.shape}")
        frame = scene.frame
        h, w = frame.shape[:2]
        if scene.proxy is None:                                  # unusable face: defined pass-through
            return RenderResult(image=frame.copy(), mask=np.zeros((h, w), np.float32), space="frame", camera=camera)
        rotation, zoom = relative_view(scene.camera, camera, scene.crop_matrix)
        warp = warp_view(scene.proxy, rotation, zoom)
        if warp.identity:
            image, mask = frame.copy(), np.zeros((h, w), np.float32)
        else:
            image = self._resampler.remap(frame, warp)
            moved = np.clip(np.linalg.norm(warp.displacement, axis=2) / MOVED_PIXELS - 0.05, 0.0, 1.0)
            mask = np.zeros((h, w), np.float32)
            y0, y1, x0, x1 = self._resampler.region(warp, (h, w))
            mask[y0:y1, x0:x1] = self._resampler.upsample(cv2.dilate(moved, np.ones((3, 3), np.uint8)), warp, (h, w))
        if scene.style.kind != "none":
            self._paint(image, mask, warp, scene, zoom)
        return RenderResult(image=image, mask=np.clip(mask, 0.0, 1.0).astype(np.float32), space="frame",
                            camera=camera)

    def _paint(self, image: np.ndarray, mask: np.ndarray, warp: ViewWarp, scene: ClassicScene, zoom: float) -> None:
        """Repaint the head region of `image` in place with the style, feathered by the head weight."""
        h, w = image.shape[:2]
        if not (warp.head > 0.01).any():
            return
        gh, gw = warp.grid_shape
        normals = normals_from_depth(warp.depth, (w / gw, h / gh))
        fields = self._resampler.upsample(np.dstack([warp.head, normals]), warp, (h, w))
        y0, _, x0, _ = self._resampler.region(warp, (h, w))
        rows, cols = np.nonzero(fields[..., 0] > 0.01)                  # the head's box inside the region
        if rows.size == 0:
            return
        fy0, fy1, fx0, fx1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        fields = fields[fy0:fy1, fx0:fx1]
        y0, x0 = y0 + fy0, x0 + fx0
        y1, x1 = y0 + (fy1 - fy0), x0 + (fx1 - fx0)
        weight = np.ascontiguousarray(fields[..., 0])
        region = image[y0:y1, x0:x1]
        styled = scene.style.data.apply(region, fields[..., 1:], scene.proxy.face_width * zoom, weight)
        region[:] = cv2.blendLinear(styled, np.ascontiguousarray(region), weight, 1.0 - weight)
        np.maximum(mask[y0:y1, x0:x1], weight, out=mask[y0:y1, x0:x1])

