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
from stages.face.tracks import Track, continues
from stages.face.verify import FaceVerifier, plausible

# The second opinion (YuNet, stages.face.verify) runs when a track starts and when its face looks abruptly
# different (stages.face.tracks.APPEARANCE_JUMP); a track it turned down is asked again every
# REJECTED_RECHECK_S (a face turning towards the camera), a confirmed one every CONFIRMED_RECHECK_S, and
# loses its confirmation after REVOKE_AFTER failed checks in a row (MediaPipe's tracking slid from a face
# onto something else). Between checks a track keeps its verdict: a few ms per new face, not per frame.
REJECTED_RECHECK_S = 0.5
CONFIRMED_RECHECK_S = 2.0
REVOKE_AFTER = 2
# While no face is found the VIDEO landmarker alternates between the frame and the frame padded by half
# its size (a face too large for MediaPipe's detector is found there within a frame); it stays padded
# while the largest face is wider than LARGE_FACE of the frame's shorter side.
LARGE_FACE = 0.5


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
    """Owns a MediaPipe Face Landmarker (VIDEO mode, plus an IMAGE-mode one for `detect`) and the YuNet second
    opinion; call `close()`.

    `track` follows every face with its own track id, One-Euro smoothing and verdict (stages.face.tracks);
    a track ends when its face is missing from a frame, jumps (another person, a cut), when the frame size
    changes (a WebRTC sender adapting its resolution) and when the source clock goes back (see
    `VideoClock`). Only faces confirmed as human are reported. `detect` has no temporal state and leaves
    `track`'s alone; it numbers faces left to right.
    """

    def __init__(self, config: FaceConfig | None = None):
        self.config = (config or FaceConfig()).validated()
        self._model_path = str(FACE_LANDMARKER.resolve(self.config.model_path))
        self._video = Landmarker(self._model_path, self.config.max_faces, self.config.min_confidence, video=True,
                                 min_detection_confidence=self.config.min_detection_confidence)
        self._image: Landmarker | None = None
        self._verifier = FaceVerifier(self.config.verifier_path, self.config.verify_min_score) if self.config.verify else None
        self._clock = VideoClock()
        self._last_shape: tuple[int, ...] | None = None
        self._tracks: list[Track] = []
        self._next_id = 0
        self._padded = False
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
            self._tracks = []                                # a cut, nothing to follow across it
        self._last_shape = frame.shape
        raw = [f for f in self._video.detect(frame, ms, _padding(frame) if self._padded else 0) if plausible(f.landmarks)]
        faces = self._follow(frame, raw, ms)
        if not raw:
            self._padded = not self._padded
        elif self._padded and faces:
            self._padded = max(float(np.ptp(f.landmarks[:, 0])) for _, f, _ in faces) > LARGE_FACE * min(frame.shape[:2])
        return self._result(frame, faces, ms / 1000.0 if self.config.smoothing else None, start)

    def detect(self, frame: np.ndarray) -> FaceResult:
        """Faces in a single image, without temporal state or smoothing (the padded pass when none is found)."""
        if self._image is None:       # made on first use; loading it is not part of the frame's time
            self._image = Landmarker(self._model_path, self.config.max_faces, self.config.min_confidence, video=False,
                                     min_detection_confidence=self.config.min_detection_confidence)
        start = time.perf_counter()
        frame = _check_frame(frame)
        for pad in (0, _padding(frame)):
            faces = [(None, f, _crop_params(f, self.config.crop_size)) for f in self._image.detect(frame, pad=pad)
                     if plausible(f.landmarks) and (self._verifier is None or self._verifier.confirms(frame, f.landmarks))]
            if faces:
                break
        return self._result(frame, faces, None, start)

    def reset(self) -> None:
        """Forget the smoothing state (the tracks and their verdicts stay)."""
        for track in self._tracks:
            track.reset_smoothing()

    def close(self) -> None:
        for landmarker in (self._video, self._image):
            if landmarker is not None:
                landmarker.close()
        self._image = None

    def __enter__(self) -> "FaceTracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _follow(self, frame: np.ndarray, raw: list[RawFace], ms: int) -> list[tuple[Track, RawFace, np.ndarray]]:
        """Pair this frame's faces with the tracks (new tracks for new faces, ended ones dropped), judge
        them, and return the confirmed ones with their crop parameters."""
        params = [_crop_params(f, self.config.crop_size) for f in raw]
        followed = []
        for face, p, j in zip(raw, params, continues(self._tracks, params, self.config.crop_size)):
            if j is None:
                track, self._next_id = Track.start(self._next_id, p, self.config), self._next_id + 1
            else:
                track = self._tracks[j]
                track.params = p
            self._judge(track, frame, face, ms)
            followed.append((track, face, p))
        self._tracks = [t for t, _, _ in followed]
        return [item for item in followed if item[0].verified]

    def _judge(self, track: Track, frame: np.ndarray, face: RawFace, ms: int) -> None:
        if self._verifier is None:
            track.verified = True
            return
        every = CONFIRMED_RECHECK_S if track.verified else REJECTED_RECHECK_S
        changed = track.looks_changed(frame, face.landmarks)
        if not changed and track.checked_ms is not None and ms - track.checked_ms < every * 1000.0:
            return
        track.checked_ms = ms
        if self._verifier.confirms(frame, face.landmarks):
            track.verified, track.misses = True, 0
        elif track.verified:                      # a new look that fails is no longer the face confirmed
            track.misses += 1
            track.verified = track.misses < REVOKE_AFTER and not changed

    def _result(self, frame: np.ndarray, faces: list[tuple[Track | None, RawFace, np.ndarray]], smooth_t: float | None,
                start: float) -> FaceResult:
        faces = sorted(faces, key=lambda item: float(item[1].landmarks[:, 0].mean()))     # left to right
        chosen = self._choose([f for _, f, _ in faces]) if faces else None
        observed = [self._observe(frame, face, params, track, i, smooth_t) for i, (track, face, params) in enumerate(faces)]
        face = observed[chosen] if chosen is not None else None
        return FaceResult(face=face, faces=observed, seconds=time.perf_counter() - start)

    def _choose(self, raw: list[RawFace]) -> int | None:
        if self.config.face_index is not None:
            return self.config.face_index if self.config.face_index < len(raw) else None
        areas = [float(np.ptp(f.landmarks[:, 0]) * np.ptp(f.landmarks[:, 1])) for f in raw]
        return int(np.argmax(areas))

    def _observe(self, frame: np.ndarray, face: RawFace, params: np.ndarray, track: Track | None, index: int,
                 smooth_t: float | None) -> FaceObservation:
        size = self.config.crop_size
        rotation = head_rotation(face.transform)
        params = params.copy()
        if track is not None and smooth_t is not None:
            params, rotation = _smooth(track, params, rotation, smooth_t)
        matrix = alignment.from_params(params, size)
        crop_angle = float(params[3])
        camera = crop_camera(rotation, crop_angle)
        yaw, pitch, roll = pose_angles(camera, crop_angle)
        lm = face.landmarks
        return FaceObservation(
            landmarks=lm,
            box=(float(lm[:, 0].min()), float(lm[:, 1].min()), float(lm[:, 0].max()), float(lm[:, 1].max())),
            # MediaPipe Tasks reports no per-face score: a returned face passed min_confidence for both
            # detection (min_detection_confidence) and presence, and the second opinion: reported as 1.0.
            confidence=1.0,
            yaw=yaw, pitch=pitch, roll=roll,
            camera=camera,
            crop_matrix=matrix,
            crop_inverse=alignment.invert(matrix),
            crop=alignment.warp_crop(frame, matrix, size),
            mask=face_mask(lm, frame.shape, self.config.mask_downscale),
            transform=face.transform,
            blendshapes=face.blendshapes,
            track=track.id if track is not None else index,
        )


def _smooth(track: Track, params: np.ndarray, rotation: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    previous = track.crop_filter.value
    if previous is not None:   # keep the angle continuous across ±π before filtering
        params[3] = previous[3] + math.remainder(params[3] - previous[3], 2 * math.pi)
    frame_px_per_crop_px = math.exp(params[2])
    unit = np.array([frame_px_per_crop_px, frame_px_per_crop_px, 1.0, 1.0])
    return track.crop_filter(params, t, unit), track.rotation_filter(rotation, t)


def _crop_params(face: RawFace, size: int) -> np.ndarray:
    return alignment.to_params(alignment.crop_matrix(face.landmarks, size), size)


def _padding(frame: np.ndarray) -> int:
    return max(frame.shape[:2]) // 2


def _check_frame(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or min(frame.shape[:2]) < MIN_FRAME_SIDE:
        raise ValueError(f"expected an RGB uint8 frame of shape (H, W, 3), H, W ≥ {MIN_FRAME_SIDE}; got {frame.dtype} {frame.shape}")
    return frame
