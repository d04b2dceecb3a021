"""Access token for the server: generation, extraction from a request, constant-time check."""
from __future__ import annotations

import hmac
import secrets

from aiohttp import web


def generate_token() -> str:
    return secrets.token_urlsafe(24)


def request_token(request: web.Request) -> str | None:
    """The token a request carries: `Authorization: Bearer X` or `?token=X`."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query.get("token")


def token_ok(request: web.Request, expected: str | None) -> bool:
    """True when no token is required or the request carries the right one (constant-time compare)."""
    if expected is None:
        return True
    given = request_token(request)
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def check_token(request: web.Request, expected: str | None) -> None:
    """Raise HTTP 401 with a JSON message when the request's token is missing or wrong."""
    if not token_ok(request, expected):
        raise web.HTTPUnauthorized(
            text='{"error": "missing or wrong token: add ?token=... to the URL or an Authorization: Bearer header"}',
            content_type="application/json")
