"""The scheduler's dispatch, against a scripted stand-in for the native engine and its stepping
thread: ordering, early events, failures and shutdown, without a model."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import pytest

from smolrt.scheduler import Scheduler


def token(seq: int, i: int) -> tuple[Any, ...]:
    return ("token", seq, i, f"t{i}", "content", None, None)


def finished(seq: int, reason: str = "length") -> tuple[Any, ...]:
    return ("finished", seq, reason, None, 1, 0, 0, 0, 0.0, 0.0, 0.0, 0.0)


class ScriptedNative:
    """The native engine's stepping protocol without a model: a stepping thread of its own (as the
    Rust one) steps while any sequence runs, applies queued cancels between steps and queues the
    events for `next_events`. Each sequence yields `n` tokens, one per step, then finishes;
    `fail_next` makes the next step fail every sequence, as the native stepper does when a step
    errors or panics."""

    def __init__(self, n: int = 3) -> None:
        self.n = n
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.next_seq = 0
        self.progress: dict[int, int] = {}
        self.steps = 0
        self.fail_next = False
        self.admit_gate: threading.Event | None = None
        #: Per-sequence token counts, taken in admission order (else `n`).
        self.lengths: list[int] = []
        self.length: dict[int, int] = {}
        self.cancels: list[int] = []
        self.closing = False
        self.outbox: queue.SimpleQueue[list[tuple[Any, ...]] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def add_request(self, prompt: list[int], params: dict[str, Any], session: int | None, to_loop: bool = False) -> int:
        with self.lock:
            self.next_seq += 1
            self.progress[self.next_seq] = 0
            seq = self.next_seq
            self.length[seq] = self.lengths.pop(0) if self.lengths else self.n
            self.wake.notify()
        if self.admit_gate is not None:
            # hold `submit` between admission and registration while steps run
            self.admit_gate.wait(5)
        return seq

    def cancel(self, seq: int) -> None:
        with self.lock:
            self.cancels.append(seq)
            self.wake.notify()

    def close(self) -> None:
        with self.lock:
            self.closing = True
            self.wake.notify()
        self.thread.join(5)

    def next_events(self) -> list[tuple[Any, ...]] | None:
        return self.outbox.get()

    def _run(self) -> None:
        while True:
            with self.lock:
                while not (self.closing or self.cancels or self.progress):
                    self.wake.wait()
                stopped = [seq for seq in self.cancels if self.progress.pop(seq, None) is not None]
                events = [finished(seq, "cancelled") for seq in stopped]
                self.cancels.clear()
                closing = self.closing
                if closing:
                    events += [finished(seq, "cancelled") for seq in self.progress]
                    self.progress.clear()
                elif self.progress:
                    events += self._step()
            # a real step takes a while: let other threads in between
            time.sleep(0.001)
            if events:
                self.outbox.put(events)
            if closing:
                self.outbox.put(None)
                return

    def _step(self) -> list[tuple[Any, ...]]:
        self.steps += 1
        if self.fail_next:
            self.fail_next = False
            failed = [("failed", seq, "internal", "scheduler step failed: boom", 0, 0) for seq in self.progress]
            self.progress.clear()
            return failed
        events: list[tuple[Any, ...]] = []
        for seq in list(self.progress):
            i = self.progress[seq]
            if i < self.length.get(seq, self.n):
                events.append(token(seq, i))
                self.progress[seq] = i + 1
            else:
                events.append(finished(seq))
                del self.progress[seq]
        return events


class Collector:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.done = threading.Event()

    def __call__(self, ev: tuple[Any, ...]) -> None:
        self.events.append(ev)
        if ev[0] in ("finished", "failed"):
            self.done.set()


def wait(c: Collector) -> list[tuple[Any, ...]]:
    assert c.done.wait(5), f"no final event, got {c.events}"
    return c.events


def test_each_sink_gets_its_events_in_order_and_stepping_stops_when_idle() -> None:
    native = ScriptedNative(n=3)
    sched = Scheduler(native)
    try:
        a, b = Collector(), Collector()
        sa = sched.submit([1], {}, a)
        sb = sched.submit([1], {}, b)
        for seq, c in ((sa, a), (sb, b)):
            evs = wait(c)
            assert [e[1] for e in evs] == [seq] * 4
            assert [e[0] for e in evs] == ["token"] * 3 + ["finished"]
            assert [e[2] for e in evs[:3]] == [0, 1, 2]
        time.sleep(0.05)
        steps = native.steps
        time.sleep(0.1)
        assert native.steps == steps, "the scheduler kept stepping with nothing to run"
        assert sched.active() == 0
    finally:
        sched.close()


def test_a_failing_sink_does_not_cost_the_other_streams_their_events() -> None:
    native = ScriptedNative(n=3)
    sched = Scheduler(native)
    try:
        broken_calls = []

        def broken(ev: tuple[Any, ...]) -> None:
            broken_calls.append(ev)
            raise RuntimeError("a consumer's bug")

        sched.submit([1], {}, broken)
        good = Collector()
        seq = sched.submit([1], {}, good)
        evs = wait(good)
        # every step also carried an event for the broken sink, dispatched first
        assert [e[0] for e in evs] == ["token"] * 3 + ["finished"]
        assert [e[1] for e in evs] == [seq] * 4
        assert len(broken_calls) == 4
    finally:
        sched.close()


def test_events_before_registration_are_delivered_first_and_in_order() -> None:
    native = ScriptedNative()
    native.lengths = [10**9, 2]
    native.admit_gate = threading.Event()
    sched = Scheduler(native)
    try:
        other = Collector()
        # a long sequence keeps the stepping thread busy while the next submit is held
        native.admit_gate.set()
        other_seq = sched.submit([1], {}, other)
        native.admit_gate.clear()
        late = Collector()
        t = threading.Thread(target=lambda: sched.submit([1], {}, late))
        t.start()
        time.sleep(0.1)  # the held sequence runs to its end before it is registered
        native.admit_gate.set()
        t.join(5)
        evs = wait(late)
        assert [e[0] for e in evs] == ["token", "token", "finished"]
        assert [e[2] for e in evs[:2]] == [0, 1]
        # the sequence that ended before it was registered is not waited for: once the long
        # one is cancelled too, stepping stops
        sched.cancel(other_seq)
        wait(other)
        time.sleep(0.05)
        steps = native.steps
        time.sleep(0.1)
        assert native.steps == steps, "the scheduler kept stepping for a finished sequence"
    finally:
        sched.close()


def test_a_failing_step_fails_every_running_sequence_and_serving_goes_on() -> None:
    native = ScriptedNative(n=10**9)
    sched = Scheduler(native)
    try:
        a, b = Collector(), Collector()
        sched.submit([1], {}, a)
        sched.submit([1], {}, b)
        time.sleep(0.02)
        native.fail_next = True
        for c in (a, b):
            evs = wait(c)
            assert evs[-1][0] == "failed" and evs[-1][2] == "internal"
            assert all(e[0] == "token" for e in evs[:-1])
        native.n = 1
        c = Collector()
        sched.submit([1], {}, c)
        assert [e[0] for e in wait(c)] == ["token", "finished"]
    finally:
        sched.close()


def test_close_cancels_what_runs_and_refuses_new_work() -> None:
    native = ScriptedNative(n=10**9)
    sched = Scheduler(native)
    a = Collector()
    sched.submit([1], {}, a)
    time.sleep(0.02)
    sched.close()
    evs = wait(a)
    assert evs[-1][0] == "finished" and evs[-1][2] == "cancelled"
    with pytest.raises(Exception, match="closed"):
        sched.submit([1], {}, Collector())


def test_a_submit_admitted_while_closing_is_cancelled_and_refused() -> None:
    native = ScriptedNative(n=10**9)
    native.admit_gate = threading.Event()
    sched = Scheduler(native)
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            sched.submit([1], {}, Collector())
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    t = threading.Thread(target=submit)
    t.start()
    time.sleep(0.05)  # admitted by the engine, not yet registered
    sched.close()
    native.admit_gate.set()
    t.join(5)
    assert errors and "closed" in str(errors[0])
    assert native.progress == {}, "the admitted sequence was left running in the engine"
