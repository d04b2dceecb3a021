"""Access token for the server: generation, extraction from a request, constant-time check, and an access
log that never shows it."""
from __future__ import annotations

import hmac
import re
import secrets

from aiohttp import web
from aiohttp.web_log import AccessLogger

_TOKEN_IN_URL = re.compile(r"(?i)\b(token=)[^&\s\"'#]+")
REDACTED = "[redacted]"


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


def redact_token(text: str) -> str:
    """`text` with every `token=VALUE` query parameter's value replaced by [redacted]."""
    return _TOKEN_IN_URL.sub(r"\1" + REDACTED, text)


class RedactingAccessLogger(AccessLogger):
    """aiohttp's access log with the token blanked out of the request line, the Referer (the page's own URL
    carries `?token=`) and any header a custom format logs; Authorization is never shown."""

    def _format_line(self, request, response, time):
        return [(key, REDACTED if key == ("request_header", "Authorization")
                 else redact_token(value) if isinstance(value, str) else value)
                for key, value in super()._format_line(request, response, time)]
