"""The server: gRPC (servicers, health, reflection, the API-key interceptor) and, on the same event
loop, the HTTP door (chat page, SSE, OpenAI-compatible API), with graceful shutdown of both.

`serve(settings)` is what `smolrt serve` runs. `start(settings, engine)` builds and starts a server
and returns a handle, for tests and embedding (it binds `settings.grpc_port` and
`settings.http_port`; 0 picks a free port, and the handle reports the ports bound).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from ..engine import Engine
from ..errors import UnavailableError
from ..models import find_default_model
from ..scheduler import LoopRoute
from ..sessions import SessionStore
from ..v1 import smolrt_pb2 as pb
from ..v1 import smolrt_pb2_grpc as rpc
from .auth import ApiKeyInterceptor
from .http import HttpServer, create_app
from .http.app import door_of
from .inference import InferenceServicer
from .sessions import SessionsServicer
from .settings import NO_MODEL_MESSAGE, Settings

__all__ = ["RunningServer", "SERVICE_NAMES", "load_engine", "serve", "start"]

log = logging.getLogger("smolrt.server")

INFERENCE = pb.DESCRIPTOR.services_by_name["Inference"].full_name
SESSIONS = pb.DESCRIPTOR.services_by_name["Sessions"].full_name
SERVICE_NAMES = (INFERENCE, SESSIONS)


def load_engine(settings: Settings) -> Engine | None:
    """The engine for `settings.model`, else the pulled default model, else None (serve without one).

    A model that is named but cannot be loaded raises ModelLoadError: a typo in a path should stop
    the server, not leave it up and answering UNAVAILABLE.
    """
    path = settings.model or find_default_model()
    if path is None:
        return None
    return Engine.load(
        path,
        kv_budget_mb=settings.kv_budget_mb,
        kv_type=settings.kv_type,
        max_batch_tokens=settings.max_batch_tokens,
        max_sequences=settings.max_sequences,
    )


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    settings: Settings
    engine: Engine | None
    health: health_aio.HealthServicer
    inference: InferenceServicer
    sessions: SessionsServicer
    #: The one session store every door (gRPC, HTTP) shares; None without a model.
    store: SessionStore | None
    owns_engine: bool = False
    #: The HTTP door; None when HTTP is off (`http_port` -1).
    http: HttpServer | None = None
    #: The loop routing the engine's events (see `Engine.attach_event_loop`), until `stop`.
    route: LoopRoute | None = None
    _stopped: asyncio.Event = field(default_factory=asyncio.Event)
    _background: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.port}"

    @property
    def http_port(self) -> int | None:
        return self.http.port if self.http is not None else None

    @property
    def http_url(self) -> str | None:
        if self.http is None:
            return None
        host = self.settings.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.http.port}/"

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new calls at once; let in-flight ones finish within `grace` seconds, then cancel them."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        await self.health.enter_graceful_shutdown()
        grace_s = self.settings.grace_s if grace is None else grace
        stopping = [self.server.stop(grace_s)]
        if self.http is not None:
            stopping.append(self.http.stop(grace_s))
        await asyncio.gather(*stopping)
        for task in self._background:
            task.cancel()
        if self.store is not None:
            await self.store.close()
        if self.route is not None:
            self.route.detach()  # library streams, if any, get their events from the thread again
        if self.owns_engine and self.engine is not None:
            await asyncio.to_thread(self.engine.close)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()
        await self.server.wait_for_termination()


async def start(settings: Settings, engine: Engine | None, *, owns_engine: bool = False) -> RunningServer:
    """Build and start a server on `engine` (None: no model). Must run inside the event loop that serves."""
    interceptors = [ApiKeyInterceptor(settings.api_key)] if settings.api_key else []
    # so_reuseport off: a second server on a taken port must fail, not silently share it.
    server = grpc.aio.server(interceptors=interceptors, options=[("grpc.so_reuseport", 0)])

    store = (
        SessionStore(
            engine,
            max_sessions=settings.max_sessions,
            ttl_s=settings.session_ttl_s,
            max_context=settings.max_context,
        )
        if engine is not None
        else None
    )
    inference = InferenceServicer(engine, settings)
    sessions = SessionsServicer(store, settings)
    inference.session_count = sessions.session_count
    rpc.add_InferenceServicer_to_server(inference, server)
    rpc.add_SessionsServicer_to_server(sessions, server)

    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    serving = health_pb2.HealthCheckResponse.SERVING if engine else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ("", *SERVICE_NAMES):
        await health.set(name, serving)

    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )

    try:
        port = server.add_insecure_port(settings.address)
    except RuntimeError as exc:
        raise UnavailableError(f"cannot listen on {settings.address}: {exc}") from None
    if port == 0:
        raise UnavailableError(f"cannot listen on {settings.address}")
    http: HttpServer | None = None
    if settings.http_enabled:
        # Bound before gRPC starts, so a taken HTTP port leaves nothing half-started.
        app = create_app(engine, store, settings, queued_elsewhere=inference.queued_requests)
        try:
            http = HttpServer(app, settings.host, settings.http_port, settings.grace_s)
        except BaseException:
            door_of(app).metrics.unwatch()
            raise
    await server.start()
    if http is not None:
        await http.start()
    if engine is None:
        log.warning("smolrt serve: %s (health NOT_SERVING)", NO_MODEL_MESSAGE)
    running = RunningServer(server, port, settings, engine, health, inference, sessions, store, owns_engine, http)
    if engine is not None:
        running.route = engine.attach_event_loop()
    if store is not None:
        running._background.append(asyncio.get_running_loop().create_task(store.run_expiry()))
    return running


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully (a second signal cuts the grace short)."""
    engine = await asyncio.to_thread(load_engine, settings)
    running = await start(settings, engine, owns_engine=True)
    model = engine.path if engine is not None else "no model"
    log.info("smolrt serve: gRPC on %s (%s)", running.address, model)
    if running.http_url is not None:
        log.info("smolrt serve: HTTP on %s (chat page; OpenAI API at %sv1)", running.http_url, running.http_url)

    loop = asyncio.get_running_loop()
    signals = 0
    stopping: list[asyncio.Task[None]] = []

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.info("smolrt serve: %s: draining for up to %gs", signal.Signals(signum).name, settings.grace_s)
            stopping.append(loop.create_task(running.stop()))
        else:
            log.info("smolrt serve: second signal: cancelling in-flight calls now")
            stopping.append(loop.create_task(running.server.stop(0)))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await running.wait_stopped()
        for task in stopping:
            await task
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("smolrt serve: stopped")
