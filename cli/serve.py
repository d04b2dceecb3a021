"""`live3dpe serve`: the WebRTC server and browser page (binds 127.0.0.1 unless told otherwise)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from urllib.parse import quote

from aiohttp import web

from pipeline.errors import UserError
from webrtc.auth import RedactingAccessLogger, generate_token
from webrtc.ice import IceServer, ice_servers
from webrtc.pipeline_factory import edit_pipeline_factory, preset_names
from webrtc.server import ServerConfig, create_app

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from stages.chain import add_edit_arguments
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--token", default=None,
                        help="access token required on /offer and /prompt (required when binding beyond localhost)")
    parser.add_argument("--max-peers", type=int, default=None,
                        help="hard cap on browser sessions (default: as many as the measured capacity allows, "
                             "each getting at least 10 fps; with --cluster: per session host, default 4)")
    ice = parser.add_argument_group("NAT traversal (see docs/deploy.md)")
    ice.add_argument("--ice-server", action="append", default=[], metavar="URL",
                     help="a STUN or TURN server for the page and the server, e.g. turn:turn.example.com:3478 "
                          "(repeatable)")
    ice.add_argument("--ice-username", help="username for the --ice-server TURN servers")
    ice.add_argument("--ice-credential", default=os.environ.get("LIVE3DPE_ICE_CREDENTIAL"),
                     help="credential for the TURN servers (default: $LIVE3DPE_ICE_CREDENTIAL, which keeps it "
                          "out of the process list)")
    cluster = parser.add_argument_group("cluster (Ray Serve; pip install 'live3dpe[cluster]', see docs/deploy.md)")
    cluster.add_argument("--cluster", metavar="auto|HOST:PORT|local:N",
                         help="run the sessions on a Ray cluster: auto = the one `ray start` made on this machine, "
                              "HOST:PORT = its head's GCS address, local:N = N simulated nodes here (development)")
    cluster.add_argument("--replicas", default="auto", metavar="auto|N|MIN-MAX",
                         help="session hosts (one process each, one GPU each for 3dpe): auto = as many as the "
                              "cluster holds now, N, or MIN-MAX to let Serve autoscale on live sessions")
    add_edit_arguments(parser)


def resolve_token(host: str, token: str | None, out=sys.stderr) -> str | None:
    """Localhost needs no token; any other bind gets the given token or a generated one, loudly."""
    if token is not None or host in LOCAL_HOSTS:
        return token
    token = generate_token()
    print("!" * 78, file=out)
    print(f"WARNING: binding {host} exposes your camera pipeline to the network without --token.", file=out)
    print("A random access token was generated for this run; share the URL below only with people you trust.",
          file=out)
    print("!" * 78, file=out)
    return token


def page_url(host: str, port: int, token: str | None) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/" + (f"?token={quote(token, safe='')}" if token else "")


def main(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from pipeline.assets import FACE_LANDMARKER, YUNET
    from stages.chain import create_engine, engine_config_from_args, face_config_from_args, settings_from_args

    if not 1 <= args.port <= 65535:
        raise UserError(f"--port must be within 1..65535, not {args.port}")
    if args.max_peers is not None and args.max_peers < 1:
        raise UserError("--max-peers must be at least 1")
    if args.token is not None and not args.token.strip():
        raise UserError("--token must not be empty (leave it out on 127.0.0.1; elsewhere one is generated)")
    token = resolve_token(args.host, args.token)
    ice = ice_servers(args.ice_server, args.ice_username, args.ice_credential)
    if args.replicas != "auto" and args.cluster is None:
        raise UserError("--replicas sets the session hosts of a cluster: add --cluster")
    if args.cluster is not None:
        return serve_cluster(args, token, ice)
    # Fail now, not when the first browser connects: find (or download) the face models and load the
    # engine once (its weights stay cached for every peer).
    face_config = replace(face_config_from_args(args), model_path=str(FACE_LANDMARKER.resolve(args.face_model)),
                          verifier_path=str(YUNET.resolve()))
    engine_config = engine_config_from_args(args)
    create_engine(engine_config)
    config = ServerConfig(
        make_pipeline=edit_pipeline_factory(engine_config, face_config),
        presets=preset_names(), settings=settings_from_args(args), token=token, max_peers=args.max_peers,
        ice_servers=ice)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    url = page_url(args.host, args.port, token)
    try:
        web.run_app(create_app(config), host=args.host, port=args.port, access_log_class=RedactingAccessLogger,
                    print=lambda _: print(f"live3dpe serve: open {url}  (Ctrl-C to stop)", flush=True))
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port} ({exc.strerror}); pick another --port") from None
    return 0


def serve_cluster(args: argparse.Namespace, token: str | None, ice: tuple[IceServer, ...]) -> int:
    """The front on this machine, the sessions on the Ray cluster `--cluster` names (see cluster/)."""
    from cluster import require_ray

    require_ray()
    from cluster.connect import parse_cluster_spec
    from cluster.host import PEERS_PER_HOST, HostConfig
    from cluster.service import deployed_cluster, front_app, front_config
    from pipeline.assets import FACE_LANDMARKER, YUNET
    from stages.chain import engine_config_from_args, face_config_from_args, settings_from_args

    spec = parse_cluster_spec(args.cluster)
    if spec.local:                         # same machine as the nodes: missing face models fail now, not in a replica
        FACE_LANDMARKER.resolve(args.face_model)
        YUNET.resolve()
    host = HostConfig(engine=engine_config_from_args(args), face=face_config_from_args(args),
                      settings=settings_from_args(args), presets=tuple(preset_names()),
                      max_peers=args.max_peers or PEERS_PER_HOST, ice_servers=ice)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    url = page_url(args.host, args.port, token)
    with deployed_cluster(spec, host, args.replicas) as deployment:
        plan = deployment.plan
        count = f"{plan.replicas}-{plan.max_replicas} (autoscaling)" if plan.autoscaling else f"{plan.replicas}"
        print(f"live3dpe serve: {count} session hosts of {plan.max_peers} peers each on {args.cluster}", flush=True)
        if deployment.local is not None:
            print(f"live3dpe serve: the local cluster's logs are in {deployment.local.temp_root}/ray/session_latest/logs "
                  "(deleted on exit)", flush=True)

        async def app():                   # built inside the loop that serves it
            return front_app(front_config(host, token), deployment)
        try:
            web.run_app(app(), host=args.host, port=args.port, access_log_class=RedactingAccessLogger,
                        print=lambda _: print(f"live3dpe serve: open {url}  (Ctrl-C to stop)", flush=True))
        except OSError as exc:
            raise UserError(f"cannot listen on {args.host}:{args.port} ({exc.strerror}); pick another --port") from None
    return 0
