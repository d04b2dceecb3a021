"""ClassicEngine: the weight-free default engine — depth-proxy novel view of the whole frame plus head styles."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from pipeline.packets import FaceObservation, RenderResult
from stages.edit.classic.depth_proxy import DepthProxy, build_proxy
from stages.edit.classic.head_region import HeadRegion, HeadRegionTracker
from stages.edit.classic.prompt import resolve_prompt
from stages.edit.classic.prompt_parts import PromptPartsFinder
from stages.edit.classic.shading import band_pass, normals_from_depth
from stages.edit.classic.styles import Canvas
from stages.edit.classic.view_warp import FrameResampler, relative_view, warp_view
from stages.edit.engine import Style
from stages.person_mask import shared_segmenter
from stages.source_image import image_path_in

MOVED_PIXELS = 0.5                  # displacement (pixels) at which a pixel counts as fully changed
FOLLOW_SOFTNESS = 0.12              # the head's follow weight is blurred by this many face widths (no tear at the collar)
STATS_SMOOTHING = 0.85              # weight of the previous frames in the head's detail contrast and lightness range
MAX_FACES = 8                       # tracked faces whose smoothing state is kept
SHAPE_SMOOTHING = 0.5               # weight of the previous frames in the face's (landmarks') shape
SHAPE_JUMP = 12.0                   # crop pixels: a face whose landmarks move more than this (mean) starts afresh
PAINT_SMOOTHING = 0.4               # weight of the previous frame's styled head, carried over by the head's motion
PAINT_FACE_WIDTH = 64.0             # pixels: bigger faces are painted at this face width, then scaled back


@dataclass
class ClassicScene:
    """What `encode` keeps of a frame: the frame, the tracked camera, the depth proxy (None: pass through), where
    the head is and, with a style, what painting it needs. The head is painted once, by the first `render` (the
    render stage's thread, so the edit and render stages share the work), before any view change."""

    frame: np.ndarray               # the source frame; the head painted on it once `painting` has run
    camera: np.ndarray
    crop_matrix: np.ndarray         # frame → crop: the labels' in-plane turn
    proxy: DepthProxy | None
    style: Style
    head: np.ndarray | None = None  # (H, W) float32 weight of the painted head (None: nothing painted)
    painting: Callable[[], np.ndarray] | None = None    # paints the head on `frame` (None: done, or no style)

    def painted(self) -> np.ndarray:
        if self.painting is not None:
            self.frame, self.painting = self.painting(), None
        return self.frame


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
        self._segmenter = shared_segmenter(segmenter_model)      # one per process, not closed here
        self._faces: OrderedDict[int, _FaceState] = OrderedDict()   # per tracked face: what is smoothed over frames
        self._prompt_parts = PromptPartsFinder(face_model, segmenter_model)

    def close(self) -> None:
        """Forget the tracked faces (the segmenter is the process's: it stays)."""
        self._faces.clear()

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
        state = self._face_state(face.track)
        landmarks = state.steady_landmarks(np.asarray(face.landmarks, np.float64), np.asarray(face.crop_matrix, np.float64))
        proxy = build_proxy(landmarks, frame.shape[:2], self.grid_step, self.fov_deg)
        scene = ClassicScene(frame=frame, camera=np.asarray(face.camera, np.float64),
                             crop_matrix=np.asarray(face.crop_matrix, np.float64), proxy=proxy, style=style)
        if proxy is None:
            state.heads.reset()
            return scene
        region = state.heads(frame, landmarks)
        on_grid = region.on_grid(proxy.u, proxy.v)           # the whole head, hair included, turns with it
        soft = max(0.5, FOLLOW_SOFTNESS * proxy.face_width / self.grid_step)
        proxy.follow = np.maximum(proxy.follow, cv2.GaussianBlur(on_grid, (0, 0), soft))
        if style.kind != "none":
            head, hair = _in_frame(region, frame.shape[:2])
            scene.head = head
            scene.painting = partial(_paint, frame, head, hair, proxy, scene.crop_matrix, style, state)
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
        frame = scene.painted()
        h, w = frame.shape[:2]
        if scene.proxy is None:                                  # unusable face: defined pass-through
            return RenderResult(image=frame.copy(), mask=np.zeros((h, w), np.float32), space="frame", camera=camera)
        rotation, zoom = relative_view(scene.camera, camera, scene.crop_matrix)
        warp = warp_view(scene.proxy, rotation, zoom)
        mask = np.zeros((h, w), np.float32)
        if warp.identity:
            image = frame.copy()
            head = scene.head
        else:
            source_map = self._resampler.source_map(warp, (h, w))
            image = self._resampler.remap(frame, warp, source_map)
            moved = np.clip(np.linalg.norm(warp.displacement, axis=2) / MOVED_PIXELS - 0.05, 0.0, 1.0)
            y0, y1, x0, x1 = self._resampler.region(warp, (h, w))
            mask[y0:y1, x0:x1] = self._resampler.upsample(cv2.dilate(moved, np.ones((3, 3), np.uint8)), warp, (h, w))
            head = None if scene.head is None else self._resampler.remap(scene.head, warp, source_map, cv2.BORDER_CONSTANT)
        if head is not None:                            # the painted head goes where its pixels went
            np.maximum(mask, head, out=mask)
        return RenderResult(image=image, mask=np.clip(mask, 0.0, 1.0).astype(np.float32), space="frame",
                            camera=camera)


def _paint(frame: np.ndarray, head: np.ndarray, hair: np.ndarray, proxy: DepthProxy, crop_matrix: np.ndarray,
           style: Style, state: "_FaceState") -> np.ndarray:
    """A copy of `frame` with the head painted in the style, blended by the head's weight. It is painted in the
    source view, before any virtual camera: the studio's light and the style's marks belong to the head's world,
    and every view of it shows the same statue. A big face is painted at a working size (the looks' forms are
    broad) and scaled back, its finest detail given back where the look keeps it."""
    box = _bounding_box(head > 0.01)
    if box is None:
        return frame
    y0, x0 = box[0].start, box[1].start
    rgb, weight = frame[box], np.ascontiguousarray(head[box])
    scale = min(1.0, (getattr(style.data, "working_face_width", None) or PAINT_FACE_WIDTH) / proxy.face_width)
    full = (rgb.shape[1], rgb.shape[0])
    size = (max(1, round(full[0] * scale)), max(1, round(full[1] * scale))) if scale < 1.0 else full
    shrink = (lambda a: cv2.resize(a, size, interpolation=cv2.INTER_LINEAR)) if scale < 1.0 else np.ascontiguousarray
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if scale < 1.0 else np.ascontiguousarray(rgb)
    lum = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    # working pixel (i, j) ↔ frame pixel (x0 + (j + 0.5) / s - 0.5, y0 + (i + 0.5) / s - 0.5), s = size / full
    sx, sy = size[0] / full[0], size[1] / full[1]
    to_frame = np.array([[1.0 / sx, 0.0, x0 + 0.5 / sx - 0.5], [0.0, 1.0 / sy, y0 + 0.5 / sy - 0.5]])
    detail, tone_range = state.measure(lum, shrink(weight), proxy.face_width * scale)
    canvas = Canvas(rgb=small, lum=lum, weight=shrink(weight), hair=shrink(np.ascontiguousarray(hair[box])),
                    normals=_proxy_normals(proxy, frame.shape[:2], to_frame, size),
                    uv=_crop_coordinates(crop_matrix, to_frame, size), face_width=proxy.face_width * scale,
                    detail=detail, tone_range=tone_range)
    styled = state.steady_paint(style.data.apply(canvas), to_frame, crop_matrix, style.key)
    if scale < 1.0:
        styled = cv2.resize(styled, full, interpolation=cv2.INTER_LINEAR)
        fine = getattr(style.data, "fine_detail", 0.0)
        if fine:
            grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
            lost = grey - cv2.resize(lum, full, interpolation=cv2.INTER_LINEAR) * 255.0
            styled = np.clip(styled + fine * lost[..., None], 0, 255).astype(np.uint8)
    painted = frame.copy()
    painted[box] = cv2.blendLinear(styled, np.ascontiguousarray(rgb), weight, 1.0 - weight)
    return painted


def _bounding_box(mask: np.ndarray, step: int = 4) -> tuple[slice, slice] | None:
    """The slices bounding `mask`'s True pixels (looked for every `step` pixels, then widened by a step)."""
    coarse = mask[::step, ::step]
    rows, cols = np.flatnonzero(coarse.any(1)), np.flatnonzero(coarse.any(0))
    if rows.size == 0:
        return None
    h, w = mask.shape
    return (slice(max(0, (rows[0] - 1) * step), min(h, (rows[-1] + 2) * step)),
            slice(max(0, (cols[0] - 1) * step), min(w, (cols[-1] + 2) * step)))


def _proxy_normals(proxy: DepthProxy, shape: tuple[int, int], to_frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The proxy's normals at the working pixels (`to_frame`: working pixel → frame pixel), linearly interpolated
    between its cells (centred as in depth_proxy.grid_centres)."""
    gh, gw = proxy.u.shape
    h, w = shape
    coarse = normals_from_depth(proxy.depth, (w / gw, h / gh))
    to_grid = np.array([[gw / w, 0.0, 0.5 * gw / w - 0.5], [0.0, gh / h, 0.5 * gh / h - 0.5]])
    working_to_grid = to_grid[:, :2] @ to_frame
    working_to_grid[:, 2] += to_grid[:, 2]
    return cv2.warpAffine(coarse, working_to_grid, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _affine(*matrices: np.ndarray) -> np.ndarray:
    """The composition of 2×3 affine maps, applied right to left."""
    out = np.eye(3)
    for m in matrices:
        out = out @ np.vstack([m, [0.0, 0.0, 1.0]])
    return out[:2]


def _crop_coordinates(crop_matrix: np.ndarray, to_frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, 2) float32 aligned-crop coordinates of the working pixels (textures stick to the face)."""
    m = crop_matrix[:, :2] @ to_frame
    m[:, 2] += crop_matrix[:, 2]
    j = np.arange(size[0], dtype=np.float32)[None, :]
    i = np.arange(size[1], dtype=np.float32)[:, None]
    return np.dstack([m[0, 0] * j + m[0, 1] * i + m[0, 2], m[1, 0] * j + m[1, 1] * i + m[1, 2]]).astype(np.float32)


@dataclass
class _FaceState:
    """What the engine smooths over frames for one tracked face."""

    heads: HeadRegionTracker
    stats: np.ndarray | None = None     # detail contrast, lightness range (low, high)
    shape: np.ndarray | None = None     # (478, 3) smoothed landmarks in aligned-crop units
    painted: tuple[np.ndarray, tuple[int, int], np.ndarray, str] | None = None  # styled box, its corner, crop matrix, style
    steady: bool = False                # the face's shape went on from the previous frame (no jump)

    def steady_paint(self, styled: np.ndarray, to_frame: np.ndarray, crop_matrix: np.ndarray,
                     style_key: str) -> np.ndarray:
        """The styled head (`to_frame`: its pixels → frame pixels) averaged with the previous frame's, carried over
        by the head's motion (both frames' crop matrices), so the look's marks and highlights hold still instead of
        shimmering; a new face, a jump or another style starts afresh."""
        previous, self.painted = self.painted, (styled, to_frame, crop_matrix, style_key)
        if previous is None or not self.steady or previous[3] != style_key:
            return styled
        old, old_to_frame, old_matrix, _ = previous
        # this frame's styled pixel → frame → aligned crop → the previous frame → its styled pixel
        carry = _affine(cv2.invertAffineTransform(old_to_frame), cv2.invertAffineTransform(old_matrix),
                        crop_matrix, to_frame)
        h, w = styled.shape[:2]
        carried = cv2.warpAffine(old, carry, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_REPLICATE)
        blended = cv2.addWeighted(carried, PAINT_SMOOTHING, styled, 1.0 - PAINT_SMOOTHING, 0.0)
        self.painted = (blended, to_frame, crop_matrix, style_key)
        return blended

    def steady_landmarks(self, landmarks: np.ndarray, crop_matrix: np.ndarray) -> np.ndarray:
        """The landmarks with their frame-to-frame jitter smoothed away: averaged over frames in the aligned crop's
        coordinates (which follow the head), so the head's motion is not smoothed, only the face's shape — whose
        jitter would otherwise make the statues' light and highlights shimmer."""
        linear, offset = crop_matrix[:, :2], crop_matrix[:, 2]
        scale = float(np.sqrt(abs(np.linalg.det(linear))))
        if landmarks.shape != (478, 3) or not np.isfinite(landmarks).all() or scale <= 0:
            return landmarks
        shape = np.hstack([landmarks[:, :2] @ linear.T + offset, landmarks[:, 2:] * scale])
        previous = self.shape
        self.steady = previous is not None and np.abs(shape[:, :2] - previous[:, :2]).mean() < SHAPE_JUMP
        if self.steady:
            shape = SHAPE_SMOOTHING * previous + (1.0 - SHAPE_SMOOTHING) * shape
        self.shape = shape
        xy = (shape[:, :2] - offset) @ np.linalg.inv(linear).T
        return np.hstack([xy, shape[:, 2:] / scale])

    def measure(self, lum: np.ndarray, weight: np.ndarray, face_width: float) -> tuple[float, tuple[float, float]]:
        """The head's detail contrast (std of its band-passed lightness) and lightness range (3rd–97th
        percentile), smoothed over frames so the looks that normalise by them don't pump."""
        inner = weight > 0.5
        if inner.sum() >= 64:
            spread = max(float(band_pass(lum, face_width / 150.0, face_width / 14.0)[inner].std()), 0.01)
            values = lum[inner]
            lo, hi = np.percentile(values[:: max(1, values.size // 4000)], (3, 97))
            now = np.array([spread, lo, hi])
            self.stats = now if self.stats is None else STATS_SMOOTHING * self.stats + (1.0 - STATS_SMOOTHING) * now
        spread, lo, hi = self.stats if self.stats is not None else (0.05, 0.0, 1.0)
        return float(spread), (float(lo), float(max(hi, lo + 0.05)))


def _in_frame(region: HeadRegion, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The head region's weight and hair as frame-sized arrays."""
    out = []
    for field in ("weight", "hair"):
        values, (y0, y1, x0, x1) = region.in_frame(shape, field)
        full = np.zeros(shape, np.float32)
        full[y0:y1, x0:x1] = values
        out.append(full)
    return out[0], out[1]
