"""ClassicEngine: the weight-free default engine — depth-proxy novel view of the whole frame plus head styles."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.packets import FaceObservation, RenderResult
from stages.edit.classic.depth_proxy import DepthProxy, build_proxy
from stages.edit.classic.head_region import HeadRegion, HeadRegionTracker
from stages.edit.classic.prompt import resolve_prompt
from stages.edit.classic.prompt_parts import PromptPartsFinder
from stages.edit.classic.shading import band_pass, normals_from_depth
from stages.edit.classic.styles import Canvas
from stages.edit.classic.view_warp import FrameResampler, ViewWarp, relative_view, warp_view
from stages.edit.engine import Style
from stages.person_mask import PersonSegmenter
from stages.source_image import image_path_in

MOVED_PIXELS = 0.5                  # displacement (pixels) at which a pixel counts as fully changed
FOLLOW_SOFTNESS = 0.12              # the head's follow weight is blurred by this many face widths (no tear at the collar)
DETAIL_SMOOTHING = 0.85             # weight of the previous frames in the head's detail contrast
MAX_FACES = 8                       # tracked faces whose smoothing state is kept


@dataclass
class ClassicScene:
    """What `encode` keeps of a frame: the frame, the tracked camera, the depth proxy (None: pass through) and,
    for styles, where the head is (frame-sized weights) and its detail contrast."""

    frame: np.ndarray
    camera: np.ndarray
    crop_matrix: np.ndarray         # frame → crop: texture coordinates, and the labels' in-plane turn
    proxy: DepthProxy | None
    style: Style
    head: np.ndarray | None = None  # (H, W) float32 head weight in the frame
    hair: np.ndarray | None = None  # (H, W) float32: its part that is not skin (the hair)
    detail: float = 0.05


class ClassicEngine:
    """Engine protocol (stages.edit.engine) without weights: `prepare` / `encode` / `render` on the CPU.

    `grid_step` is the proxy's cell size in pixels (4: a 160×120 grid for 640×480); `fov_deg` the
    horizontal field of view assumed for the webcam (60°, a typical laptop camera). The person segmenter
    (`segmenter_model`, looked up like every model) finds the head the styles cover, and with the face model
    (`face_model`) the face and hair of image prompts; call `close()`.
    """

    name = "classic"
    device = "cpu"

    def __init__(self, grid_step: int = 4, fov_deg: float = 60.0, segmenter_model: str | None = None,
                 face_model: str | None = None):
        self.grid_step = grid_step
        self.fov_deg = fov_deg
        self._by_prompt: dict[str, Style] = {}
        self._by_key: dict[str, Style] = {}
        self._resampler = FrameResampler()
        self._segmenter = PersonSegmenter(segmenter_model)
        self._faces: OrderedDict[int, _FaceState] = OrderedDict()   # per tracked face: what is smoothed over frames
        self._prompt_parts = PromptPartsFinder(face_model, segmenter_model)

    def close(self) -> None:
        self._segmenter.close()

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
        style = resolve_prompt(prompt, self._prompt_parts)
        style = self._by_key.setdefault(style.key, style)
        if asked is not None:
            self._by_prompt[asked] = style
        return style

    def encode(self, face: FaceObservation, frame: np.ndarray, style: Style) -> ClassicScene:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be RGB uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
        landmarks = np.asarray(face.landmarks, np.float64)
        proxy = build_proxy(landmarks, frame.shape[:2], self.grid_step, self.fov_deg)
        scene = ClassicScene(frame=frame, camera=np.asarray(face.camera, np.float64),
                             crop_matrix=np.asarray(face.crop_matrix, np.float64), proxy=proxy, style=style)
        state = self._face_state(face.track)
        if proxy is None:
            state.heads.reset()
            return scene
        region = state.heads(frame, landmarks)
        on_grid = region.on_grid(proxy.u, proxy.v)           # the whole head, hair included, turns with it
        soft = max(0.5, FOLLOW_SOFTNESS * proxy.face_width / self.grid_step)
        proxy.follow = np.maximum(proxy.follow, cv2.GaussianBlur(on_grid, (0, 0), soft))
        if style.kind != "none":
            scene.head, scene.hair = _in_frame(region, frame.shape[:2])
            scene.detail = state.detail_contrast(frame, scene.head, proxy.face_width)
        return scene

    def _face_state(self, track: int) -> "_FaceState":
        state = self._faces.pop(track, None) or _FaceState(HeadRegionTracker(self._segmenter))
        self._faces[track] = state
        while len(self._faces) > MAX_FACES:                   # faces long gone
            self._faces.popitem(last=False)
        return state

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
        mask = np.zeros((h, w), np.float32)
        source_map = None
        if warp.identity:
            image = frame.copy()
        else:
            source_map = self._resampler.source_map(warp, (h, w))
            image = self._resampler.remap(frame, warp, source_map)
            moved = np.clip(np.linalg.norm(warp.displacement, axis=2) / MOVED_PIXELS - 0.05, 0.0, 1.0)
            y0, y1, x0, x1 = self._resampler.region(warp, (h, w))
            mask[y0:y1, x0:x1] = self._resampler.upsample(cv2.dilate(moved, np.ones((3, 3), np.uint8)), warp, (h, w))
        if scene.head is not None:
            self._paint(image, mask, warp, source_map, scene, zoom)
        return RenderResult(image=image, mask=np.clip(mask, 0.0, 1.0).astype(np.float32), space="frame",
                            camera=camera)

    def _paint(self, image: np.ndarray, mask: np.ndarray, warp: ViewWarp,
               source_map: tuple[np.ndarray, np.ndarray] | None, scene: ClassicScene, zoom: float) -> None:
        """Repaint the head in `image` (the view) in place with the style, blended by the head's weight there."""
        h, w = image.shape[:2]
        head, hair = scene.head, scene.hair
        if source_map is not None:                  # the head's weight goes where its pixels went
            head = self._resampler.remap(head, warp, source_map, cv2.BORDER_CONSTANT)
            hair = self._resampler.remap(hair, warp, source_map, cv2.BORDER_CONSTANT)
        y0, y1, x0, x1 = self._resampler.region(warp, (h, w))
        rows, cols = np.nonzero(head[y0:y1, x0:x1] > 0.01)       # the head turns, so it lies in the warp's region
        if rows.size == 0:
            return
        box = slice(y0 + rows.min(), y0 + rows.max() + 1), slice(x0 + cols.min(), x0 + cols.max() + 1)
        weight = np.ascontiguousarray(head[box])
        gh, gw = warp.grid_shape
        normals = self._resampler.upsample(normals_from_depth(warp.depth, (w / gw, h / gh)), warp, (h, w))
        normals = normals[box[0].start - y0:box[0].stop - y0, box[1].start - x0:box[1].stop - x0]
        canvas = Canvas(rgb=np.ascontiguousarray(image[box]), weight=weight, hair=np.ascontiguousarray(hair[box]),
                        normals=normals, uv=_crop_coordinates(scene.crop_matrix, box, source_map, warp, self._resampler,
                                                              (h, w)),
                        face_width=scene.proxy.face_width * zoom, detail=scene.detail)
        styled = scene.style.data.apply(canvas)
        image[box] = cv2.blendLinear(styled, canvas.rgb, weight, 1.0 - weight)
        np.maximum(mask[box], weight, out=mask[box])


