"""The compositor stage: turns the engine's renders into the emitted frame (paste, crop, side-by-side, grid;
several faces pasted far to near) and applies the face-lost policy per face (hold its last edit, then fade
to the original; or blur when no face is left)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from pipeline.config import EditControls, EditSettings
from pipeline.packets import CROP_SIZE, FaceEdit, FaceObservation, FramePacket, RenderResult
from pipeline.stage import Stage

FEATHER_SIGMA = 10.0                # px at crop scale: width of the soft seam around a pasted crop render
BORDER_FADE = 24                    # px at crop scale: a crop render never reaches the crop's own edge


def _border_ramp(size: int = CROP_SIZE, width: int = BORDER_FADE) -> np.ndarray:
    ramp = np.clip(np.minimum(np.arange(size), np.arange(size)[::-1]) / width, 0.0, 1.0).astype(np.float32)
    return np.minimum.outer(ramp, ramp)


_BORDER = _border_ramp()


def feather_crop_mask(mask: np.ndarray) -> np.ndarray:
    """Soften a 512² render mask so that the seam in the frame is gradual and never at the crop's edge."""
    m = cv2.resize(mask.astype(np.float32), (CROP_SIZE, CROP_SIZE)) if mask.shape[:2] != (CROP_SIZE, CROP_SIZE) else mask.astype(np.float32)
    m = cv2.erode(m, np.ones((9, 9), np.uint8))             # keep the blur's outer half inside the rendered area
    m = cv2.GaussianBlur(m, (0, 0), FEATHER_SIGMA)
    return np.clip(m, 0.0, 1.0) * _BORDER


