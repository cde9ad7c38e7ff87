"""The scheduler: hands every generation's events to its sink.

Every in-flight generation (library iterators, gRPC and HTTP streams) is a sequence in the one
native engine, which steps them on its own thread (`smolrt-step`, in Rust) back to back while any
runs, without ever taking the interpreter lock: a busy Python thread never delays the next step.
(When a Python thread drove the steps, each step waited to take the GIL back: 42-55 us between
steps with one stream, 330-370 us on average at 16 gRPC streams.) A dispatcher thread here takes
the queued events (`next_events`) and routes them to the sink of the generation they belong to.
Cancellations are applied between steps, so a cancelled sequence stops at the next step and frees
its KV blocks.

A server attaches its event loop (`attach_loop`): the generations its async streams start then
have their events taken and routed by the loop itself, woken through a pipe, so each of their
tokens wakes one Python thread instead of two and needs no `call_soon_threadsafe` (on a machine
whose cores all compute the model, that CPU came out of the forward pass). Every other generation
keeps the dispatcher thread.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .errors import UnavailableError
from .events import Finished

__all__ = ["LoopRoute", "Scheduler", "Sink"]

#: Receives the event tuples of one sequence, called on the dispatcher thread (or the attached loop,
#: for that loop's streams). It must not block.
Sink = Callable[[tuple[Any, ...]], None]

_FINAL = ("finished", "failed")


class Scheduler:
    def __init__(self, native: Any) -> None:
        self._native = native
        self._lock = threading.Lock()
        self._sinks: dict[int, Sink] = {}
        # Events for sequences whose sink is not registered yet: `submit` admits the sequence
        # before registering, and a step may run in between.
        self._early: dict[int, list[tuple[Any, ...]]] = {}
        self._closed = False
        self._route: LoopRoute | None = None
        #: Called on the dispatcher thread with every generation's Finished event (server metrics).
        self._finished_listeners: list[Callable[[Finished], None]] = []
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="smolrt-dispatch", daemon=True)
        self._dispatcher.start()

    def submit(
        self,
        prompt: Sequence[int],
        params: dict[str, Any],
        sink: Sink,
        session: int | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> int:
        """Admit a generation. Raises at once for invalid requests.

        `session`: continue that key's resident KV and keep it resident afterwards. `loop`: the
        event loop `sink` belongs to; when it is the attached one, it routes the events.
        """
        if self._closed:
            raise UnavailableError("the engine is closed")
        route = self._route
        to_loop = loop is not None and route is not None and route.loop is loop
        seq: int = self._native.add_request(list(prompt), params, session, to_loop)
        with self._lock:
            if self._closed:
                # closed while this was being admitted: the stepping thread may be gone
                self._native.cancel(seq)
                raise UnavailableError("the engine is closed")
            early = self._early.pop(seq, [])
            if not any(ev[0] in _FINAL for ev in early):
                self._sinks[seq] = sink
            # Under the lock, so the dispatcher cannot deliver a later event before these.
            for ev in early:
                sink(ev)
        return seq

    def cancel(self, seq: int) -> None:
        """Stop a sequence at the next step (no-op if it already finished)."""
        with self._lock:
            if seq in self._sinks:
                self._native.cancel(seq)

    def add_finished_listener(self, listener: Callable[[Finished], None]) -> None:
        """Call `listener` (on the dispatcher thread; it must not block) with every generation's
        Finished event, whoever started it."""
        self._finished_listeners.append(listener)

    def remove_finished_listener(self, listener: Callable[[Finished], None]) -> None:
        if listener in self._finished_listeners:
            self._finished_listeners.remove(listener)

    def active(self) -> int:
        with self._lock:
            return len(self._sinks)

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> LoopRoute | None:
        """Have `loop` (call this on it) route the events of the generations its async streams
        start, until the returned route is detached. None where another running loop is attached
        or a loop cannot watch a pipe (Windows' proactor loop): the thread routes them then."""
        if sys.platform == "win32":
            return None
        current = self._route
        if current is not None:
            if current.loop.is_running():
                return None
            current.detach()  # a server's loop that stopped without detaching
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        try:
            self._native.attach_loop(write)  # owns the write end from here, even if it raises
        except BaseException:
            os.close(read)
            raise
        route = LoopRoute(self, loop, read)
        self._route = route
        try:
            loop.add_reader(read, route.on_ready)
        except NotImplementedError:
            route.detach()
            return None
        return route

    def close(self) -> None:
        """Cancel everything running (each stream gets its final event) and stop both threads."""
        with self._lock:
            self._closed = True
        self._native.close()
        route = self._route
        if route is not None and not route.loop.is_running():
            # Its loop stopped without detaching: nobody else will route the final events.
            route.detach()
        self._dispatcher.join(timeout=30)

    def _dispatch_loop(self) -> None:
        while (events := self._native.next_events()) is not None:
            try:
                self._dispatch(events)
            except BaseException:  # noqa: BLE001 - a bug here must not end every stream's events
                pass

    def _dispatch(self, events: list[tuple[Any, ...]]) -> None:
        for ev in events:
            seq = ev[1]
            if ev[0] == "finished" and self._finished_listeners:
                self._notify_finished(ev)
            with self._lock:
                sink = self._sinks.get(seq)
                if sink is None:
                    self._early.setdefault(seq, []).append(ev)
                    continue
                if ev[0] in _FINAL:
                    del self._sinks[seq]
            try:
                sink(ev)
            except Exception:  # noqa: BLE001 - one stream's failing sink must not cost the rest of
                pass  # this step's streams their events

    def _notify_finished(self, ev: tuple[Any, ...]) -> None:
        from .stream import to_event  # stream imports this module's types

        try:
            finished = to_event(ev)
        except Exception:  # noqa: BLE001 - a malformed event must not stop the others' delivery
            return
        if not isinstance(finished, Finished):
            return
        for listener in self._finished_listeners:
            try:
                listener(finished)
            except Exception:  # noqa: BLE001 - an observer must never break the step loop
                pass


class LoopRoute:
    """An event loop routing the events of the generations its async streams start; `detach`
    hands them back to the dispatcher thread. Call it on the loop, or once the loop has stopped."""

    def __init__(self, scheduler: Scheduler, loop: asyncio.AbstractEventLoop, pipe: int) -> None:
        self._scheduler = scheduler
        self._loop = loop
        self._pipe = pipe

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def on_ready(self) -> None:
        """The pipe is readable: route what waits."""
        try:
            os.read(self._pipe, 64)
        except (BlockingIOError, InterruptedError):
            pass
        events = self._scheduler._native.take_events()
        if events:
            self._scheduler._dispatch(events)

    def detach(self) -> None:
        if self._pipe < 0:
            return
        if not self._loop.is_closed():
            self._loop.remove_reader(self._pipe)
        left = self._scheduler._native.detach_loop()
        os.close(self._pipe)
        self._pipe = -1
        if self._scheduler._route is self:
            self._scheduler._route = None
        if left:
            self._scheduler._dispatch(left)
