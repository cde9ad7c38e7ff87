"""The HTTP app: session routes + SSE, the OpenAI-compatible API, operations, and the chat page.

`create_app(engine, store, settings)` builds it around the gRPC side's own session store, so both
doors see the same sessions. Served by uvicorn on the gRPC server's event loop (`server.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from starlette.responses import FileResponse
from starlette.staticfiles import StaticFiles

from ...engine import Engine
from ...sessions import SessionStore, TurnStarted
from ..settings import Settings
from . import openai, ops, sessions_routes
from .auth import ApiKeyMiddleware
from .door import Door
from .errors import install_error_handlers
from .metrics import Metrics

__all__ = ["create_app", "web_root"]


def web_root() -> Path:
    """The chat page's files (package data: python/smolrt/web)."""
    return Path(str(resources.files("smolrt") / "web"))


def sessions_waiting(store: SessionStore | None) -> int:
    """Session turns started that have produced nothing yet (their last event is the start)."""
    if store is None:
        return 0
    waiting = 0
    for session in store.list():
        log = session.log
        if session.generating and log.last_seq > 0:
            last = log.since(log.last_seq - 1)
            waiting += bool(last) and isinstance(last[-1].event, TurnStarted)
    return waiting


def create_app(
    engine: Engine | None,
    store: SessionStore | None,
    settings: Settings,
    *,
    queued_elsewhere: Callable[[], int] = lambda: 0,
) -> FastAPI:
    """The ASGI app. `queued_elsewhere`: requests other doors admitted that wait for a first token
    (gRPC Generate calls), for the queued-requests gauge."""
    app = FastAPI(
        title="smolrt",
        summary="Sessions over SSE, an OpenAI-compatible API and a chat page, beside the gRPC API.",
        docs_url="/docs",
        redoc_url=None,
    )
    metrics = Metrics()
    d = Door(engine, store, settings, metrics)
    app.state.door = d
    metrics.watch(engine, store, lambda: d.waiting + sessions_waiting(store) + queued_elsewhere())

    install_error_handlers(app)
    app.include_router(ops.router)
    app.include_router(sessions_routes.router)
    app.include_router(openai.router)

    root = web_root()

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(root / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/web", StaticFiles(directory=root), name="web")

    # Outermost first: every request is counted, the rejected ones too.
    if settings.api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key)
    app.add_middleware(ops.RequestCounter, metrics=metrics)
    return app


def door_of(app: FastAPI) -> Door:
    found: Door = app.state.door
    return found
