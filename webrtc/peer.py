"""One browser connection: its own controls, engine, graph and tracks, plus the data channel that
steers them. The engine and graph are built only once ICE and DTLS connect (an offer that never
connects costs no pipeline), off the event loop. Everything the peer holds is released by `close()`
(idempotent)."""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole, MediaRelay

from pipeline.config import CAMERA_LIMITS, EditControls, EditSettings
from pipeline.graph import Graph
from pipeline.stage import Stage
from stages.edit.engine import ADAPTER_PREFIX, Style, adapter_path_in
from stages.edit.stage import IMAGE_STYLE, TEXT_STYLE, style_prompt
from webrtc import control, engine_options
from webrtc.adapters import AdapterFolder
from webrtc.fair_share import PeerGate
from webrtc.prompts import PromptError, PromptStore
from webrtc.tracks import EditedVideoTrack, IncomingVideoSource, TrackSink

log = logging.getLogger(__name__)

# (controls, on_style_error) → (the peer's stage list, the engine those stages use). One call per peer:
# no state shared between peers. on_style_error(message) may be called from a stage thread.
PipelineFactory = Callable[[EditControls, Callable[[str], None]], "tuple[list[Stage], Any]"]

DISCONNECT_GRACE_S = 3.0        # "disconnected" may recover (network blip); after this we give up
CONNECT_TIMEOUT_S = 5.0         # an answered offer whose ICE+DTLS never connects is dropped (the page
                                # gathers its candidates before offering: a real peer connects in ~1 s)
INPUT_TIMEOUT_S = 6.0           # no camera frame for this long: network lost or tab killed (ICE consent
                                # failure alone takes ~30 s to notice)
MAX_EARLY_MESSAGES = 32        # control messages kept until the pipeline exists (a page sends a handful)
_ids = itertools.count(1)


@dataclass
class PeerLimits:
    disconnect_grace_s: float = DISCONNECT_GRACE_S
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    stats_interval_s: float = 1.0
    input_timeout_s: float = INPUT_TIMEOUT_S


