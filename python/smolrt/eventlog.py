"""A bounded, numbered, replayable log of events, followed live by any number of readers.

Every event gets the next sequence number (from 1). A reader that reconnects asks for what came
after the last number it saw and gets exactly that; a reader whose position has already fallen
out of the bounded log gets `OutOfRangeError`, never a silent gap. Lives on one asyncio loop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import OutOfRangeError

__all__ = ["EventLog", "Logged"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Logged(Generic[T]):
    seq: int
    event: T


class EventLog(Generic[T]):
    def __init__(self, capacity: int = 4096) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._events: deque[Logged[T]] = deque(maxlen=capacity)
        self._last = 0
        self._changed = asyncio.Event()
        self._closed = False

    @property
    def last_seq(self) -> int:
        return self._last

    @property
    def first_seq(self) -> int:
        """The oldest sequence number still held (last_seq + 1 when empty)."""
        return self._events[0].seq if self._events else self._last + 1

    def append(self, event: T) -> Logged[T]:
        self._last += 1
        logged = Logged(self._last, event)
        self._events.append(logged)
        # Wake every follower; each re-arms by awaiting a fresh Event.
        self._changed.set()
        self._changed = asyncio.Event()
        return logged

    def close(self) -> None:
        """No more events: followers finish after what is logged."""
        self._closed = True
        self._changed.set()

    def _check(self, after_seq: int) -> None:
        if after_seq < 0 or after_seq > self._last:
            raise OutOfRangeError(f"after_seq {after_seq} is outside this log (last event is {self._last})")
        if after_seq + 1 < self.first_seq:
            raise OutOfRangeError(
                f"events after {after_seq} are no longer kept (the log holds {self.first_seq}..{self._last}); "
                "re-read the state and subscribe from its last_seq"
            )

    def since(self, after_seq: int) -> list[Logged[T]]:
        """Every event after `after_seq` that is logged now."""
        self._check(after_seq)
        start = after_seq + 1 - self.first_seq
        return list(self._events)[start:]

    async def follow(self, after_seq: int) -> AsyncIterator[Logged[T]]:
        """Replay the events after `after_seq`, then yield new ones as they are logged."""
        self._check(after_seq)
        position = after_seq + 1
        while True:
            if position < self.first_seq:
                raise OutOfRangeError(
                    f"this reader fell behind: event {position} is no longer kept "
                    f"(the log holds {self.first_seq}..{self._last})"
                )
            if position <= self._last:
                yield self._events[position - self.first_seq]
                position += 1
                continue
            if self._closed:
                return
            await self._changed.wait()
