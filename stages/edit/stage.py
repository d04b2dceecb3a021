"""The edit stage: keeps the engine's prepared style in step with the controls (without stalling the stream)
and encodes each edited face into a scene — inline, or in a background worker for slow engines when live."""
from __future__ import annotations

import asyncio
import logging
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

from pipeline.config import EditControls, EditSettings
from pipeline.device import default_cuda
from pipeline.packets import FaceEdit, FaceObservation, FaceResult, FramePacket
from pipeline.stage import Stage
from stages.edit.engine import Engine, Style

log = logging.getLogger(__name__)


IMAGE_STYLE, TEXT_STYLE = "image:", "text:"


def style_prompt(style: str | None) -> str | None:
    """The prompt an engine's `prepare` takes for an `EditSettings.style` string: "image:<path>" → the path;
    "text:<description>" (text from the network) → its words only, lower case: no "image:", suffix,
    separator or "~", so an engine that takes text never reads it as a file (engines declaring
    `takes_text = False` must not be given it); anything else as it is."""
    if style is None or style.strip().lower() in ("", "none"):
        return None
    if style.startswith(IMAGE_STYLE):
        return style[len(IMAGE_STYLE):]
    if style.startswith(TEXT_STYLE):
        return text_words(style[len(TEXT_STYLE):])
    return style


def text_words(text: str) -> str:
    """The words of a description, lower case, separated by single spaces: no punctuation (a possessive 's
    is dropped), hence no path syntax."""
    return " ".join(re.findall(r"[^\W_]+", re.sub(r"['’]s\b", "", text.lower())))


class StyleSwitcher:
    """The style in use; a requested change is prepared off the hot path while the old style keeps working.

    `live=False` (files) prepares synchronously so every frame gets the requested style. A prompt the
    engine rejects is reported through `error` / `on_error` and the previous style stays.
    """

    def __init__(self, engine: Engine, live: bool, on_error: Callable[[str], None] | None = None):
        self.engine = engine
        self.live = live
        self.on_error = on_error
        self.error: str | None = None
        self.active: Style | None = None
        self._active_request: str | None = None
        self._failed_request: str | None = None
        self._pending: tuple[str, Future] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="style-prepare") if live else None

    def current(self, request: str) -> Style | None:
        """The style to use for this frame, given the requested `EditSettings.style`."""
        if self._pending is not None and self._pending[1].done():
            pending_request, future = self._pending
            self._pending = None
            self._settle(pending_request, future)
        if request in (self._active_request, self._failed_request) or self._pending_for(request):
            return self.active
        if self._pool is None:
            self._settle(request, self._prepare_now(request))
        elif self._pending is None:                            # one preparation at a time; newer requests wait
            self._pending = (request, self._pool.submit(self.engine.prepare, style_prompt(request)))
        return self.active

    def prepare_blocking(self, request: str) -> None:
        self._settle(request, self._prepare_now(request))

    def _pending_for(self, request: str) -> bool:
        return self._pending is not None and self._pending[0] == request

    def _prepare_now(self, request: str) -> Future:
        future: Future = Future()
        try:
            future.set_result(self.engine.prepare(style_prompt(request)))
        except Exception as exc:                              # reported, never fatal: the old style stays
            future.set_exception(exc)
        return future

    def _settle(self, request: str, future: Future) -> None:
        exc = future.exception()
        if exc is None:
            self.active, self._active_request, self.error = future.result(), request, None
            self._failed_request = None
            return
        kept = self.active.label if self.active is not None else "none"
        self.error = f"style {request!r} not applied ({exc}); keeping {kept!r}"
        self._failed_request = request
        log.warning(self.error)
        if self.on_error is not None:
            self.on_error(self.error)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def faces_to_edit(result: FaceResult | None, settings: EditSettings) -> list[FaceObservation]:
    """The chosen face, or with `faces="all"` every face found (the chosen one first, then left to right)."""
    if result is None or result.face is None:
        return []
    if settings.faces == "all":
        return [result.face] + [f for f in result.faces if f is not result.face]
    return [result.face]