@dataclass
class _FaceState:
    """What the engine smooths over frames for one tracked face."""

    heads: HeadRegionTracker
    detail: float | None = None

    def detail_contrast(self, frame: np.ndarray, head: np.ndarray, face_width: float) -> float:
        """The head's detail contrast (std of its band-passed lightness), smoothed over frames so the looks that
        normalise by it don't pump."""
        rows, cols = np.nonzero(head > 0.5)
        if rows.size < 64:
            return self.detail or 0.05
        box = slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)
        lum = cv2.cvtColor(frame[box], cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        spread = max(float(band_pass(lum, face_width / 150.0, face_width / 14.0)[head[box] > 0.5].std()), 0.01)
        self.detail = spread if self.detail is None else DETAIL_SMOOTHING * self.detail + (1.0 - DETAIL_SMOOTHING) * spread
        return self.detail


def _in_frame(region: HeadRegion, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The head region's weight and hair as frame-sized arrays."""
    out = []
    for field in ("weight", "hair"):
        values, (y0, y1, x0, x1) = region.in_frame(shape, field)
        full = np.zeros(shape, np.float32)
        full[y0:y1, x0:x1] = values
        out.append(full)
    return out[0], out[1]


def _crop_coordinates(crop_matrix: np.ndarray, box: tuple[slice, slice], source_map, warp: ViewWarp,
                      resampler: FrameResampler, shape: tuple[int, int]) -> np.ndarray:
    """(h, w, 2) aligned-crop coordinates of the head's points seen at each pixel of `box` (textures stick)."""
    if source_map is None:
        xs, ys = np.meshgrid(np.arange(box[1].start, box[1].stop, dtype=np.float32),
                             np.arange(box[0].start, box[0].stop, dtype=np.float32))
    else:
        y0, _, x0, _ = resampler.region(warp, shape)
        inner = slice(box[0].start - y0, box[0].stop - y0), slice(box[1].start - x0, box[1].stop - x0)
        xs, ys = source_map[0][inner], source_map[1][inner]
    m = crop_matrix.astype(np.float32)
    return np.dstack([m[0, 0] * xs + m[0, 1] * ys + m[0, 2], m[1, 0] * xs + m[1, 1] * ys + m[1, 2]])
