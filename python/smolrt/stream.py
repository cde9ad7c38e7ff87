"""Generation streams: the iterators `Engine.generate` and `Engine.chat` return.

Leaving a stream early — `break`, `close()`, garbage collection, or cancelling the task that
awaits an async stream — cancels its sequence, which frees its KV blocks at the next step.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import error_for_code
from .events import Delta, Event, Finished, Timings, TokenLogprob, Usage

if TYPE_CHECKING:
    from .scheduler import Scheduler

__all__ = ["AsyncGeneration", "Generation"]


def to_event(item: tuple[Any, ...]) -> Event:
    """Turn one native event tuple into a typed event; a failure raises its SmolrtError."""
    kind = item[0]
    if kind == "token":
        _, _, token_id, text, channel, logprob, top = item
        lps: tuple[TokenLogprob, ...] = ()
        if logprob is not None:
            lps = (TokenLogprob(token_id, logprob, tuple(top or ())),)
        return Delta(text, (token_id,), lps, channel)
    if kind == "text":
        return Delta(item[2], (), (), item[3])
    if kind == "finished":
        _, _, reason, stop, prompt, completion, cached, reasoning, queued, ttft, prefill, decode = item
        timings = Timings(queued, ttft, prefill, decode, prompt - cached, completion)
        return Finished(reason, stop, Usage(prompt, completion, cached, reasoning), timings)
    if kind == "failed":
        raise error_for_code(item[2], item[3])
    raise error_for_code("internal", f"unknown native event {kind!r}")


class _Stream:
    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        self._seq: int | None = None
        self._done = False

    @property
    def sequence_id(self) -> int | None:
        return self._seq

    def _take(self, item: tuple[Any, ...]) -> Event:
        if item[0] in ("finished", "failed"):
            self._done = True
        return to_event(item)

    def cancel(self) -> None:
        """Ask for the generation to stop at the next step. Unlike `close`, the stream goes on
        to deliver what was already produced and a final `Finished` (reason "cancelled", or
        the natural reason if it ended first)."""
        if not self._done and self._seq is not None:
            self._scheduler.cancel(self._seq)

    def close(self) -> None:
        """Cancel the generation if it is still running, and end the stream now."""
        if not self._done and self._seq is not None:
            self._done = True
            self._scheduler.cancel(self._seq)

    def __del__(self) -> None:
        # An abandoned stream must not keep generating into a queue nobody reads.
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass


class Generation(_Stream):
    """A synchronous iterator of events: zero or more `Delta`, then one `Finished`."""

    def __init__(
        self, scheduler: Scheduler, prompt: Sequence[int], params: dict[str, Any], session: int | None = None
    ):
        super().__init__(scheduler)
        self.prompt_tokens = len(prompt)
        self._queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._seq = scheduler.submit(prompt, params, self._queue.put, session)

    def __iter__(self) -> Generation:
        return self

    def __next__(self) -> Event:
        if self._done:
            raise StopIteration
        return self._take(self._queue.get())

    def __enter__(self) -> Generation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def text(self) -> str:
        """Consume the stream and return the answer text (the content channel)."""
        return "".join(ev.text for ev in self if isinstance(ev, Delta) and ev.channel == "content")


class AsyncGeneration(_Stream):
    """An asynchronous iterator of events, for `async for`."""

    def __init__(
        self, scheduler: Scheduler, prompt: Sequence[int], params: dict[str, Any], session: int | None = None
    ):
        super().__init__(scheduler)
        self.prompt_tokens = len(prompt)
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._seq = scheduler.submit(prompt, params, self._put, session, self._loop)

    def _put(self, item: tuple[Any, ...]) -> None:
        # The queue belongs to the event loop: the loop itself puts directly (it routes the events
        # when a server attached it to the scheduler), the dispatcher thread hands over.
        if threading.get_ident() == self._loop_thread:
            self._queue.put_nowait(item)
            return
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:
            pass  # the loop is closed: nobody is listening any more

    def __aiter__(self) -> AsyncGeneration:
        return self

    async def __anext__(self) -> Event:
        if self._done:
            raise StopAsyncIteration
        try:
            item = await self._queue.get()
        except asyncio.CancelledError:
            self.close()
            raise
        return self._take(item)

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> AsyncGeneration:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def text(self) -> str:
        """Consume the stream and return the answer text (the content channel)."""
        parts = [ev.text async for ev in self if isinstance(ev, Delta) and ev.channel == "content"]
        return "".join(parts)
