"""Chat sessions: a transcript, resident KV between turns, and a numbered event log.

Transport-agnostic: the gRPC servicer and the HTTP routes both drive this one store, so a session
created through one door can be watched through the other. Everything here runs on one asyncio
loop (the server's); the model itself runs on the engine's stepping thread.

- The transcript is the truth; the KV cache is only a cache. Each turn re-renders the whole
  conversation with the chat template and the engine reuses the longest prefix its resident KV
  holds, so a live session prefills only the new turn, and a session whose KV was evicted simply
  prefills more (`usage.cached_tokens` tells which happened).
- One turn at a time per session: a second `start_turn` while one runs is a
  FailedPreconditionError.
- Every event (turn started, deltas, finished, error) is numbered in the session's bounded log;
  any number of readers follow it and resume after the last number they saw.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from .engine import Engine, cap_to_context
from .errors import FailedPreconditionError, NotFoundError, ResourceExhaustedError, SmolrtError
from .eventlog import EventLog, Logged
from .events import Delta, Finished
from .stream import AsyncGeneration

__all__ = ["Session", "SessionEvent", "SessionStore", "TurnFailed", "TurnStarted"]


@dataclass(frozen=True, slots=True)
class TurnStarted:
    turn: int
    #: The user message that opened the turn.
    content: str
    #: Tokens the whole conversation renders to for this turn.
    prompt_tokens: int = 0
    #: Of those, the ones whose KV is resident (what the turn will not prefill again).
    cached_tokens: int = 0
    #: When the turn started (seconds since the epoch); part of the event, so every reader of
    #: the log sees the same value.
    created_at: float = field(default_factory=time.time)
    type: Literal["started"] = field(default="started", init=False)


@dataclass(frozen=True, slots=True)
class TurnFailed:
    turn: int
    code: str
    message: str
    type: Literal["error"] = field(default="error", init=False)


SessionEvent = TurnStarted | Delta | Finished | TurnFailed


@dataclass(eq=False)
class Session:
    id: str
    #: The engine's key for this session's resident KV.
    key: int
    system_prompt: str | None
    #: Default sampling and stopping parameters for every turn.
    params: dict[str, Any]
    enable_thinking: bool | None
    log: EventLog[SessionEvent]
    #: Re-render earlier turns' reasoning into the prompt (off by default: reasoning is for the
    #: turn that produced it, and leaving it out keeps prompts short).
    keep_reasoning: bool = False
    messages: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    turns: int = 0
    _generation: AsyncGeneration | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def generating(self) -> bool:
        return self._task is not None and not self._task.done()

    def history(self) -> list[dict[str, Any]]:
        """The conversation as the chat template sees it."""
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        turns = [dict(m) for m in self.messages]
        if not self.keep_reasoning:
            for m in turns:
                m.pop("reasoning_content", None)
        return system + turns


class SessionStore:
    def __init__(
        self,
        engine: Engine,
        *,
        max_sessions: int = 256,
        ttl_s: float = 3600.0,
        log_capacity: int = 4096,
        max_context: int | None = None,
    ) -> None:
        self._engine = engine
        #: A cap on prompt plus reply tighter than the model's context (None: the model's).
        self._max_context = max_context
        self._max_sessions = max_sessions
        self._ttl_s = ttl_s
        self._log_capacity = log_capacity
        self._sessions: dict[str, Session] = {}
        self._keys = itertools.count(1)

    def create(
        self,
        *,
        system_prompt: str | None = None,
        params: dict[str, Any] | None = None,
        enable_thinking: bool | None = None,
        keep_reasoning: bool = False,
    ) -> Session:
        if len(self._sessions) >= self._max_sessions:
            raise ResourceExhaustedError(
                f"{len(self._sessions)} sessions exist (the limit is {self._max_sessions}); delete some first"
            )
        session = Session(
            id=uuid.uuid4().hex,
            key=next(self._keys),
            system_prompt=system_prompt,
            params=dict(params or {}),
            enable_thinking=enable_thinking,
            log=EventLog(self._log_capacity),
            keep_reasoning=keep_reasoning,
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str) -> Session:
        try:
            return self._sessions[session_id]
        except KeyError:
            raise NotFoundError(f"no session {session_id!r}") from None

    def list(self) -> list[Session]:
        return sorted(self._sessions.values(), key=lambda s: s.created_at)

    _UNSET: Any = object()

    def update(
        self,
        session_id: str,
        *,
        system_prompt: Any = _UNSET,
        enable_thinking: Any = _UNSET,
        params: dict[str, Any] | None = None,
    ) -> Session:
        """Change settings for the next turns; arguments left out stay as they are. The running
        turn, if any, is not affected. The next turn re-renders the conversation with the new
        settings and the KV cache reuses whatever prefix still matches."""
        session = self.get(session_id)
        if system_prompt is not SessionStore._UNSET:
            session.system_prompt = system_prompt or None
        if enable_thinking is not SessionStore._UNSET:
            session.enable_thinking = enable_thinking
        if params is not None:
            session.params = dict(params)
        session.updated_at = time.time()
        return session

    def resident_tokens(self, session: Session) -> int:
        return self._engine.resident_tokens(session.key)

    def start_turn(
        self,
        session_id: str,
        content: str,
        *,
        params: dict[str, Any] | None = None,
        enable_thinking: bool | None = None,
    ) -> Logged[SessionEvent]:
        """Append a user message and start generating the reply. Returns the logged start event;
        the turn's events follow it in the session's log. Bad parameters raise here, before
        anything is logged or appended."""
        session = self.get(session_id)
        if session.generating:
            raise FailedPreconditionError(f"session {session_id} is already generating a reply; wait or cancel it")
        merged = {**session.params, **(params or {})}
        thinking = session.enable_thinking if enable_thinking is None else enable_thinking
        user = {"role": "user", "content": content}
        prompt = self._engine.chat_prompt(session.history() + [user], enable_thinking=thinking)
        cap_to_context(len(prompt), merged, self._max_context)
        cached = self._engine.cached_prefix(session.key, prompt)
        generation = self._engine.agenerate(prompt, session_key=session.key, **merged)
        session.messages.append(user)
        session.turns += 1
        session.updated_at = time.time()
        started = session.log.append(TurnStarted(session.turns, content, len(prompt), cached))
        session._generation = generation
        session._task = asyncio.get_running_loop().create_task(self._run_turn(session, generation))
        return started

    async def _run_turn(self, session: Session, generation: AsyncGeneration) -> None:
        turn = session.turns
        content: list[str] = []
        reasoning: list[str] = []
        try:
            async for event in generation:
                if isinstance(event, Delta):
                    (reasoning if event.channel == "reasoning" else content).append(event.text)
                else:
                    # Even a cancelled reply keeps what was said: the transcript shows it.
                    reply: dict[str, Any] = {"role": "assistant", "content": "".join(content)}
                    if reasoning:
                        reply["reasoning_content"] = "".join(reasoning)
                    session.messages.append(reply)
                session.log.append(event)
        except SmolrtError as exc:
            session.messages.pop()  # the user message that got no reply
            session.log.append(TurnFailed(turn, exc.code, exc.message))
        finally:
            session.updated_at = time.time()
            session._generation = None

    async def cancel(self, session_id: str) -> bool:
        """Stop the running turn at the next step; returns whether one was running."""
        session = self.get(session_id)
        if not session.generating or session._generation is None:
            return False
        session._generation.cancel()
        if session._task is not None:
            await asyncio.shield(session._task)
        return True

    async def delete(self, session_id: str) -> None:
        session = self.get(session_id)
        await self.cancel(session_id)
        del self._sessions[session_id]
        self._engine.drop_session(session.key)
        session.log.close()

    def subscribe(self, session_id: str, after_seq: int = 0) -> AsyncIterator[Logged[SessionEvent]]:
        """The session's events after `after_seq`, then live ones (OutOfRangeError if gone)."""
        session = self.get(session_id)
        session.log.since(after_seq)  # raises now, not at the first iteration
        return session.log.follow(after_seq)

    async def expire_idle(self, now: float | None = None) -> int:
        """Delete sessions idle for longer than the TTL; returns how many."""
        now = time.time() if now is None else now
        stale = [s.id for s in self._sessions.values() if not s.generating and now - s.updated_at > self._ttl_s]
        for session_id in stale:
            await self.delete(session_id)
        return len(stale)

    async def run_expiry(self, interval_s: float = 30.0) -> None:
        """Background task: expire idle sessions every `interval_s`."""
        while True:
            await asyncio.sleep(interval_s)
            await self.expire_idle()

    async def close(self) -> None:
        for session_id in list(self._sessions):
            await self.delete(session_id)
