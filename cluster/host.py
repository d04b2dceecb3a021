"""`SessionHost`: the Ray Serve deployment whose replicas carry the peers.

A replica is one process next to its engine (one GPU for `3dpe`); it holds up to `max_peers` whole WebRTC
sessions, each the same `PeerSession` a single server runs (aiortc connection + stage graph), so media
never crosses the cluster. Peers of one replica share its loaded model. A session is one long streaming
request: the SDP answer first, then the session's rates every `report_interval_s` until it ends. Serve
therefore counts live sessions as ongoing requests, never routes a replica more than `max_peers`, and the
front learns at once when a replica or its node is lost (the stream fails).

Each replica protects its own peers exactly as a single server does, from its own event loop and process:
`open_session` admits by the replica's measured capacity (`webrtc/admission.py`; `max_peers` is the hard cap
Serve also routes by), its fair share scheduler slows its peers evenly under load, pipelines are built when a
peer connects and unconnected offers go after 5 s. A replica that refuses answers 503 and the front offers the
session again (Serve may route it to another replica) until its placement timeout.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator

from aiohttp import web
from aiortc import RTCSessionDescription

from pipeline.config import EditSettings, EngineConfig
from stages.face import FaceConfig
from webrtc.ice import IceServer
from webrtc.peer import PeerLimits, PeerSession
from webrtc.pipeline_factory import edit_pipeline_factory
from webrtc.server import PEERS, PROMPTS, PeerRegistry, ServerConfig, create_app, open_session

PEERS_PER_HOST = 4              # a session host's peer limit unless --max-peers says otherwise


@dataclass(frozen=True)
class HostConfig:
    """What every replica needs to build its peers' pipelines (sent to the nodes, so plain data only).
    `face.model_path` is the user's --face-model or None: each node resolves the model itself."""

    engine: EngineConfig
    face: FaceConfig
    settings: EditSettings = field(default_factory=EditSettings)
    presets: tuple[str, ...] = ()
    max_peers: int = PEERS_PER_HOST
    limits: PeerLimits = field(default_factory=PeerLimits)
    ice_servers: tuple[IceServer, ...] = ()
    report_interval_s: float = 1.0


def session_report(session: PeerSession, window: dict, registry: PeerRegistry) -> dict[str, Any]:
    """The few numbers the front shows per session in /api/health: its rates, its fair share, and its
    replica's admission state (measured capacity, loop lag)."""
    stats = session.stats(window)
    return {"fps_in": stats["fps_in"], "fps_out": stats["fps_out"], "latency_ms": stats["latency_ms"],
            "health": stats["health"], "share": stats["share"],
            "host": registry.admission.status(len(registry.sessions))}


def error_message(exc: web.HTTPException) -> str:
    """The message of one of the server's JSON errors ({"error": ...})."""
    try:
        return json.loads(exc.text)["error"]
    except (TypeError, ValueError, KeyError):
        return exc.reason


def bind_serve_grpc_to_node_address() -> None:
    """Serve 2.60 opens an inter-replica gRPC server in every replica on all interfaces ("[::]:0"), used only
    when RAY_SERVE_USE_GRPC_BY_DEFAULT=1; bind it to this node's Ray address instead (127.0.0.1 on a local
    cluster, the private address on a real one). Serve opens it right after our constructor returns."""
    import ray
    from ray.serve._private import replica

    node_ip, open_port = ray.util.get_node_ip_address(), replica.add_port_to_grpc_server
    replica.add_port_to_grpc_server = lambda server, address: open_port(server, address.replace("[::]", node_ip, 1))


class SessionHost:
    """One replica: loads the engine once, then answers offers with sessions it runs until they end."""

    def __init__(self, config: HostConfig):
        import ray

        from cluster.prompts import NodePromptStore
        from pipeline.assets import FACE_LANDMARKER, YUNET
        from stages.chain import create_engine

        bind_serve_grpc_to_node_address()
        self.node = ray.get_runtime_context().get_node_id()
        self._report_interval_s = config.report_interval_s
        face = replace(config.face, model_path=str(FACE_LANDMARKER.resolve(config.face.model_path)),
                       verifier_path=str(YUNET.resolve(config.face.verifier_path)))
        create_engine(config.engine)       # load (and cache) the weights now: a replica that cannot edit takes no peer
        server = ServerConfig(make_pipeline=edit_pipeline_factory(config.engine, face), presets=list(config.presets),
                              settings=config.settings, max_peers=config.max_peers, limits=config.limits,
                              ice_servers=config.ice_servers)
        self._app = create_app(server)     # never served: holds this replica's sessions, prompts and limits
        self._app[PROMPTS] = NodePromptStore(server.max_upload_bytes, server.max_prompts, server.max_prompt_storage)
        self._registry = self._app[PEERS]
        self._measuring = False

    def _measure(self) -> None:
        """Start the replica's loop-lag monitor and fair share scheduler (what a served app starts on startup)
        in the event loop its sessions run in, once."""
        if not self._measuring:
            self._registry.start()
            self._measuring = True

    async def session(self, offer: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        """Yield {"status": 200, "sdp", "type", "node"} (or {"status": 4xx/5xx, "error"}), then
        {"report": {...}} every report interval while the peer is connected, then {"ended": True, "error"}."""
        self._measure()
        try:
            session = await open_session(self._app, RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        except web.HTTPException as exc:
            yield {"status": exc.status, "error": error_message(exc)}
            return
        yield {"status": 200, "sdp": session.pc.localDescription.sdp, "type": session.pc.localDescription.type,
               "node": self.node}
        try:
            window: dict = {}
            while not session.closed.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(session.closed.wait(), self._report_interval_s)
                if not session.closed.is_set():
                    yield {"report": session_report(session, window, self._registry)}
            yield {"ended": True, "error": session.error}
        finally:                           # also when the front cancels the request (it shut down)
            await session.close("the front ended the session")
