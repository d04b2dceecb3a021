"""The aiohttp app: the page, `POST /offer` signalling, `POST /prompt` uploads, presets (with the virtual
camera's limits) and health."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

from aiohttp import BodyPartReader, MultipartReader, web
from aiortc import RTCPeerConnection, RTCSessionDescription

from pipeline.config import CAMERA_LIMITS, EditSettings
from webrtc.admission import Admission
from webrtc.auth import RedactingAccessLogger, check_token, token_ok
from webrtc.bitrate import configure_video_bitrates
from webrtc.fair_share import FairShareScheduler, ShareLimits
from webrtc.ice import IceServer, rtc_configuration
from webrtc.loop_lag import LoopLagMonitor
from webrtc.peer import PeerLimits, PeerSession, PipelineFactory, offered_media, setting_label
from webrtc.prompts import MAX_PROMPTS, MAX_STORED_BYTES, MAX_UPLOAD_BYTES, PromptError, PromptStore

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
MAX_OFFER_BYTES = 256 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ServerConfig:
    """Everything `create_app` needs; `make_pipeline` builds one peer's stages and engine."""

    make_pipeline: PipelineFactory
    presets: list[str] = field(default_factory=list)
    settings: EditSettings = field(default_factory=EditSettings)
    token: str | None = None
    max_peers: int | None = None                        # None: as many as the measured capacity allows
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_prompts: int = MAX_PROMPTS                      # uploaded prompts kept (least recently used go first)
    max_prompt_storage: int = MAX_STORED_BYTES
    limits: PeerLimits = field(default_factory=PeerLimits)
    share: ShareLimits = field(default_factory=ShareLimits)
    ice_servers: tuple[IceServer, ...] = ()


class PeerRegistry:
    """The sessions (connecting or connected), the frame budget they share, and who may join."""

    def __init__(self, max_peers: int | None, share: ShareLimits):
        self.sessions: set[PeerSession] = set()
        self.lag = LoopLagMonitor()
        self.scheduler = FairShareScheduler(self.lag, share)
        self.admission = Admission(self.scheduler, max_peers)
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self.lag.run(), name="loop-lag"),
                       asyncio.create_task(self.scheduler.run(), name="fair-share")]

    def released(self, session: PeerSession) -> None:
        self.sessions.discard(session)
        if session.gate is not None:
            self.scheduler.remove(session.gate)

    async def close_all(self) -> None:
        await asyncio.gather(*(s.close("server shutting down") for s in list(self.sessions)))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


CONFIG = web.AppKey("config", ServerConfig)
PEERS = web.AppKey("peers", PeerRegistry)
PROMPTS = web.AppKey("prompts", PromptStore)


def json_error(status: type[web.HTTPException], message: str) -> web.HTTPException:
    """An HTTP error whose body is {"error": message}, for the page to show."""
    body = {"text": json.dumps({"error": message}), "content_type": "application/json"}
    if status is web.HTTPRequestEntityTooLarge:
        return status(max_size=0, actual_size=0, **body)      # sizes only feed the default text
    return status(**body)


def create_app(config: ServerConfig, offer_handler: Handler | None = None,
               health_handler: Handler | None = None) -> web.Application:
    """The server's app; a front that runs sessions elsewhere (cluster/) passes its own offer and health handlers."""
    configure_video_bitrates()
    app = web.Application(client_max_size=max(config.max_upload_bytes, MAX_OFFER_BYTES) + 64 * 1024)
    app[CONFIG] = config
    app[PEERS] = PeerRegistry(config.max_peers, config.share)
    app[PROMPTS] = PromptStore(config.max_upload_bytes, config.max_prompts, config.max_prompt_storage)
    app.router.add_get("/", index)
    app.router.add_get("/api/presets", presets)
    app.router.add_get("/api/health", health_handler or health)
    app.router.add_post("/offer", offer_handler or offer)
    app.router.add_post("/prompt", prompt)
    app.router.add_static("/static", STATIC)
    app.on_startup.append(_startup)
    app.on_shutdown.append(_shutdown)
    return app


async def _startup(app: web.Application) -> None:
    app[PEERS].start()


