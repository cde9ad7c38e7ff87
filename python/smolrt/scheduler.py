"""The scheduler thread: the one place that drives the native engine's batched `step()`.

Every in-flight generation (library iterators now; gRPC and HTTP streams later) is a sequence in
the one native engine. This thread calls `step()` (which releases the GIL while the model runs)
and routes each event tuple to the sink of the generation it belongs to. Cancellations are
applied between steps, so a cancelled sequence stops at the next step and frees its KV blocks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from .errors import InternalError, SmolrtError, UnavailableError
from .events import Finished

__all__ = ["Scheduler", "Sink"]

#: Receives the event tuples of one sequence, called on the scheduler thread. It must not block.
Sink = Callable[[tuple[Any, ...]], None]

_FINAL = ("finished", "failed")


class Scheduler:
    def __init__(self, native: Any) -> None:
        self._native = native
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._sinks: dict[int, Sink] = {}
        # Events for sequences whose sink is not registered yet: `submit` admits the sequence
        # before registering, and a step may run in between.
        self._early: dict[int, list[tuple[Any, ...]]] = {}
        self._cancels: list[int] = []
        self._closed = False
        #: Called on this thread with every generation's Finished event (server metrics).
        self._finished_listeners: list[Callable[[Finished], None]] = []
        self._thread = threading.Thread(target=self._run, name="smolrt-scheduler", daemon=True)
        self._thread.start()

    def submit(self, prompt: Sequence[int], params: dict[str, Any], sink: Sink, session: int | None = None) -> int:
        """Admit a generation. Raises at once for invalid requests.

        `session`: continue that key's resident KV and keep it resident afterwards.
        """
        if self._closed:
            raise UnavailableError("the engine is closed")
        seq: int = self._native.add_request(list(prompt), params, session)
        with self._lock:
            early = self._early.pop(seq, [])
            finished = any(ev[0] in _FINAL for ev in early)
            if not finished:
                self._sinks[seq] = sink
            self._wake.notify()
        for ev in early:
            sink(ev)
        return seq

    def cancel(self, seq: int) -> None:
        """Stop a sequence at the next step (no-op if it already finished)."""
        with self._lock:
            if seq in self._sinks:
                self._cancels.append(seq)
                self._wake.notify()

    def add_finished_listener(self, listener: Callable[[Finished], None]) -> None:
        """Call `listener` (on the scheduler thread; it must not block) with every generation's
        Finished event, whoever started it."""
        self._finished_listeners.append(listener)

    def remove_finished_listener(self, listener: Callable[[Finished], None]) -> None:
        if listener in self._finished_listeners:
            self._finished_listeners.remove(listener)

    def active(self) -> int:
        with self._lock:
            return len(self._sinks)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._cancels.extend(self._sinks)
            self._wake.notify()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._sinks and not self._cancels and not self._closed:
                    self._wake.wait()
                if self._closed and not self._sinks and not self._cancels:
                    return
                cancels, self._cancels = self._cancels, []
            events: list[tuple[Any, ...]] = []
            try:
                for seq in cancels:
                    ev = self._native.cancel(seq)
                    if ev is not None:
                        events.append(ev)
                events.extend(self._native.step())
            except SmolrtError as exc:
                self._fail_all(exc)
                continue
            except BaseException as exc:  # noqa: BLE001 - the thread must survive anything
                self._fail_all(InternalError(f"scheduler step failed: {exc!r}"))
                continue
            self._dispatch(events)

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
            sink(ev)

    def _notify_finished(self, ev: tuple[Any, ...]) -> None:
        from .stream import to_event  # stream imports this module's types

        finished = to_event(ev)
        if not isinstance(finished, Finished):
            return
        for listener in self._finished_listeners:
            try:
                listener(finished)
            except Exception:  # noqa: BLE001 - an observer must never break the step loop
                pass

    def _fail_all(self, exc: SmolrtError) -> None:
        with self._lock:
            sinks, self._sinks = self._sinks, {}
        for seq, sink in sinks.items():
            self._native.cancel(seq)
            sink(("failed", seq, exc.code, str(exc), 0, 0))
