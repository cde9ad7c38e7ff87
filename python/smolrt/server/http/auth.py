"""The API key over HTTP: `Authorization: Bearer <key>` on every route but health, as on gRPC.

Two things stay open. The probes (/healthz, /readyz), so orchestrators need no key — the same
exception the gRPC side makes for grpc.health.v1. And the chat page's static files (/ and /web/):
a browser cannot attach a bearer header to a page navigation, the files hold no data, and the page
asks for the key and sends it with every API call it makes.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from ...errors import UnauthenticatedError
from .errors import error_response

__all__ = ["OPEN_PATHS", "OPEN_PREFIXES", "ApiKeyMiddleware"]

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/", "/favicon.ico"})
OPEN_PREFIXES = ("/web/",)


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, api_key: str) -> None:
        if not api_key:
            raise ValueError("an empty API key would let every request through")
        self._app = app
        self._expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._open(scope["path"]):
            await self._app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if given is None:
            problem = "this server needs an API key: send the header `Authorization: Bearer <key>`"
        # Constant-time, so the comparison does not leak how much of a guess was right.
        elif not hmac.compare_digest(given, self._expected):
            problem = "the API key is wrong (expected the header `Authorization: Bearer <key>`)"
        else:
            await self._app(scope, receive, send)
            return
        response = error_response(UnauthenticatedError(problem), headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)

    @staticmethod
    def _open(path: str) -> bool:
        return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
