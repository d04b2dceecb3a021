"""STUN/TURN configuration (`--ice-server`): URLs and credentials are checked, the page gets the servers only
with the token, and the server's peer connections really use them (a STUN server here answers the binding
request with a public-looking address, which the server then offers as its srflx candidate)."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aioice import stun
from aioice.ice import get_host_addresses

from pipeline.errors import UserError
from webrtc.client import ClipCameraTrack, connect, decode_clip
from webrtc.ice import IceServer, ice_servers
from webrtc.server import ServerConfig, running_server

MAPPED = ("203.0.113.7", 40000)         # what the STUN server claims the server's public address is


def test_ice_server_urls_and_credentials_are_checked():
    assert ice_servers(["stun:stun.example.com:3478"]) == (IceServer("stun:stun.example.com:3478"),)
    turn = ice_servers(["turn:turn.example.com:3478?transport=udp"], "alice", "s3cret")[0]
    assert turn.for_page() == {"urls": "turn:turn.example.com:3478?transport=udp", "username": "alice",
                               "credential": "s3cret"}
    with pytest.raises(UserError, match="needs --ice-username and --ice-credential"):
        ice_servers(["turns:turn.example.com:5349"], "alice")
    for bad in ("http://turn.example.com", "turn:", "stun.example.com:3478"):
        with pytest.raises(UserError, match="stun:, stuns:, turn: or turns:"):
            ice_servers([bad])


class StunServer(asyncio.DatagramProtocol):
    """Answers STUN binding requests with MAPPED; counts them."""

    requests = 0

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        request = stun.parse_message(data)
        self.requests += 1
        response = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE, request.transaction_id)
        response.attributes["XOR-MAPPED-ADDRESS"] = MAPPED
        self.transport.sendto(bytes(response), addr)


async def test_page_gets_servers_with_the_token_and_the_server_gathers_through_them(clips):
    host = get_host_addresses(use_ipv4=True, use_ipv6=False)[0]          # where aioice's sockets live
    transport, stun_server = await asyncio.get_running_loop().create_datagram_endpoint(
        StunServer, local_addr=(host, 0))
    servers = (IceServer(f"stun:{host}:{transport.get_extra_info('sockname')[1]}"),)
    config = ServerConfig(make_pipeline=lambda controls, on_error: ([], None), token="t0ken", ice_servers=servers)
    try:
        async with running_server(config) as (app, url), aiohttp.ClientSession() as http:
            async with http.get(f"{url}/api/presets") as response:
                assert (await response.json())["ice_servers"] == []          # no token: no TURN credentials
            async with http.get(f"{url}/api/presets", headers={"Authorization": "Bearer t0ken"}) as response:
                assert (await response.json())["ice_servers"] == [servers[0].for_page()]
            frames = decode_clip(clips / "d10.mp4", limit=2)[0]
            client = await connect(url, ClipCameraTrack(frames), token="t0ken")
            answer = client.pc.remoteDescription.sdp
            await client.close()
        assert stun_server.requests >= 1
        assert f"{MAPPED[0]} {MAPPED[1]} typ srflx" in answer, answer
    finally:
        transport.close()
