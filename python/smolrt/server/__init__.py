"""`smolrt serve`: the gRPC server (Inference and Sessions services, health, reflection) and, beside
it on the same loop, the HTTP door (chat page, SSE, OpenAI-compatible API: `server.http`).

`Settings` is importable without grpc (the CLI builds its flags from it); the rest loads on use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .settings import Settings

if TYPE_CHECKING:
    from .app import RunningServer, load_engine, serve, start

__all__ = ["RunningServer", "Settings", "load_engine", "serve", "start"]


def __getattr__(name: str) -> Any:
    if name in ("RunningServer", "load_engine", "serve", "start"):
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
