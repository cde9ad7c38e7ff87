"""Server-Sent Events for a session's numbered log.

Each event goes out as `id: <seq>` (the log's sequence number), `event: <type>` and one `data:`
line of JSON. A browser's EventSource, or any client, that reconnects with `Last-Event-ID: <seq>`
gets exactly the events after it: the log replays them, then follows live ones, so nothing is lost
or repeated. A comment line every PING_INTERVAL_S keeps proxies from closing an idle stream.

Event types: `started` (a turn began; carries the user message), `content` and `reasoning` (text
deltas on either channel), `finished` (reason, usage, timings) and `error` (the turn failed).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from ...errors import InvalidRequestError, SmolrtError
from ...eventlog import Logged
from ...events import Delta, Finished
from ...sessions import Session, SessionEvent, TurnFailed, TurnStarted
from ..status import STATUS_TABLE

__all__ = ["PING_INTERVAL_S", "event_json", "format_event", "parse_last_event_id", "session_stream"]

#: Seconds between keep-alive comments on a quiet stream (a module variable so tests can shorten it).
PING_INTERVAL_S = 15.0
#: How long an EventSource waits before reconnecting after a drop.
RETRY_MS = 1000

MEDIA_TYPE = "text/event-stream"
#: No caching, and no buffering by nginx-style proxies: each event must reach the browser at once.
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def format_event(name: str, data: dict[str, Any], seq: int | None = None) -> bytes:
    # json.dumps escapes newlines, so the payload is always a single data: line.
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {name}\ndata: {body}\n\n".encode()


def event_json(logged: Logged[SessionEvent]) -> tuple[str, dict[str, Any]]:
    """The SSE event name and JSON payload of one logged session event."""
    seq, event = logged.seq, logged.event
    if isinstance(event, TurnStarted):
        return "started", {
            "seq": seq,
            "type": "started",
            "turn": event.turn,
            "content": event.content,
            "prompt_tokens": event.prompt_tokens,
            "cached_tokens": event.cached_tokens,
            "created_at": event.created_at,
        }
    if isinstance(event, Delta):
        data: dict[str, Any] = {
            "seq": seq,
            "type": "delta",
            "channel": event.channel,
            "text": event.text,
            "token_ids": list(event.token_ids),
        }
        if event.logprobs:
            data["logprobs"] = [
                {"token_id": lp.token_id, "logprob": lp.logprob, "top": [list(t) for t in lp.top]}
                for lp in event.logprobs
            ]
        return event.channel, data
    if isinstance(event, Finished):
        usage, t = event.usage, event.timings
        return "finished", {
            "seq": seq,
            "type": "finished",
            "reason": event.reason,
            "stop": event.stop,
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cached_tokens": usage.cached_tokens,
                "reasoning_tokens": usage.reasoning_tokens,
                "total_tokens": usage.total_tokens,
            },
            "timings": {
                "queued_ms": t.queued_s * 1000.0,
                "time_to_first_token_ms": t.ttft_ms,
                "prefill_ms": t.prefill_s * 1000.0,
                "decode_ms": t.decode_s * 1000.0,
                "prefill_tokens_per_s": t.prefill_tokens_per_s,
                "decode_tokens_per_s": t.decode_tokens_per_s,
            },
        }
    assert isinstance(event, TurnFailed)
    return "error", {
        "seq": seq,
        "type": "error",
        "turn": event.turn,
        "code": event.code,
        "message": event.message,
        "status": STATUS_TABLE.get(event.code, STATUS_TABLE["internal"]).http,
    }


def parse_last_event_id(header: str | None, query: int | None) -> int:
    """Where to resume: the Last-Event-ID header (what a reconnecting EventSource sends) beats the
    `after` query parameter (what a page sends on its first connection); neither means from 0."""
    if header is not None and header.strip() != "":
        try:
            value = int(header.strip())
        except ValueError:
            raise InvalidRequestError(f"Last-Event-ID {header!r} is not an event id this server gave") from None
        if value < 0:
            raise InvalidRequestError(f"Last-Event-ID {value} is negative")
        return value
    return query or 0


async def session_stream(
    subscription: AsyncIterator[Logged[SessionEvent]], session: Session, stopping: asyncio.Event
) -> AsyncIterator[bytes]:
    """The SSE byte stream of a `store.subscribe(...)` subscription. The caller subscribes, so that
    an unknown session or a position out of range is an HTTP status, not a broken stream."""
    events = subscription.__aiter__()
    yield f"retry: {RETRY_MS}\n\n".encode()
    following: asyncio.Task[Logged[SessionEvent]] | None = None
    stop_wait: asyncio.Task[bool] | None = asyncio.ensure_future(stopping.wait())
    try:
        while True:
            if following is None:
                following = asyncio.ensure_future(anext(events))
            waiting: set[asyncio.Future[Any]] = {following}
            if stop_wait is not None:
                waiting.add(stop_wait)
            done, _ = await asyncio.wait(waiting, timeout=PING_INTERVAL_S, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                yield b": ping\n\n"
                continue
            if stop_wait is not None and stop_wait in done:
                stop_wait = None
                if not session.generating:
                    return  # shutting down and nothing is on its way: end now
            if following not in done:
                continue
            task, following = following, None
            try:
                logged = task.result()
            except StopAsyncIteration:
                return  # the session was deleted
            except SmolrtError as exc:  # fell behind the bounded log
                yield format_event("error", {"type": "error", "code": exc.code, "message": exc.message})
                return
            name, data = event_json(logged)
            yield format_event(name, data, logged.seq)
            if stopping.is_set() and isinstance(logged.event, (Finished, TurnFailed)):
                return  # the last turn before shutdown is complete
    finally:
        for pending in (following, stop_wait):
            if pending is not None:
                pending.cancel()
