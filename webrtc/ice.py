"""STUN/TURN servers for ICE. One list configures both ends: the server's peer connections, and the page's
(sent with /api/presets to requests that carry the token), so peers behind NAT can reach a node through a
TURN relay. Without any, the page gathers only its own addresses and the server uses aiortc's default."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer

from pipeline.errors import UserError

SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


@dataclass(frozen=True)
class IceServer:
    url: str
    username: str | None = None
    credential: str | None = None

    def for_page(self) -> dict[str, Any]:
        """As the browser's RTCPeerConnection takes it."""
        server: dict[str, Any] = {"urls": self.url}
        if self.username is not None:
            server |= {"username": self.username, "credential": self.credential}
        return server


def ice_servers(urls: list[str], username: str | None = None, credential: str | None = None) -> tuple[IceServer, ...]:
    """Check `--ice-server` URLs; TURN servers take the username and credential (STUN ones take none)."""
    servers = []
    for url in urls:
        if not url.startswith(SCHEMES) or len(url) <= len(url.split(":")[0]) + 1:
            raise UserError(f"--ice-server must be a stun:, stuns:, turn: or turns: URL, not {url!r}")
        if url.startswith(("turn:", "turns:")):
            if not (username and credential):
                raise UserError(f"the TURN server {url} needs --ice-username and --ice-credential")
            servers.append(IceServer(url, username, credential))
        else:
            servers.append(IceServer(url))
    return tuple(servers)


def rtc_configuration(servers: tuple[IceServer, ...]) -> RTCConfiguration | None:
    """aiortc's configuration for `servers` (None keeps aiortc's default: Google's public STUN server)."""
    if not servers:
        return None
    return RTCConfiguration(iceServers=[RTCIceServer(urls=s.url, username=s.username, credential=s.credential)
                                        for s in servers])
