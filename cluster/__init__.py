"""Serving many peers on many machines with Ray Serve: sharded by peer (each WebRTC session lives whole on
one node, next to its engine), the aiohttp front only signals. Above webrtc/, below cli/; Ray is the
optional extra `live3dpe[cluster]`, imported only through `require_ray()`.

    connect.py   --cluster auto|ADDRESS|local:N → a Ray connection (local.py starts N simulated nodes)
    host.py      SessionHost: the Serve deployment whose replicas carry the sessions
    deploy.py    replica resources and count, deploying and waiting for the replicas
    front.py     the front's /offer, /api/health and /api/session/{id}
    prompts.py   uploaded image prompts shared between the front and the nodes
"""
from __future__ import annotations

from pipeline.errors import UserError

RAY_MISSING = ("--cluster needs Ray Serve, which is not installed: pip install 'live3dpe[cluster]' "
               "(or pip install 'ray[serve]>=2.60,<2.61'), on the front and on every node")


def require_ray() -> None:
    """Raise UserError saying how to install Ray Serve when it cannot be imported."""
    try:
        import ray  # noqa: F401
        from ray import serve  # noqa: F401
    except ImportError:
        raise UserError(RAY_MISSING) from None
