"""The cluster's front: the page, uploads and signalling on aiohttp, and nothing heavier. Each offer goes to
a `SessionHost` replica that Ray Serve picks; that node's answer (and its id, "node") goes back to the page,
and the peer's media then flows between the browser and that node only.

The front follows every session it forwarded (node, latest rates, state) for `/api/health`, and for the page's
`/api/session/{id}?wait=S` watch, which returns as soon as the session ends or is lost with its node: the page
then says "session lost, reconnecting" and offers again, and Serve places it on a surviving node.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiortc import RTCSessionDescription

from cluster.deploy import ReplicaPlan, running_replicas
from webrtc.auth import check_token
from webrtc.server import CONFIG, PROMPTS, ServerConfig, create_app, json_error, read_offer

log = logging.getLogger(__name__)
KEEP_ENDED_S = 120.0            # an ended or lost session stays readable by its page this long
MAX_WAIT_S = 30.0               # longest /api/session long-poll
VIEW_REFRESH_S = 1.0
PLACE_RETRY_S = 0.5             # pause before offering again to the cluster after a host could not take it
HTTP_ERRORS = {400: web.HTTPBadRequest, 413: web.HTTPRequestEntityTooLarge, 503: web.HTTPServiceUnavailable}


@dataclass
class RemoteSession:
    """One forwarded session, as the front sees it. state: live → ended (peer left) | lost (node or replica gone)."""

    id: str
    node: str
    stream: Any                                  # Serve's response generator for SessionHost.session
    state: str = "live"
    message: str = ""
    report: dict[str, Any] = field(default_factory=dict)
    ended_at: float | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def public(self) -> dict[str, Any]:
        return {"session": self.id, "state": self.state, "node": self.node, "message": self.message}


@dataclass
class ClusterView:
    """The cluster as last read (nodes from Ray's GCS, running replicas from Serve), refreshed in a thread."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    replicas: int = 0
    read_at: float = 0.0


def read_cluster() -> ClusterView:
    import ray

    nodes = [{"node": n["NodeID"], "address": n["NodeManagerAddress"], "alive": bool(n["Alive"]),
              "cpus": n["Resources"].get("CPU", 0.0), "gpus": n["Resources"].get("GPU", 0.0)} for n in ray.nodes()]
    return ClusterView(nodes, running_replicas(), time.monotonic())


class ClusterFront:
    """Forwards offers to the session hosts and follows the sessions; `start()`/`close()` in the app's loop."""

    def __init__(self, handle, plan: ReplicaPlan, placement_timeout_s: float = 30.0):
        self._handle = handle.options(stream=True, method_name="session")
        self.plan = plan
        self.placement_timeout_s = placement_timeout_s
        self.view = ClusterView()
        self.sessions: dict[str, RemoteSession] = {}
        self._opening = 0
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        await self.refresh()
        self._spawn(self._refresh_loop())

    async def refresh(self) -> None:
        self.view = await asyncio.to_thread(read_cluster)
        now = time.monotonic()
        for session in [s for s in self.sessions.values() if s.ended_at and now - s.ended_at > KEEP_ENDED_S]:
            del self.sessions[session.id]

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(VIEW_REFRESH_S)
            try:
                await self.refresh()
            except Exception as exc:              # the GCS briefly unreachable: keep the last view
                log.warning("cannot read the cluster's state: %s", exc)

    @property
    def live(self) -> list[RemoteSession]:
        return [s for s in self.sessions.values() if s.state == "live"]

    @property
    def capacity(self) -> int:
        return self.view.replicas * self.plan.max_peers

    def _full(self) -> bool:
        if len(self.live) + self._opening < self.capacity:
            return False
        # autoscaling: let the offer wait for the replica Serve adds (its wait is the placement timeout)
        return not (self.plan.autoscaling and self.view.replicas < self.plan.max_replicas)

    async def open(self, description: RTCSessionDescription) -> dict[str, Any]:
        """Place a session for `description`; returns the answer for the page: the node's SDP, "node" (the Ray
        node id serving the peer) and "session" (its id at the front; also under "peer", as a single server)."""
        if not self.view.replicas and not self.plan.autoscaling:
            raise json_error(web.HTTPServiceUnavailable, "no session host is running (the cluster lost its nodes, "
                                                         "or they are starting); try again later")
        if self._full():
            raise json_error(web.HTTPServiceUnavailable,
                             f"the cluster is full: {len(self.live)} sessions on {self.view.replicas} session hosts "
                             f"({self.plan.max_peers} each); try again later")
        self._opening += 1
        try:
            stream, first = await self._place({"sdp": description.sdp, "type": description.type})
        finally:
            self._opening -= 1
        if first.get("status") != 200:
            raise json_error(HTTP_ERRORS.get(first.get("status"), web.HTTPInternalServerError),
                             first.get("error") or "the session host refused the offer")
        session = RemoteSession(secrets.token_urlsafe(12), first["node"], stream)
        self.sessions[session.id] = session
        self._spawn(self._follow(session))
        log.info("session %s on node %s", session.id, session.node[:12])
        return {"sdp": first["sdp"], "type": first["type"], "peer": session.id, "session": session.id,
                "node": session.node}

    async def _place(self, offer: dict[str, str]) -> tuple[Any, dict[str, Any]]:
        """Ask Serve for a session host until one answers or the placement timeout passes. Retried after a
        moment: a host that died since Serve last looked (Serve then routes elsewhere), and a host that answers
        503 because a session that just ended is still closing there or its measured capacity is reached
        (webrtc/admission.py: another host may have room)."""
        from ray.exceptions import RayActorError

        deadline = time.monotonic() + self.placement_timeout_s
        reason = "the cluster is busy or scaling up"
        while (left := deadline - time.monotonic()) > 0:
            stream = self._handle.remote(offer)
            try:
                first = await asyncio.wait_for(stream.__anext__(), left)
            except asyncio.TimeoutError:
                stream.cancel()
                break
            except RayActorError as exc:
                reason = "session hosts are being replaced"
                log.warning("session host lost while placing a session: %s", exc)
            except StopAsyncIteration:
                return stream, {"status": 500, "error": "the session host ended without answering"}
            else:
                if first.get("status") != 503:
                    return stream, first
                reason = first.get("error") or reason
            await asyncio.sleep(min(PLACE_RETRY_S, max(0.0, deadline - time.monotonic())))
        raise json_error(web.HTTPServiceUnavailable, f"no node took the session within "
                                                     f"{self.placement_timeout_s:.0f} s ({reason}); try again later")

    async def _follow(self, session: RemoteSession) -> None:
        try:
            async for message in session.stream:
                if "report" in message:
                    session.report = message["report"]
                elif message.get("ended"):
                    self._end(session, "ended", message.get("error") or "the session ended")
            self._end(session, "ended", "the session ended")
        except asyncio.CancelledError:
            raise
        except Exception as exc:                  # RayActorError & co.: the replica or its whole node is gone
            if session.state != "live":           # we cancelled it (shutting down)
                return
            self._end(session, "lost", f"session lost: node {session.node[:12]} stopped "
                                       f"({type(exc).__name__}); reconnect to continue")
            log.warning("session %s lost with node %s: %s", session.id, session.node[:12], type(exc).__name__)

    def _end(self, session: RemoteSession, state: str, message: str) -> None:
        if session.state == "live":
            session.state, session.message, session.ended_at = state, message, time.monotonic()
            session.changed.set()

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancel every session's request (its host closes the peer) and stop following."""
        for session in self.live:
            self._end(session, "ended", "the server is shutting down")
            session.stream.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def health(self) -> dict[str, Any]:
        by_node: dict[str, list[RemoteSession]] = {}
        for session in self.live:
            by_node.setdefault(session.node, []).append(session)
        nodes = []
        for node in self.view.nodes:
            sessions = by_node.pop(node["node"], [])
            nodes.append({**node, "peers": len(sessions),
                          "fps_out": round(sum(s.report.get("fps_out", 0.0) for s in sessions), 1),
                          "sessions": [{"session": s.id, **s.report} for s in sessions]})
        running = self.view.replicas
        status = "ok" if running >= self.plan.replicas else "degraded" if running else "down"
        return {"status": status, "mode": "cluster",
                "session_hosts": self.view.replicas, "max_peers_per_host": self.plan.max_peers,
                "capacity": self.capacity, "peers": len(self.live), "nodes": nodes}


FRONT = web.AppKey("front", ClusterFront)


def create_front_app(config: ServerConfig, front: ClusterFront, prompts=None) -> web.Application:
    """The single server's app (page, presets, /prompt) with the cluster's /offer and /api/health, plus
    /api/session/{id}. `prompts` replaces the upload store (the cluster's publishes to the nodes)."""
    app = create_app(config, offer_handler=offer, health_handler=health)
    app[FRONT] = front
    if prompts is not None:
        app[PROMPTS].close()
        app[PROMPTS] = prompts
    app.router.add_get("/api/session/{session}", session_state)

    async def start(app: web.Application) -> None:
        await front.start()

    async def stop(app: web.Application) -> None:
        await front.close()
    app.on_startup.append(start)
    app.on_shutdown.insert(0, stop)
    return app


async def offer(request: web.Request) -> web.Response:
    check_token(request, request.app[CONFIG].token)
    return web.json_response(await request.app[FRONT].open(await read_offer(request)))


async def health(request: web.Request) -> web.Response:
    return web.json_response(request.app[FRONT].health())


async def session_state(request: web.Request) -> web.Response:
    """{"session", "state": live|ended|lost, "node", "message"}; with ?wait=S (≤ 30) it returns as soon as
    the session stops being live, or after S seconds."""
    check_token(request, request.app[CONFIG].token)
    session = request.app[FRONT].sessions.get(request.match_info["session"])
    if session is None:
        raise json_error(web.HTTPNotFound, "unknown session: it ended a while ago, or the server restarted")
    try:
        wait = min(max(float(request.query.get("wait", 0)), 0.0), MAX_WAIT_S)
    except ValueError:
        raise json_error(web.HTTPBadRequest, "wait must be a number of seconds") from None
    if session.state == "live" and wait > 0:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(session.changed.wait(), wait)
    return web.json_response(session.public())