class PeerSession:
    """Owns one RTCPeerConnection and the graph editing its camera."""

    def __init__(self, pc: RTCPeerConnection, make_pipeline: PipelineFactory, settings: EditSettings,
                 prompts: PromptStore, presets: list[str], limits: PeerLimits | None = None,
                 on_closed: Callable[["PeerSession"], None] | None = None, gate: PeerGate | None = None,
                 adapters: AdapterFolder | None = None):
        self.id = next(_ids)
        self.gate = gate
        self.pc = pc
        self.controls = EditControls(settings)
        self._make_pipeline = make_pipeline
        self._prompts = prompts
        self._presets = presets
        self._adapters = adapters
        self._limits = limits or PeerLimits()
        self._on_closed = on_closed
        self._loop = asyncio.get_running_loop()
        self._relay = MediaRelay()
        self._blackhole = MediaBlackhole()           # microphones offered send-only: read and dropped
        self._offer_directions: dict[str, str] = {}
        self._prepare_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"peer{self.id}-prepare")
        self.output = EditedVideoTrack(gate=gate)
        self.source: IncomingVideoSource | None = None
        self.engine: Any = None
        self.stages: list[Stage] = []
        self.graph: Graph | None = None
        self._graph_task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._channel = None
        self._running = {"label": setting_label(settings.style),                    # the style in use
                         "preset": "none" if style_prompt(settings.style) is None else None}
        self.style_status = self._style_fields("ready", setting_label(settings.style))
        self.error: str | None = None
        self.closed = asyncio.Event()
        self._closing = False
        self._connected_at: float | None = None        # perf_counter when ICE+DTLS first connected
        self.ready = False                             # the engine and stages exist
        self._early_messages: list = []                # control messages that came before that
        self._hello_sent = False
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_connection_state)
        self._spawn(self._connect_watchdog())

    # --- wiring -------------------------------------------------------------------------------
    async def accept(self, offer: RTCSessionDescription) -> None:
        """Set the remote offer (its tracks arrive through `_on_track`, which needs the offered directions)."""
        self._offer_directions = offered_directions(offer.sdp)
        await self.pc.setRemoteDescription(offer)

    def _on_track(self, track) -> None:
        if track.kind == "audio":
            if self._wants_back(track):
                self.pc.addTrack(self._relay.subscribe(track))   # microphone back untouched: stays in sync
            else:
                # aiortc queues every received frame until someone reads it: a microphone nobody reads
                # would grow that queue for as long as the call lasts
                self._blackhole.addTrack(track)
                self._spawn(self._blackhole.start())
        elif track.kind == "video" and self.source is None:
            self.source = IncomingVideoSource(track, self.gate)
            self.pc.addTrack(self.output)
            track.on("ended", lambda: self._spawn(self.close("camera track ended")))

    def _wants_back(self, track) -> bool:
        """Whether the offer's m-section carrying `track` asked to receive media too (sendrecv)."""
        mid = next((t.mid for t in self.pc.getTransceivers() if t.receiver.track is track), None)
        return self._offer_directions.get(mid, "sendrecv") == "sendrecv"

    @property
    def has_video(self) -> bool:
        return self.source is not None

    @property
    def connected(self) -> bool:
        return self._connected_at is not None

    async def _start(self) -> None:
        """Build this peer's engine and stages in its own worker thread (model loading must hold up neither
        the other peers' network traffic nor aiortc's encoders in the loop's default executor), then run its
        graph. A failure is told to the page, then the peer closes."""
        try:
            self.stages, self.engine = await self._loop.run_in_executor(
                self._prepare_pool, self._make_pipeline, self.controls, self._on_stage_style_error)
        except Exception as exc:
            self.error = f"the editing pipeline failed to start: {exc}"
            log.exception("peer %s: pipeline failed to start", self.id)
            await self._report_error(self.error)
            await self.close("pipeline failed to start")
            return
        if self._closing:
            return
        self.graph = Graph(self.source, self.stages, TrackSink(self.output), policy="live", queue_size=1,
                           name=f"peer{self.id}")
        self.source.stopping = lambda: self.graph.stopping
        self._graph_task = self._spawn(self._run_graph())
        self._spawn(self._stats_loop())
        self.ready = True
        self._send_hello()
        if self.engine is not None:                   # name the style in use for the page
            self._spawn(self.set_style(self.controls.current.style))
        early, self._early_messages = self._early_messages, []
        for message in early:
            self._on_message(message)

    async def _run_graph(self) -> None:
        try:
            await self.graph.run()
        except Exception as exc:                      # a stage failed (or a model is missing): tell the page
            self.error = f"the editing pipeline stopped: {exc}"
            log.error("peer %s: %s", self.id, self.error)
            await self._report_error(self.error)
        finally:
            if not self._closing:
                self._spawn(self.close("graph ended"))

    async def _report_error(self, message: str, wait_s: float = 5.0) -> None:
        """Send `message` to the page, waiting briefly for the data channel if it is not open yet."""
        deadline = time.monotonic() + wait_s
        while (self._channel is None or self._channel.readyState != "open") and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        self._send(control.encode("error", message=message))
        await asyncio.sleep(0.3)                       # let SCTP flush it before we hang up

    def _on_datachannel(self, channel) -> None:
        self._channel = channel
        channel.on("message", self._on_message)
        channel.on("close", lambda: self._spawn(self.close("control channel closed")))   # page closed
        if channel.readyState == "open":
            self._send_hello()
        else:
            channel.on("open", self._send_hello)

    def _send_hello(self) -> None:
        """Once, when both the channel is open and the pipeline exists (either may come first)."""
        if self._hello_sent or not self.ready or self._channel is None or self._channel.readyState != "open":
            return
        self._hello_sent = True
        self._send(control.encode("hello", settings=self._settings_for_page(), presets=self._presets,
                                  adapters=self._adapters.names() if self._adapters else [],
                                  engine=getattr(self.engine, "name", None),
                                  device=getattr(self.engine, "device", None),
                                  camera_limits=CAMERA_LIMITS, takes_text=self.takes_text,
                                  style=self.style_status, engine_options=self.engine_options()))

    @property
    def takes_text(self) -> bool:
        """Whether this peer's engine understands descriptions (3dpe reads any text as a file name)."""
        return getattr(self.engine, "takes_text", True)

    def _settings_for_page(self) -> dict[str, Any]:
        return {**self.controls.as_dict(), "style": setting_label(self.controls.current.style)}

    def engine_options(self) -> dict[str, Any]:
        """This peer's engine options and their current values (only those its pipeline supports)."""
        return engine_options.current(self.stages, self.engine)

    def _on_message(self, message) -> None:
        if not self.ready:                             # the page's first choices arrive while it loads
            if len(self._early_messages) < MAX_EARLY_MESSAGES:
                self._early_messages.append(message)
            return
        try:
            request = control.parse_message(message)
            if request.engine is not None:             # first: an unsupported option applies nothing
                engine_options.apply(request.engine, self.stages, self.engine)
                self._send(control.encode("engine_options", options=self.engine_options()))
            if request.changes:
                self.controls.update(**request.changes)
        except control.ControlError as exc:
            if exc.style is not None:                  # style feedback has one place on the page
                self._set_style_status("error", exc.style, str(exc))
            else:
                self._send(control.encode("error", message=str(exc)))
            return
        except ValueError as exc:
            self._send(control.encode("error", message=str(exc)))
            return
        if request.prompt_id is not None:
            try:
                path = self._prompts.path(request.prompt_id)
            except PromptError as exc:
                self._set_style_status("error", "uploaded image", str(exc))
                return
            self._spawn(self.set_style(f"{IMAGE_STYLE}{path}", label="uploaded image"))
        elif request.adapter is not None:
            self._request_adapter(request.adapter)
        elif request.style is not None:
            self._request_style(request.style)

    def _request_style(self, text: str) -> None:
        """A style from the page: "none", a preset name, or a description handed to the engine as text only."""
        name = text.lower()
        if name == "none":
            self._spawn(self.set_style("none"))
        elif not self.takes_text:
            self._set_style_status("error", text, f"the {self.engine.name} engine takes image prompts only: "
                                                  "upload a picture as the image prompt")
        elif name in self._presets:
            self._spawn(self.set_style(name))
        else:
            self._spawn(self.set_style(TEXT_STYLE + text, label=text))

    def _request_adapter(self, name: str) -> None:
        """An adapter of the server's folder, by name (the path never comes from the page)."""
        label = f"adapter {name}"[:60]
        try:
            if self._adapters is None:
                raise ValueError("this server offers no adapters (start it with --adapters DIR)")
            path = self._adapters.path(name)
        except ValueError as exc:
            self._set_style_status("error", label, str(exc))
            return
        self._spawn(self.set_style(f"{ADAPTER_PREFIX}{path}", label=label))

    async def set_style(self, style: str, label: str | None = None) -> None:
        """Prepare the style off the event loop and off the stream (the engine caches it for the edit
        stage); switch only once it is ready, so the stream keeps its old style meanwhile and a style
        the engine rejects leaves it untouched."""
        label = label or setting_label(style)
        self._set_style_status("loading", label)
        try:
            prepared = await asyncio.get_running_loop().run_in_executor(self._prepare_pool, self.engine.prepare,
                                                                        style_prompt(style))
            self.controls.update(style=style)
        except Exception as exc:                      # engine says what it accepts (ValueError) or failed
            self._set_style_status("error", label, str(exc))
            return
        self._running = running_style(label, prepared)
        self._set_style_status("ready", label)

    def _on_stage_style_error(self, message: str) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._set_style_status, "error",
                                            setting_label(self.controls.current.style), message)

    def _set_style_status(self, status: str, style: str, message: str = "") -> None:
        self.style_status = self._style_fields(status, style, message)
        self._send(control.encode("style", **self.style_status))

    def _style_fields(self, status: str, style: str, message: str = "") -> dict[str, Any]:
        """A style message: the request it answers, and the style running now (kept after a refusal)."""
        return {"status": status, "style": style, "message": message, **self._running}

    # --- stats --------------------------------------------------------------------------------
    def stats(self, window: dict[str, tuple], sent_bytes: int | None = None) -> dict[str, Any]:
        """Rates over the time since the previous call (`window` keeps the previous counters); `sent_bytes`:
        the video sender's byte count, for the edited stream's bitrate."""
        now = time.perf_counter()
        received = self.source.received if self.source else 0
        then, prev_in, prev_out, prev_bytes = window.get("last", (now - 1.0, 0, 0, None))
        window["last"] = (now, received, self.output.sent, sent_bytes)
        dt = max(now - then, 1e-3)
        fps_in, fps_out = (received - prev_in) / dt, (self.output.sent - prev_out) / dt
        sent_kbps = None if sent_bytes is None or prev_bytes is None else round((sent_bytes - prev_bytes) * 8 / dt / 1000)
        latencies = np.array(self.output.latencies_ms or [np.nan])
        since_input = now - self.source.last_input_time if self.source else float("inf")
        return {
            "fps_in": round(fps_in, 1), "fps_out": round(fps_out, 1),
            "latency_ms": {"p50": _round(np.percentile(latencies, 50)), "p95": _round(np.percentile(latencies, 95))},
            "skipped_input": self.source.skipped if self.source else 0,
            "replaced_output": self.output.replaced,
            "graph": self.graph.metrics.snapshot() if self.graph else {},
            "engine": getattr(self.engine, "name", None), "device": getattr(self.engine, "device", None),
            "health": control.health_state(fps_in, fps_out, since_input),
            "style": self.style_status, "settings": self._settings_for_page(),
            "engine_options": self.engine_options(),
            "video": {"input": self.source.size if self.source else None, "output": self.output.size,
                      "sent_kbps": sent_kbps},
            "share": {"fps": None if self.gate is None or self.gate.fps == float("inf") else round(self.gate.fps, 1),
                      "scale": self.gate.scale if self.gate is not None else 1.0},
        }

    async def _stats_loop(self) -> None:
        window: dict[str, tuple] = {}
        while not self._closing:
            await asyncio.sleep(self._limits.stats_interval_s)
            if self._connected_at is None:             # still connecting: the connect watchdog's job
                continue
            last_input = max(self.source.last_input_time, self._connected_at)
            if time.perf_counter() - last_input > self._limits.input_timeout_s:
                self._spawn(self.close("no camera frames: peer gone"))
                return
            if self._channel is not None and self._channel.readyState == "open":
                self._send(control.encode("stats", **self.stats(window, await self._video_bytes_sent())))

    async def _video_bytes_sent(self) -> int | None:
        sender = next((s for s in self.pc.getSenders() if s.track is self.output), None)
        try:
            report = await sender.getStats() if sender is not None else {}
        except Exception:                              # the transport is closing: no figure this time
            return None
        return sum(s.bytesSent for s in report.values() if s.type == "outbound-rtp") if report else None

    def _send(self, text: str) -> None:
        if self._channel is not None and self._channel.readyState == "open":
            self._channel.send(text)

    # --- lifetime -----------------------------------------------------------------------------
    async def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and self._connected_at is None:
            self._connected_at = time.perf_counter()
            self._spawn(self._start())
        if state in ("failed", "closed"):
            await self.close(f"connection {state}")
        elif state == "disconnected":
            self._spawn(self._close_if_still_disconnected())

    async def _close_if_still_disconnected(self) -> None:
        await asyncio.sleep(self._limits.disconnect_grace_s)
        if self.pc.connectionState in ("disconnected", "failed", "closed"):
            await self.close("connection lost")

    async def _connect_watchdog(self) -> None:
        await asyncio.sleep(self._limits.connect_timeout_s)
        if self.pc.connectionState != "connected":
            await self.close("connection never established")

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self, reason: str = "closed") -> None:
        """Stop the graph, join its threads, close the connection. Safe to call more than once."""
        if self._closing:
            await self.closed.wait()
            return
        self._closing = True
        log.info("peer %s closing: %s", self.id, reason)
        try:
            if self._channel is not None and self._channel.readyState == "open":
                self._send(control.encode("bye", reason=self.error or reason))   # the page knows at once
                await asyncio.sleep(0.05)                           # let SCTP send it before we hang up
            if self.graph is not None:
                self.graph.stop()
            if self.source is not None:
                self.source.end()                      # unblock the source thread's read()
            if self._graph_task is not None:
                await asyncio.wait({self._graph_task}, timeout=5.0)
            self.output.stop()
            await self._blackhole.stop()
            await self.pc.close()
            if self.source is not None:
                await self.source.close()
        finally:                                       # whatever failed above, free the slot and the waiters
            self._prepare_pool.shutdown(wait=False, cancel_futures=True)
            current = asyncio.current_task()
            for task in list(self._tasks):
                if task is not current and task is not self._graph_task:
                    task.cancel()
            self.closed.set()
            if self._on_closed is not None:
                self._on_closed(self)