async def _shutdown(app: web.Application) -> None:
    await app[PEERS].close_all()
    app[PROMPTS].close()


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def presets(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    settings = {**asdict(config.settings), "style": setting_label(config.settings.style)}   # no server paths
    # TURN credentials only for requests that may start a session
    ice = [s.for_page() for s in config.ice_servers] if token_ok(request, config.token) else []
    return web.json_response({"presets": config.presets, "settings": settings, "camera_limits": CAMERA_LIMITS,
                              "ice_servers": ice})


async def health(request: web.Request) -> web.Response:
    registry = request.app[PEERS]
    connected = sum(s.connected for s in registry.sessions)
    return web.json_response({"status": "ok", "peers": len(registry.sessions), "connected": connected,
                              "threads": threading.active_count(),
                              **registry.admission.status(len(registry.sessions))})


async def offer(request: web.Request) -> web.Response:
    """`POST /offer`: the token, the offer's checks, then `open_session`; answers with the SDP and the peer id."""
    check_token(request, request.app[CONFIG].token)
    session = await open_session(request.app, await read_offer(request))
    return web.json_response({"sdp": session.pc.localDescription.sdp, "type": session.pc.localDescription.type,
                              "peer": session.id})


async def open_session(app: web.Application, description: RTCSessionDescription) -> PeerSession:
    """Answer `description` with a new session once admission allows one more peer (its pipeline is built
    when it connects), or raise the JSON HTTP error the page shows (503 refused, 400 unusable offer). The
    `/offer` route and the cluster's session hosts both use it."""
    config, registry = app[CONFIG], app[PEERS]
    refusal = registry.admission.refusal(len(registry.sessions))
    if refusal:
        raise json_error(web.HTTPServiceUnavailable, refusal)
    pc = RTCPeerConnection(rtc_configuration(config.ice_servers))
    session = PeerSession(pc, config.make_pipeline, config.settings, app[PROMPTS], config.presets,
                          config.limits, on_closed=registry.released, gate=registry.scheduler.add())
    registry.sessions.add(session)
    try:
        await session.accept(description)
        if not session.has_video:
            raise ValueError("the offer has no video track: the page must send a camera")
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
    except Exception as exc:                 # aiortc raises ValueError & co. on SDP it cannot use
        await session.close("bad offer")
        raise json_error(web.HTTPBadRequest, f"cannot use this offer: {str(exc) or type(exc).__name__}") from None
    return session


async def read_offer(request: web.Request) -> RTCSessionDescription:
    """The request's JSON offer, checked (size, shape, exactly one video section, sent and received)."""
    if request.content_length is not None and request.content_length > MAX_OFFER_BYTES:
        raise json_error(web.HTTPRequestEntityTooLarge, "offer too large")
    try:
        body = await request.json()
    except (ValueError, RecursionError):    # RecursionError: deeply nested JSON; UnicodeDecodeError is a ValueError
        raise json_error(web.HTTPBadRequest, 'body must be JSON {"sdp": ..., "type": "offer"}') from None
    if not isinstance(body, dict) or not isinstance(body.get("sdp"), str) or body.get("type") != "offer":
        raise json_error(web.HTTPBadRequest, 'body must be JSON {"sdp": "<SDP text>", "type": "offer"}')
    videos = body["sdp"].count("m=video")
    if videos == 0:
        raise json_error(web.HTTPBadRequest, "the offer has no video section: the page must send a camera")
    if videos > 1:                          # a second camera would never be read: its queue would grow forever
        raise json_error(web.HTTPBadRequest, f"the offer has {videos} video sections: send one camera")
    direction = next((d for kind, d in offered_media(body["sdp"]) if kind == "video"), "sendrecv")
    if direction != "sendrecv":             # send-only: the edit would have nowhere to go; recv-only: no camera
        raise json_error(web.HTTPBadRequest, f"the offer's video is {direction}: the page must send its camera "
                                             "and receive the edited video (sendrecv)")
    return RTCSessionDescription(sdp=body["sdp"], type="offer")


async def prompt(request: web.Request) -> web.Response:
    """Accept an image prompt (multipart field `image`, or the raw body); return its id."""
    config = request.app[CONFIG]
    check_token(request, config.token)
    if request.content_length is not None and request.content_length > config.max_upload_bytes + 64 * 1024:
        raise json_error(web.HTTPRequestEntityTooLarge,
                         f"image prompt too large: the limit is {config.max_upload_bytes} bytes")
    try:
        data = await _read_upload(request, config.max_upload_bytes)
        prompt_id = await asyncio.to_thread(request.app[PROMPTS].add, data)    # decoding must not stall the peers
    except PromptError as exc:
        status = web.HTTPRequestEntityTooLarge if "too large" in str(exc) else web.HTTPBadRequest
        raise json_error(status, str(exc)) from None
    except OSError as exc:                  # the server's temp disk is full or gone
        log.error("cannot store an image prompt: %s", exc)
        raise json_error(web.HTTPInsufficientStorage, "the server has no room to store image prompts now") from None
    return web.json_response({"id": prompt_id})


async def _read_upload(request: web.Request, limit: int) -> bytes:
    if request.content_type.startswith("multipart/"):
        try:
            return await _read_image_part(await request.multipart(), limit)
        except PromptError:
            raise
        except ValueError as exc:           # aiohttp: no boundary, or a body that does not follow it
            raise PromptError(f"malformed multipart upload ({exc})") from None
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PromptError(f"image prompt too large: the limit is {limit} bytes") from None


async def _read_image_part(reader: MultipartReader, limit: int) -> bytes:
    """The bytes of the field named `image`, read in chunks and refused as soon as they pass `limit`."""
    async for part in reader:
        if part.name == "image" and isinstance(part, BodyPartReader):
            data = bytearray()
            while chunk := await part.read_chunk(64 * 1024):
                data += chunk
                if len(data) > limit:
                    raise PromptError(f"image prompt too large: the limit is {limit} bytes")
            return bytes(data)
    raise PromptError('multipart upload needs a file field named "image"')


def running_server(config: ServerConfig, host: str = "127.0.0.1", port: int = 0):
    """Serve `config` in the current event loop; yields (app, base URL). Port 0 picks a free port."""
    return running_app(create_app(config), host, port)


@contextlib.asynccontextmanager
async def running_app(app: web.Application, host: str = "127.0.0.1", port: int = 0):
    """Serve `app` in the current event loop; yields (app, base URL)."""
    runner = web.AppRunner(app, access_log_class=RedactingAccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    try:
        yield app, f"http://{host}:{bound}"
    finally:
        await runner.cleanup()
