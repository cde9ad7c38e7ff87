"""Session routes: the same `SessionStore` the gRPC Sessions service drives, over JSON and SSE.

A turn is started with POST .../messages and read from GET .../events (SSE), which any number of
clients may follow and resume: the browser keeps one event stream per open session, so a reply
keeps arriving through a reconnect, and a session started over gRPC can be watched here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response, StreamingResponse

from ...sessions import Session, SessionStore, TurnStarted
from . import sse
from .door import DoorDep
from .params import Params

__all__ = ["router", "session_json"]

router = APIRouter(prefix="/api/sessions", tags=["sessions"])

TITLE_CHARS = 80


class CreateSession(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system_prompt: str | None = None
    #: Defaults for every turn of the session.
    params: Params | None = None
    #: Passed to the chat template (models with a thinking mode); None: the template's default.
    enable_thinking: bool | None = None
    #: Re-render earlier turns' reasoning into later prompts.
    keep_reasoning: bool = False


class SendMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1)
    #: Overrides of the session's defaults for this turn only.
    params: Params | None = None
    enable_thinking: bool | None = None


class UpdateSession(BaseModel):
    """Fields to change for the next turns; the ones left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    system_prompt: str | None = None
    enable_thinking: bool | None = None
    params: Params | None = None


class TurnAccepted(BaseModel):
    session_id: str
    turn: int
    #: Sequence number of the turn's `started` event: follow the events after `seq - 1`.
    seq: int


class Cancelled(BaseModel):
    cancelled: bool


def _running_turn_seq(session: Session) -> int | None:
    """The seq of the running turn's `started` event, so a page that reloads mid-turn can replay
    the turn from its start (the transcript holds the user message but not the partial reply)."""
    if not session.generating:
        return None
    log = session.log
    for logged in reversed(log.since(log.first_seq - 1)):
        if isinstance(logged.event, TurnStarted):
            return logged.seq
    return None


def session_json(store: SessionStore, session: Session, *, with_messages: bool) -> dict[str, Any]:
    first_user = next((m.get("content", "") for m in session.messages if m.get("role") == "user"), "")
    out: dict[str, Any] = {
        "id": session.id,
        "title": str(first_user)[:TITLE_CHARS],
        "system_prompt": session.system_prompt,
        "params": dict(session.params),
        "enable_thinking": session.enable_thinking,
        "keep_reasoning": session.keep_reasoning,
        "state": "generating" if session.generating else "idle",
        "turns": session.turns,
        "last_seq": session.log.last_seq,
        "cached_tokens": store.resident_tokens(session),
        "created_at": session.created_at,
        "updated_at": session.updated_at,
    }
    if with_messages:
        out["messages"] = [dict(m) for m in session.messages]
        out["running_turn_seq"] = _running_turn_seq(session)
    return out


@router.post("", status_code=201, summary="Create a session")
async def create_session(body: CreateSession, d: DoorDep) -> dict[str, Any]:
    store = d.require_store()
    session = store.create(
        system_prompt=body.system_prompt or None,
        params=body.params.engine_kwargs() if body.params else None,
        enable_thinking=body.enable_thinking,
        keep_reasoning=body.keep_reasoning,
    )
    return session_json(store, session, with_messages=True)


@router.get("", summary="List sessions, oldest first")
async def list_sessions(d: DoorDep) -> dict[str, Any]:
    store = d.require_store()
    return {"sessions": [session_json(store, s, with_messages=False) for s in store.list()]}


@router.get("/{session_id}", summary="A session with its transcript")
async def get_session(session_id: str, d: DoorDep) -> dict[str, Any]:
    store = d.require_store()
    return session_json(store, store.get(session_id), with_messages=True)


@router.delete("/{session_id}", status_code=204, summary="Delete a session (cancels a running turn)")
async def delete_session(session_id: str, d: DoorDep) -> Response:
    await d.require_store().delete(session_id)
    return Response(status_code=204)


@router.patch("/{session_id}", summary="Change the system prompt, thinking switch or defaults for the next turns")
async def update_session(session_id: str, body: UpdateSession, d: DoorDep) -> dict[str, Any]:
    store = d.require_store()
    changes: dict[str, Any] = {}
    for name in body.model_fields_set & {"system_prompt", "enable_thinking"}:
        changes[name] = getattr(body, name)
    if body.params is not None:
        changes["params"] = body.params.engine_kwargs()
    return session_json(store, store.update(session_id, **changes), with_messages=True)


@router.post("/{session_id}/toggle-thinking", summary="Flip the session's thinking switch for the next turns")
async def toggle_thinking(session_id: str, d: DoorDep) -> dict[str, Any]:
    store = d.require_store()
    current = store.get(session_id).enable_thinking
    # Unset means the chat template's default, which for thinking models (SmolLM3, Qwen3) is on.
    enabled = True if current is None else current
    return session_json(store, store.update(session_id, enable_thinking=not enabled), with_messages=False)


@router.post("/{session_id}/messages", status_code=202, summary="Send a user message and start the reply")
async def send_message(session_id: str, body: SendMessage, d: DoorDep) -> TurnAccepted:
    store = d.require_store()
    params = body.params.engine_kwargs() if body.params else {}
    started = store.start_turn(session_id, body.content, params=params, enable_thinking=body.enable_thinking)
    assert isinstance(started.event, TurnStarted)
    return TurnAccepted(session_id=session_id, turn=started.event.turn, seq=started.seq)


@router.post("/{session_id}/cancel", summary="Stop the running turn")
async def cancel_turn(session_id: str, d: DoorDep) -> Cancelled:
    return Cancelled(cancelled=await d.require_store().cancel(session_id))


@router.get(
    "/{session_id}/events",
    summary="The session's events as Server-Sent Events",
    response_class=StreamingResponse,
    responses={200: {"content": {sse.MEDIA_TYPE: {}}}},
)
async def session_events(
    session_id: str,
    d: DoorDep,
    after: int | None = Query(None, ge=0, description="Start after this sequence number (default 0: everything)"),
    last_event_id: str | None = Header(None, description="What a reconnecting EventSource sends; beats `after`"),
) -> StreamingResponse:
    store = d.require_store()
    session = store.get(session_id)
    subscription = store.subscribe(session_id, sse.parse_last_event_id(last_event_id, after))
    return StreamingResponse(
        sse.session_stream(subscription, session, d.stopping), media_type=sse.MEDIA_TYPE, headers=sse.HEADERS
    )
