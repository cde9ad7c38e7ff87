"""Placeholder Sessions service: every method answers UNIMPLEMENTED until the real one lands.

The server registers `SessionsServicer(engine, settings)` from this module; the sessions work
replaces this file with the real servicer under the same name and constructor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc

from ..engine import Engine
from ..v1 import smolrt_pb2 as pb
from ..v1 import smolrt_pb2_grpc as rpc
from .settings import Settings

__all__ = ["SessionsServicer"]

if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]
_MESSAGE = "sessions are not implemented in this build yet"


class SessionsServicer(rpc.SessionsServicer):
    def __init__(self, engine: Engine | None, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings

    def session_count(self) -> int:
        """Live sessions, for GetStats."""
        return 0

    async def _unimplemented(self, context: Ctx) -> None:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, _MESSAGE)

    async def CreateSession(self, request: pb.CreateSessionRequest, context: Ctx) -> pb.Session:
        await self._unimplemented(context)
        return pb.Session()

    async def GetSession(self, request: pb.GetSessionRequest, context: Ctx) -> pb.Session:
        await self._unimplemented(context)
        return pb.Session()

    async def ListSessions(self, request: pb.ListSessionsRequest, context: Ctx) -> pb.ListSessionsResponse:
        await self._unimplemented(context)
        return pb.ListSessionsResponse()

    async def DeleteSession(self, request: pb.DeleteSessionRequest, context: Ctx) -> pb.DeleteSessionResponse:
        await self._unimplemented(context)
        return pb.DeleteSessionResponse()

    async def SendMessage(self, request: pb.SendMessageRequest, context: Ctx) -> AsyncIterator[pb.Event]:
        await self._unimplemented(context)
        yield pb.Event()  # pragma: no cover - abort raises

    async def Subscribe(self, request: pb.SubscribeRequest, context: Ctx) -> AsyncIterator[pb.Event]:
        await self._unimplemented(context)
        yield pb.Event()  # pragma: no cover - abort raises

    async def Cancel(self, request: pb.CancelRequest, context: Ctx) -> pb.CancelResponse:
        await self._unimplemented(context)
        return pb.CancelResponse()

    async def close(self) -> None:
        """Called once at shutdown, after the server stopped taking calls."""
