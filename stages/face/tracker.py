"""`FaceTracker`: frames in, `FaceResult`s out — landmarks, pose as an EG3D camera, aligned crop, mask."""
from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np

from pipeline.assets import FACE_LANDMARKER
from pipeline.frame_size import MIN_FRAME_SIDE
from pipeline.packets import FaceObservation, FaceResult
from stages.face import alignment
from stages.face.config import FaceConfig
from stages.face.landmarker import Landmarker, RawFace
from stages.face.mask import face_mask
from stages.face.pose import crop_camera, head_rotation, pose_angles
from stages.face.smoothing import OneEuroFilter, RotationOneEuroFilter

# Between two frames the chosen face's crop centre moving by more than this fraction of the crop
# (about half a head width) is not head motion but another face or a cut: smoothing restarts.
JUMP_FRACTION = 0.25


class VideoClock:
    """Source seconds → strictly increasing integer milliseconds for MediaPipe's VIDEO mode.

    When the source clock repeats or goes back (a looping clip, a restarted WebRTC stream, an RTP
    timestamp wrap), time goes on one frame interval (the last one the source showed) after the last
    frame, and later frames keep their real intervals from there: the One-Euro filters never see
    made-up 1 ms steps. It returns (ms, went_back); going back means a cut.
    """

    FIRST_STEP_MS = 33                # used until the source has shown a frame interval

    def __init__(self) -> None:
        self._offset = 0
        self._last: int | None = None
        self._step = self.FIRST_STEP_MS

    def __call__(self, seconds: float) -> tuple[int, bool]:
        ms = round(seconds * 1000.0) + self._offset
        if self._last is None:
            self._offset = max(0, -ms)            # MediaPipe wants non-negative timestamps
            self._last = ms + self._offset
            return self._last, False
        went_back = ms < self._last
        if ms > self._last:
            self._step = ms - self._last
        else:
            self._offset += self._last + self._step - ms
            ms = self._last + self._step
        self._last = ms
        return ms, went_back


