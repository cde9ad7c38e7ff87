"""Uvicorn embedded in the gRPC server's event loop: one process, two doors, one scheduler.

We bind the socket ourselves, so a taken port fails at start (as gRPC does) and port 0's choice is
known at once. Uvicorn's own signal handling is turned off: `smolrt serve` handles SIGTERM for both
doors and stops them together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from ...errors import UnavailableError
from .app import door_of

__all__ = ["HttpServer"]

log = logging.getLogger("smolrt.server")


class _Embedded(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the host process owns the signals


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise UnavailableError(f"cannot listen for HTTP on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise UnavailableError(f"cannot listen for HTTP on {host}:{port}: {exc}") from None
    return sock


class HttpServer:
    def __init__(self, app: FastAPI, host: str, port: int, grace_s: float) -> None:
        self.app = app
        self._sock = _bind(host, port)
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=math.ceil(grace_s),
            # Our SSE streams send their own keep-alive comments.
            timeout_keep_alive=30,
        )
        self._server = _Embedded(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise UnavailableError("the HTTP server stopped while starting")
            await asyncio.sleep(0.005)

    async def stop(self, grace: float) -> None:
        """Stop accepting; give open responses `grace` seconds (idle event streams end at once)."""
        door_of(self.app).stopping.set()
        # Whole seconds: that is what uvicorn takes.
        self._server.config.timeout_graceful_shutdown = math.ceil(grace)
        self._server.should_exit = True
        if self._task is not None:
            try:
                await self._task
            except Exception:  # noqa: BLE001 - shutting down: report, do not mask the caller's stop
                log.exception("the HTTP server failed while stopping")
        door_of(self.app).metrics.unwatch()