class BackgroundEncoder:
    """Encodes the newest frame's faces in one worker thread and hands out the latest finished scenes.

    Used when the engine is slower than the source: frames are never held up by the encoder, and the
    render stage re-renders the latest scenes at each new frame's cameras.
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edit-encode")
        self._lock = threading.Lock()
        self._job: Future | None = None
        self._latest: dict[int, Any] = {}
        self._latest_style: str | None = None

    def scenes_for(self, faces: list[FaceObservation], frame: np.ndarray, style: Style) -> dict[int, Any]:
        """{face track: its latest finished scene}, for the faces encoded in the current style."""
        with self._lock:
            job = self._job
            if job is not None and job.done():
                self._job = None
                self._latest, self._latest_style = job.result()   # an encoder error surfaces here, in the stage
            if self._job is None:
                self._job = self._pool.submit(self._encode, faces, frame, style, _ready_event())
            # scenes from another style are not shown once the new style is in use
            return self._latest if self._latest_style == style.key else {}

    def _encode(self, faces: list[FaceObservation], frame: np.ndarray, style: Style,
                ready: Any = None) -> tuple[dict[int, Any], str]:
        cuda = default_cuda()
        if ready is not None:
            cuda.current_stream().wait_event(ready)      # the frame uploaded on the stage's stream is complete
        scenes = {face.track: self.engine.encode(face, frame, style) for face in faces}
        if cuda is not None:
            # this thread's GPU work must be done before another stage's stream reads the scenes: the graph's
            # event handoff covers the stage threads, not this worker
            cuda.current_stream().synchronize()
        return scenes, style.key

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _ready_event() -> Any:
    """A CUDA event on the calling thread's stream (None without CUDA): what a worker thread must wait for."""
    cuda = default_cuda()
    if cuda is None:
        return None
    event = cuda.Event()
    event.record()
    return event


class EditStage(Stage):
    """Fills `packet.edits`: one `FaceEdit` with its scene per edited face (none when disabled, no face, or no
    style ready yet); `EditSettings.faces` says whether that is the chosen face or every face.

    `live=True` keeps the stream moving: style changes are prepared in the background, and engines
    that declare `decoupled = True` (3dpe) encode in a background worker on the newest crops. `error`
    holds the last style problem for the UI (also sent to `on_error`). Engines keep any per-face state
    by `face.track`, so each face has its own.
    """

    name = "edit"

    def __init__(self, controls: EditControls, engine: Engine, live: bool = False,
                 on_error: Callable[[str], None] | None = None):
        self.controls = controls
        self.engine = engine
        self.styles = StyleSwitcher(engine, live, on_error)
        self._encoder = BackgroundEncoder(engine) if live and getattr(engine, "decoupled", False) else None
        self._uploader = None
        if getattr(engine, "resident", False):          # the engine keeps frames on its device (GPU hot path)
            from stages.gpu.frames import FrameUploader
            self._uploader = FrameUploader(engine.device)

    @property
    def error(self) -> str | None:
        return self.styles.error

    async def start(self) -> None:
        # the first style is ready before the first frame; a bad one is reported, not fatal
        await asyncio.to_thread(self.styles.prepare_blocking, self.controls.current.style)
        if self.styles.active is None:
            await asyncio.to_thread(self.styles.prepare_blocking, "none")

    def process(self, packet: FramePacket) -> FramePacket:
        settings = self.controls.current
        packet.edits = []
        if not settings.enabled:
            return packet
        if self._uploader is not None:                  # once per frame: the crop and the paste both read it
            packet.device_frame = self._uploader.upload(packet.frame)
        style = self.styles.current(settings.style)
        faces = faces_to_edit(packet.face, settings)
        if not faces or style is None:
            return packet
        frame = packet.frame if packet.device_frame is None else packet.device_frame
        if self._encoder is not None:
            scenes = self._encoder.scenes_for(faces, frame, style)
            packet.edits = [FaceEdit(face, scenes.get(face.track)) for face in faces]
        else:
            packet.edits = [FaceEdit(face, self.engine.encode(face, frame, style)) for face in faces]
        return packet

    async def close(self) -> None:
        # joining the workers waits for a preparation or encode in flight: not on the event loop
        await asyncio.to_thread(self.styles.close)
        if self._encoder is not None:
            await asyncio.to_thread(self._encoder.close)
        close_engine = getattr(self.engine, "close", None)          # models the engine holds (optional)
        if close_engine is not None:
            await asyncio.to_thread(close_engine)