def _roi(points: np.ndarray, width: int, height: int) -> tuple[int, int, int, int] | None:
    x0, y0 = np.floor(points.min(axis=0)).astype(int)
    x1, y1 = np.ceil(points.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _blend(base: np.ndarray, top: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`top` over `base` by `mask` (uint8 out; OpenCV's blend: one pass, no float copies of the images)."""
    if top.dtype != np.uint8:
        top = np.clip(top + 0.5, 0, 255).astype(np.uint8)
    weight = np.ascontiguousarray(mask, np.float32)
    return cv2.blendLinear(np.ascontiguousarray(top), np.ascontiguousarray(base), weight, 1.0 - weight)


def match_seam_colour(top: np.ndarray, base: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Shift `top` towards `base`'s colour where the mask is partial, fading the correction into the interior.

    The mean difference is measured on the seam band only, so a style's colour inside the head is kept
    while the transition into the untouched frame shows no colour step.
    """
    band = mask * (1.0 - mask)
    weight = float(band.sum())
    if weight < 1.0:
        return top
    diff = (base.astype(np.float32) - top.astype(np.float32)) * band[..., None]
    delta = diff.reshape(-1, 3).sum(axis=0) / weight
    return top.astype(np.float32) + delta * (1.0 - mask)[..., None]


def paste(frame: np.ndarray, render: RenderResult, face: FaceObservation, alpha: float = 1.0) -> np.ndarray:
    """The edited head put back into the full frame (`alpha` scales the edit, for fading)."""
    out = frame.copy()
    h, w = frame.shape[:2]
    if render.space == "frame":
        if render.image.shape[:2] != (h, w):
            return out
        ys, xs = np.nonzero(render.mask > 1e-3)
        if len(xs) == 0:
            return out
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        m = render.mask[y0:y1, x0:x1].astype(np.float32) * alpha
        out[y0:y1, x0:x1] = _blend(frame[y0:y1, x0:x1], render.image[y0:y1, x0:x1], m)
        return out
    corners = np.array([[0, 0, 1], [CROP_SIZE, 0, 1], [0, CROP_SIZE, 1], [CROP_SIZE, CROP_SIZE, 1]], np.float64) @ face.crop_inverse.T
    roi = _roi(corners, w, h)
    if roi is None:
        return out
    x0, y0, x1, y1 = roi
    inverse = face.crop_inverse.copy()
    inverse[:, 2] -= (x0, y0)                                  # warp straight into the ROI, not the whole frame
    size = (x1 - x0, y1 - y0)
    top = cv2.warpAffine(render.image, inverse, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    m = cv2.warpAffine(feather_crop_mask(render.mask), inverse, size, flags=cv2.INTER_LINEAR, borderValue=0)
    base = frame[y0:y1, x0:x1]
    out[y0:y1, x0:x1] = _blend(base, match_seam_colour(top, base, m), m * alpha)
    return out


def to_crop(image: np.ndarray, space: str, face: FaceObservation | None) -> np.ndarray:
    """A render (or frame) as a 512² aligned crop: crop-space images as they are, frames warped by the crop matrix."""
    if space == "crop":
        return image if image.shape[:2] == (CROP_SIZE, CROP_SIZE) else cv2.resize(image, (CROP_SIZE, CROP_SIZE))
    if face is None:
        return centre_square(image)
    return cv2.warpAffine(image, face.crop_matrix, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def centre_square(frame: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    h, w = frame.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return cv2.resize(frame[y:y + s, x:x + s], (size, size), interpolation=cv2.INTER_AREA)


def _mix(original: np.ndarray, edited: np.ndarray, alpha: float) -> np.ndarray:
    if alpha >= 1.0:
        return edited
    return np.clip(original.astype(np.float32) + alpha * (edited.astype(np.float32) - original) + 0.5, 0, 255).astype(np.uint8)


def on_device(render: RenderResult) -> bool:
    """True when a GPU-resident engine left the render's image and mask as tensors on its device."""
    return type(render.image).__module__.startswith("torch")


def on_host(render: RenderResult) -> RenderResult:
    """The render with NumPy image, mask and views (downloaded when they are device tensors)."""
    if not on_device(render):
        return render
    from stages.gpu.frames import to_host
    views = [to_host(v) for v in render.views] if render.views is not None else None
    return replace(render, image=to_host(render.image), mask=to_host(render.mask), views=views)


def _paste_any(frame: np.ndarray, render: RenderResult, face: FaceObservation, alpha: float,
               device_frame) -> np.ndarray:
    if on_device(render) and device_frame is not None and render.space == "crop":
        from stages.gpu.composite import paste as paste_on_device
        from stages.gpu.frames import to_host
        return to_host(paste_on_device(device_frame, render.image, render.mask, face, alpha))   # one download
    return paste(frame, on_host(render), face, alpha)


def compose(frame: np.ndarray, render: RenderResult, face: FaceObservation, settings: EditSettings,
            alpha: float = 1.0, device_frame=None) -> np.ndarray:
    """The output frame for `settings.mode` (`alpha` < 1 fades the edit towards the original). A render on
    the device is pasted there, into `device_frame` (the frame uploaded by the edit stage)."""
    if settings.mode == "paste":
        return _paste_any(frame, render, face, alpha, device_frame)
    if settings.mode == "side-by-side":
        return np.hstack([frame, _paste_any(frame, render, face, alpha, device_frame)])
    render = on_host(render)
    original = to_crop(frame, "frame", face)
    if settings.mode == "crop":
        return _mix(original, to_crop(render.image, render.space, face), alpha)
    if len(render.views or ()) != grid_size(settings):
        # rendered for another mode or angle set (held, or the settings changed between the render and this
        # stage): unedited tiles rather than a frame whose size jumps or angles that were not asked for
        return np.hstack([original] * grid_size(settings))
    return np.hstack([_mix(original, to_crop(v, render.space, face), alpha) for v in render.views])


def nearness(face: FaceObservation) -> float:
    """Frame pixels per crop pixel: the larger a face, the nearer it is (faces are pasted far to near)."""
    return float(np.hypot(*face.crop_inverse[:, 0]))


def compose_faces(frame: np.ndarray, layers: list[tuple[RenderResult, FaceObservation, float]],
                  settings: EditSettings, device_frame=None) -> np.ndarray:
    """The output frame for several edited faces, given as (render, face, alpha) with the chosen face first:
    paste and side-by-side draw every face, far to near (the nearer face covers where they overlap); crop
    and grid show the chosen face alone. Renders on the device are pasted into `device_frame` there."""
    if settings.mode not in ("paste", "side-by-side") or len(layers) == 1:
        render, face, alpha = layers[0]
        return compose(frame, render, face, settings, alpha, device_frame)
    ordered = sorted(layers, key=lambda layer: nearness(layer[1]))
    if device_frame is not None and all(on_device(r) and r.space == "crop" for r, _, _ in ordered):
        from stages.gpu.composite import paste as paste_on_device
        from stages.gpu.frames import to_host
        on_gpu = device_frame
        for render, face, alpha in ordered:
            on_gpu = paste_on_device(on_gpu, render.image, render.mask, face, alpha)
        edited = to_host(on_gpu)                               # one download for all faces
    else:
        edited = frame
        for render, face, alpha in ordered:
            edited = paste(edited, on_host(render), face, alpha)
    return edited if settings.mode == "paste" else np.hstack([frame, edited])


def grid_size(settings: EditSettings) -> int:
    """Tiles in the grid mode (the render stage falls back to the user's yaw when no grid angle is set)."""
    return max(len(settings.grid_yaws), 1)


def unedited(frame: np.ndarray, settings: EditSettings, face: FaceObservation | None) -> np.ndarray:
    """The original frame in the shape the current mode emits (so the output size never jumps)."""
    if settings.mode == "paste":
        return frame
    if settings.mode == "side-by-side":
        return np.hstack([frame, frame])
    tile = to_crop(frame, "frame", face)
    return tile if settings.mode == "crop" else np.hstack([tile] * grid_size(settings))


def blur_all(image: np.ndarray) -> np.ndarray:
    """Unrecognisable blur: downscale hard, blur, upscale (cheap even at 1080p)."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(w // 24, 2), max(h // 24, 2)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 1.5)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def draw_label(image: np.ndarray, text: str) -> np.ndarray:
    """Draw `text` top-left on a dark box (Hershey fonts are ASCII only, so dashes are simplified)."""
    text = text.replace("—", "-").replace("–", "-").encode("ascii", "replace").decode()
    out = np.ascontiguousarray(image).copy()
    scale = max(out.shape[1] / 1100.0, 0.35)
    thickness = max(int(round(scale * 2)), 1)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = int(6 * scale) + 2
    cv2.rectangle(out, (0, 0), (tw + 2 * pad, th + base + 2 * pad), (0, 0, 0), -1)
    cv2.putText(out, text, (pad, pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 64, 64), thickness, cv2.LINE_AA)
    return out


def label_edit(output: np.ndarray, label: str, settings: EditSettings, frame_width: int) -> np.ndarray:
    """`label` drawn on the edited part of `output` (side-by-side: the right half, not the untouched input)."""
    if settings.mode != "side-by-side":
        return draw_label(output, label)
    out = output.copy()
    out[:, frame_width:] = draw_label(output[:, frame_width:], label)
    return out


@dataclass
class _LastEdit:
    render: RenderResult
    face: FaceObservation
    time: float


def packet_time(packet: FramePacket) -> float:
    """Source time when the source has a clock (files), else the capture wall-clock time."""
    seconds = packet.seconds
    return packet.capture_time if seconds is None else seconds


class CompositeStage(Stage):
    """Fills `packet.output` from the edited faces' renders in the current mode. An edited face without a render
    in this frame (lost, or its scene not ready) gets the face-lost policy on its own: its last edit is held,
    then faded out; with the blur policy the frame is blurred once no face is left. A face still in view that
    is no longer edited (another face chosen) shows as it is at once."""

    name = "composite"

    def __init__(self, controls: EditControls):
        self.controls = controls
        self._last: dict[int, _LastEdit] = {}                 # the last edit of each face track

    def process(self, packet: FramePacket) -> FramePacket:
        settings = self.controls.current
        if not settings.enabled:
            packet.output = None                               # pass-through: sinks emit packet.frame
            return packet
        now = packet_time(packet)
        shown = [edit for edit in packet.edits if edit.render is not None]
        for edit in shown:
            self._last[edit.face.track] = _LastEdit(edit.render, edit.face, now)
        self._forget_expired(now, settings)
        in_view = {face.track for face in packet.face.faces} if packet.face is not None else set()
        for track in in_view - {edit.face.track for edit in packet.edits}:
            self._last.pop(track, None)        # in view but no longer edited (another face chosen): not held
        layers = [(edit.render, edit.face, 1.0) for edit in shown] + self._held(shown, settings, now)
        if layers:
            output, label = compose_faces(packet.frame, layers, settings, packet.device_frame), layers[0][0].label
        elif settings.on_face_lost == "blur":
            latest = max(self._last.values(), key=lambda last: last.time, default=None)
            output, label = blur_all(unedited(packet.frame, settings, latest.face if latest else None)), ""
        else:
            output, label = unedited(packet.frame, settings, None), ""
        packet.output = label_edit(output, label, settings, packet.frame.shape[1]) if label else output
        return packet

    def _forget_expired(self, now: float, settings: EditSettings) -> None:
        keep = settings.hold_seconds + settings.fade_seconds   # out of range: expired, or the clock went back
        self._last = {track: last for track, last in self._last.items() if 0.0 <= now - last.time <= keep}

    def _held(self, shown: list[FaceEdit], settings: EditSettings, now: float) -> list[tuple[RenderResult, FaceObservation, float]]:
        """(render, face, alpha) of the faces not shown in this frame, held then fading (latest first)."""
        if settings.on_face_lost != "fade":
            return []
        tracks = {edit.face.track for edit in shown}
        layers = []
        for last in sorted(self._last.values(), key=lambda last: -last.time):
            if last.face.track in tracks:
                continue
            late = now - last.time - settings.hold_seconds
            alpha = 1.0 if late <= 0 else max(0.0, 1.0 - late / max(settings.fade_seconds, 1e-6))
            layers.append((last.render, last.face, alpha))
        return layers