def offered_directions(sdp: str) -> dict[str, str]:
    """mid → direction of each media section in an SDP offer, as the offerer states it."""
    return {mid: direction for _, mid, direction in media_sections(sdp) if mid is not None}


def offered_media(sdp: str) -> list[tuple[str, str]]:
    """(kind, direction) of each media section in an SDP offer, in order ("video", "sendonly")."""
    return [(kind, direction) for kind, _, direction in media_sections(sdp)]


def media_sections(sdp: str) -> list[tuple[str, str | None, str]]:
    """(kind, mid, direction) of each media section (RFC 3264: a session-level direction is the default for
    every section, and "sendrecv" when none is given)."""
    directions = ("sendrecv", "sendonly", "recvonly", "inactive")
    session, *sections = sdp.replace("\r\n", "\n").split("\nm=")
    default = next((d for d in directions if f"\na={d}" in f"\n{session}"), "sendrecv")
    found = []
    for section in sections:
        lines = section.split("\n")
        kind = lines[0].split(" ", 1)[0]
        mid = next((line[len("a=mid:"):].strip() for line in lines if line.startswith("a=mid:")), None)
        direction = next((line[2:].strip() for line in lines if line[2:].strip() in directions
                          and line.startswith("a=")), default)
        found.append((kind, mid, direction))
    return found


def setting_label(style: str) -> str:
    """How an `EditSettings.style` is named to the page: never a path on the server."""
    if style.startswith(IMAGE_STYLE):
        return f"image {Path(style[len(IMAGE_STYLE):]).name}"
    if (adapter := adapter_path_in(style)) is not None:
        return f"adapter {adapter.stem}"
    return style[len(TEXT_STYLE):] if style.startswith(TEXT_STYLE) else style


def running_style(asked: str, style: Style) -> dict[str, Any]:
    """The page's view of the style in use: a label ("van gogh starry night → oil painting", an upload by
    the name the page gave it) and the preset it is, if any, for the page to mark."""
    if style.kind == "none":
        preset = "none"
    else:
        preset = style.key.removeprefix("preset:") if style.key.startswith("preset:") else None
    return {"label": asked if style.kind in ("image", "adapter") else style.label, "preset": preset}


def _round(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 1)
