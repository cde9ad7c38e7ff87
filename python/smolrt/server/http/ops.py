"""Operations: liveness, readiness, Prometheus metrics, and the middleware that counts requests."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..settings import NO_MODEL_MESSAGE
from .door import DoorDep
from .metrics import Metrics

__all__ = ["RequestCounter", "router"]

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: a model is loaded and the server is not stopping")
async def readyz(d: DoorDep) -> JSONResponse:
    if d.engine is None:
        return JSONResponse({"status": "unavailable", "message": NO_MODEL_MESSAGE}, status_code=503)
    if d.stopping.is_set():
        return JSONResponse({"status": "unavailable", "message": "shutting down"}, status_code=503)
    return JSONResponse({"status": "ready", "model": d.model_id})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(d: DoorDep) -> Response:
    return Response(d.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


class RequestCounter:
    """Counts every HTTP request by route template (not raw path: session ids would make the label
    set unbounded), method and status, when its response has been sent."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        status = 500  # an app that raises before answering is a server error

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, counting_send)
        finally:
            self._metrics.requests.labels(_route(scope), scope["method"], str(status)).inc()


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    raw = str(scope.get("path", ""))
    if raw.startswith("/web/"):
        return "/web/{file}"
    return "unmatched"