class FaceTracker:
    """Owns a MediaPipe Face Landmarker (VIDEO mode, plus an IMAGE-mode one for `detect`); call `close()`.

    `track` keeps temporal state (MediaPipe tracking, One-Euro smoothing of the chosen face); the
    smoothing restarts after a frame without the chosen face, when the chosen face jumps (another
    person became the largest face), when the frame size changes (a WebRTC sender adapting its
    resolution) and when the source clock goes back (see `VideoClock`).
    `detect` has no temporal state and leaves `track`'s alone.
    """

    def __init__(self, config: FaceConfig | None = None):
        self.config = (config or FaceConfig()).validated()
        self._model_path = str(FACE_LANDMARKER.resolve(self.config.model_path))
        self._video = Landmarker(self._model_path, self.config.max_faces, self.config.min_confidence, video=True,
                                 min_detection_confidence=self.config.min_detection_confidence)
        self._image: Landmarker | None = None
        self._clock = VideoClock()
        self._last_shape: tuple[int, ...] | None = None
        c = self.config
        self._crop_filter = OneEuroFilter(c.min_cutoff, [c.beta_translation, c.beta_translation, c.beta_scale, c.beta_angle])
        self._rotation_filter = RotationOneEuroFilter(c.rotation_min_cutoff, c.rotation_beta)
        self._wanted_smoothing = self.config.smoothing

    @property
    def smoothing(self) -> bool:
        """Whether `track` smooths (the latest `set_smoothing` value; applied from the next frame on)."""
        return self._wanted_smoothing

    def set_smoothing(self, on: bool) -> None:
        """Switch One-Euro smoothing on or off while tracking; safe from any thread. The tracking thread
        applies it at its next `track` call (restarting the filters), so a frame is never half-smoothed
        and the caller never waits for a frame in progress."""
        self._wanted_smoothing = bool(on)

    def track(self, frame: np.ndarray, timestamp_s: float) -> FaceResult:
        """Faces in one video frame at `timestamp_s` (source time, seconds)."""
        start = time.perf_counter()
        frame = _check_frame(frame)
        ms, went_back = self._clock(timestamp_s)
        wanted = self._wanted_smoothing
        if wanted != self.config.smoothing:     # switched: restart from this frame, no glide from stale state
            self.config = replace(self.config, smoothing=wanted)
            self.reset()
        if went_back or frame.shape != self._last_shape:   # a loop, a restarted stream, a new resolution:
            self.reset()                                     # a cut, nothing to smooth against
        self._last_shape = frame.shape
        raw = self._video.detect(frame, ms)
        result = self._result(frame, raw, ms / 1000.0 if self.config.smoothing else None, start)
        if result.face is None:
            self.reset()
        return result

    def detect(self, frame: np.ndarray) -> FaceResult:
        """Faces in a single image, without temporal state or smoothing."""
        if self._image is None:       # made on first use; loading it is not part of the frame's time
            self._image = Landmarker(self._model_path, self.config.max_faces, self.config.min_confidence, video=False,
                                     min_detection_confidence=self.config.min_detection_confidence)
        start = time.perf_counter()
        frame = _check_frame(frame)
        return self._result(frame, self._image.detect(frame), None, start)

    def reset(self) -> None:
        """Forget the smoothing state (e.g. after a cut)."""
        self._crop_filter.reset()
        self._rotation_filter.reset()

    def close(self) -> None:
        for landmarker in (self._video, self._image):
            if landmarker is not None:
                landmarker.close()
        self._image = None

    def __enter__(self) -> "FaceTracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _result(self, frame: np.ndarray, raw: list[RawFace], smooth_t: float | None, start: float) -> FaceResult:
        raw = sorted(raw, key=lambda f: float(f.landmarks[:, 0].mean()))          # left to right
        chosen = self._choose(raw) if raw else None
        faces = [self._observe(frame, f, smooth_t if i == chosen else None) for i, f in enumerate(raw)]
        face = faces[chosen] if chosen is not None else None
        return FaceResult(face=face, faces=faces, seconds=time.perf_counter() - start)

    def _choose(self, raw: list[RawFace]) -> int | None:
        if self.config.face_index is not None:
            return self.config.face_index if self.config.face_index < len(raw) else None
        areas = [float(np.ptp(f.landmarks[:, 0]) * np.ptp(f.landmarks[:, 1])) for f in raw]
        return int(np.argmax(areas))

    def _observe(self, frame: np.ndarray, face: RawFace, smooth_t: float | None) -> FaceObservation:
        size = self.config.crop_size
        rotation = head_rotation(face.transform)
        params = alignment.to_params(alignment.crop_matrix(face.landmarks, size), size)
        if smooth_t is not None:
            params, rotation = self._smooth(params, rotation, smooth_t)
        matrix = alignment.from_params(params, size)
        crop_angle = float(params[3])
        camera = crop_camera(rotation, crop_angle)
        yaw, pitch, roll = pose_angles(camera, crop_angle)
        lm = face.landmarks
        return FaceObservation(
            landmarks=lm,
            box=(float(lm[:, 0].min()), float(lm[:, 1].min()), float(lm[:, 0].max()), float(lm[:, 1].max())),
            # MediaPipe Tasks reports no per-face score: a returned face passed min_confidence for both
            # detection (min_detection_confidence) and presence, so it is reported as 1.0.
            confidence=1.0,
            yaw=yaw, pitch=pitch, roll=roll,
            camera=camera,
            crop_matrix=matrix,
            crop_inverse=alignment.invert(matrix),
            crop=alignment.warp_crop(frame, matrix, size),
            mask=face_mask(lm, frame.shape, self.config.mask_downscale),
            transform=face.transform,
            blendshapes=face.blendshapes,
        )

    def _smooth(self, params: np.ndarray, rotation: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        previous = self._crop_filter.value
        if previous is not None and math.hypot(*(params[:2] - previous[:2])) > (
                JUMP_FRACTION * self.config.crop_size * math.exp(previous[2])):
            self.reset()           # another face (the largest changed) or a cut: do not glide between them
            previous = None
        if previous is not None:   # keep the angle continuous across ±π before filtering
            params[3] = previous[3] + math.remainder(params[3] - previous[3], 2 * math.pi)
        frame_px_per_crop_px = math.exp(params[2])
        unit = np.array([frame_px_per_crop_px, frame_px_per_crop_px, 1.0, 1.0])
        return self._crop_filter(params, t, unit), self._rotation_filter(rotation, t)


def _check_frame(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or min(frame.shape[:2]) < MIN_FRAME_SIDE:
        raise ValueError(f"expected an RGB uint8 frame of shape (H, W, 3), H, W ≥ {MIN_FRAME_SIDE}; got {frame.dtype} {frame.shape}")
    return frame
