"""The Sessions service: thin over `smolrt.sessions.SessionStore`, which the HTTP routes share.

SendMessage appends the user turn and streams the assistant turn from the session's event log, so
its events carry the same sequence numbers a Subscribe sees. A client that disconnects from
SendMessage cancels the turn unless it asked to keep it running for other subscribers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc

from ..errors import InvalidRequestError, UnavailableError
from ..eventlog import Logged
from ..events import Delta, Finished
from ..sessions import Session, SessionEvent, SessionStore, TurnFailed, TurnStarted
from ..v1 import smolrt_pb2 as pb
from ..v1 import smolrt_pb2_grpc as rpc
from . import convert
from .inference import unary_errors
from .settings import NO_MODEL_MESSAGE, Settings
from .status import STATUS_TABLE, abort

__all__ = ["SessionsServicer", "session_event"]

if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]


def session_event(logged: Logged[SessionEvent], session_id: str) -> pb.Event:
    """One logged session event as the wire event, numbered as in the log."""
    seq, event = logged.seq, logged.event
    if isinstance(event, TurnStarted):
        return convert.started_event(
            seq,
            request_id=f"{session_id}/{event.turn}",
            session_id=session_id,
            prompt_tokens=event.prompt_tokens,
            cached_tokens=event.cached_tokens,
            created_at=event.created_at,
        )
    if isinstance(event, Delta):
        return convert.delta_event(seq, event)
    if isinstance(event, Finished):
        return convert.finished_event(seq, event)
    assert isinstance(event, TurnFailed)
    status = STATUS_TABLE.get(event.code, STATUS_TABLE["internal"]).grpc
    return pb.Event(seq=seq, error=pb.ErrorEvent(code=event.code, message=event.message, status_code=status.value[0]))


class SessionsServicer(rpc.SessionsServicer):
    def __init__(self, store: SessionStore | None, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        # The defaults each session was created with, as sent: a turn's overrides merge into them
        # field by field (convert.merge_parameters).
        self._defaults: dict[str, tuple[pb.SamplingParameters, pb.StoppingParameters]] = {}

    def session_count(self) -> int:
        """Live sessions, for GetStats."""
        return len(self._store.list()) if self._store is not None else 0

    def _require(self) -> SessionStore:
        if self._store is None:
            raise UnavailableError(NO_MODEL_MESSAGE)
        return self._store

    def _to_proto(self, session: Session, *, with_messages: bool) -> pb.Session:
        store = self._require()
        sampling, stopping = self._defaults.get(session.id, (pb.SamplingParameters(), pb.StoppingParameters()))
        out = pb.Session(
            id=session.id,
            system_prompt=session.system_prompt or "",
            sampling=sampling,
            stopping=stopping,
            enable_thinking=bool(session.enable_thinking),
            state=pb.SESSION_STATE_GENERATING if session.generating else pb.SESSION_STATE_IDLE,
            last_seq=session.log.last_seq,
            cached_tokens=store.resident_tokens(session),
        )
        out.created_at.FromNanoseconds(int(session.created_at * 1e9))
        out.updated_at.FromNanoseconds(int(session.updated_at * 1e9))
        if with_messages:
            # The transcript as kept, reasoning included (what the template re-renders may omit it).
            if session.system_prompt:
                out.messages.append(pb.Message(role="system", content=session.system_prompt))
            for m in session.messages:
                out.messages.append(
                    pb.Message(
                        role=m["role"], content=m.get("content") or "", reasoning_content=m.get("reasoning_content", "")
                    )
                )
        return out

    @unary_errors
    async def CreateSession(self, request: pb.CreateSessionRequest, context: Ctx) -> pb.Session:
        store = self._require()
        params = convert.params_from_proto(request.sampling, request.stopping)
        session = store.create(
            system_prompt=request.system_prompt or None,
            params=params,
            enable_thinking=request.enable_thinking if request.HasField("enable_thinking") else None,
        )
        self._defaults[session.id] = (request.sampling, request.stopping)
        return self._to_proto(session, with_messages=False)

    @unary_errors
    async def GetSession(self, request: pb.GetSessionRequest, context: Ctx) -> pb.Session:
        return self._to_proto(self._require().get(request.session_id), with_messages=True)

    @unary_errors
    async def ListSessions(self, request: pb.ListSessionsRequest, context: Ctx) -> pb.ListSessionsResponse:
        sessions = self._require().list()
        try:
            start = int(request.page_token) if request.page_token else 0
        except ValueError:
            raise InvalidRequestError(f"page_token {request.page_token!r} is not one this server gave") from None
        end = len(sessions) if request.page_size == 0 else start + request.page_size
        page = sessions[start:end]
        return pb.ListSessionsResponse(
            sessions=[self._to_proto(s, with_messages=False) for s in page],
            next_page_token=str(end) if end < len(sessions) else "",
        )

    @unary_errors
    async def UpdateSession(self, request: pb.UpdateSessionRequest, context: Ctx) -> pb.Session:
        store = self._require()
        session = store.get(request.session_id)
        changes: dict[str, Any] = {}
        if request.HasField("system_prompt"):
            changes["system_prompt"] = request.system_prompt
        if request.HasField("enable_thinking"):
            changes["enable_thinking"] = request.enable_thinking
        if request.HasField("sampling") or request.HasField("stopping"):
            old_sampling, old_stopping = self._defaults.get(
                session.id, (pb.SamplingParameters(), pb.StoppingParameters())
            )
            sampling = request.sampling if request.HasField("sampling") else old_sampling
            stopping = request.stopping if request.HasField("stopping") else old_stopping
            changes["params"] = convert.params_from_proto(sampling, stopping)
            self._defaults[session.id] = (sampling, stopping)
        return self._to_proto(store.update(session.id, **changes), with_messages=False)

    @unary_errors
    async def DeleteSession(self, request: pb.DeleteSessionRequest, context: Ctx) -> pb.DeleteSessionResponse:
        await self._require().delete(request.session_id)
        self._defaults.pop(request.session_id, None)
        return pb.DeleteSessionResponse()

    async def SendMessage(self, request: pb.SendMessageRequest, context: Ctx) -> AsyncIterator[pb.Event]:
        try:
            store = self._require()
            session = store.get(request.session_id)
            base = self._defaults.get(session.id, (pb.SamplingParameters(), pb.StoppingParameters()))
            sampling, stopping = convert.merge_parameters(
                base,
                (
                    request.sampling if request.HasField("sampling") else None,
                    request.stopping if request.HasField("stopping") else None,
                ),
            )
            started = store.start_turn(
                session.id,
                request.content,
                params=convert.params_from_proto(sampling, stopping),
                enable_thinking=request.enable_thinking if request.HasField("enable_thinking") else None,
            )
        except Exception as exc:  # noqa: BLE001 - rejected before the turn started: a status, no events
            await abort(context, exc)
        done = False
        try:
            async for logged in store.subscribe(session.id, started.seq - 1):
                yield session_event(logged, session.id)
                if isinstance(logged.event, (Finished, TurnFailed)):
                    done = True
                    return
        finally:
            if not done and not request.keep_running_on_disconnect:
                # The caller went away mid-turn: stop generating for nobody. Shielded, since this
                # handler's own task is being cancelled.
                await asyncio.shield(store.cancel(session.id))

    async def Subscribe(self, request: pb.SubscribeRequest, context: Ctx) -> AsyncIterator[pb.Event]:
        try:
            events = self._require().subscribe(request.session_id, request.after_seq)
        except Exception as exc:  # noqa: BLE001
            await abort(context, exc)
        try:
            async for logged in events:
                yield session_event(logged, request.session_id)
        except Exception as exc:  # noqa: BLE001 - fell behind the bounded log: OUT_OF_RANGE
            await abort(context, exc)

    @unary_errors
    async def Cancel(self, request: pb.CancelRequest, context: Ctx) -> pb.CancelResponse:
        return pb.CancelResponse(cancelled=await self._require().cancel(request.session_id))

    async def close(self) -> None:
        """Sessions belong to the store, which the server closes."""
