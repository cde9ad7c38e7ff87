"""Sessions on the real model: KV reuse between turns, the event log, cancel, eviction, TTL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from smolrt import Delta, Engine, FailedPreconditionError, Finished, NotFoundError, OutOfRangeError
from smolrt.sessions import SessionStore, TurnStarted

GREEDY = {"temperature": 0, "max_tokens": 24}


async def run_turn(store: SessionStore, session_id: str, content: str, **kw: Any) -> list[Any]:
    started = store.start_turn(session_id, content, **kw)
    events = []
    async for logged in store.subscribe(session_id, started.seq - 1):
        events.append(logged)
        if isinstance(logged.event, Finished):
            break
    return events


def text_of(events: list[Any]) -> str:
    return "".join(e.event.text for e in events if isinstance(e.event, Delta))


def finished_of(events: list[Any]) -> Finished:
    last = events[-1].event
    assert isinstance(last, Finished)
    return last


def test_second_turn_reuses_kv_and_matches_a_fresh_run(engine: Engine) -> None:
    async def main() -> None:
        store = SessionStore(engine)
        s = store.create(params=GREEDY)
        first = await run_turn(store, s.id, "Name a fruit.")
        assert isinstance(first[0].event, TurnStarted)
        f1 = finished_of(first)
        assert f1.usage.cached_tokens == 0
        second = await run_turn(store, s.id, "Name another one.")
        f2 = finished_of(second)
        # Everything up to the end of turn 1's reply was resident: only the new turn prefilled.
        assert f2.usage.cached_tokens >= f1.usage.prompt_tokens
        assert f2.usage.prompt_tokens - f2.usage.cached_tokens < 20
        # Reused KV must give exactly what a fresh prefill of the same conversation gives.
        history = s.history()[:-1]  # up to and including turn 2's user message
        fresh = engine.chat(history, **GREEDY).text()
        assert text_of(second) == fresh
        assert [m["role"] for m in s.messages] == ["user", "assistant", "user", "assistant"]
        assert s.messages[-1]["content"] == fresh
        await store.close()

    asyncio.run(main())


def test_one_turn_at_a_time(engine: Engine) -> None:
    async def main() -> None:
        store = SessionStore(engine)
        s = store.create(params={"max_tokens": 64, "ignore_eos": True})
        store.start_turn(s.id, "Tell me a story.")
        with pytest.raises(FailedPreconditionError):
            store.start_turn(s.id, "And another.")
        assert await store.cancel(s.id)
        await store.close()

    asyncio.run(main())


def test_subscribers_see_identical_events_and_resume_exactly(engine: Engine) -> None:
    async def main() -> None:
        store = SessionStore(engine)
        s = store.create(params={"temperature": 0, "max_tokens": 16, "ignore_eos": True})

        async def watch(after: int) -> list[Any]:
            out = []
            async for logged in store.subscribe(s.id, after):
                out.append(logged)
                if isinstance(logged.event, Finished):
                    return out
            return out

        watchers = [asyncio.create_task(watch(0)) for _ in range(3)]
        await asyncio.sleep(0)
        mine = await run_turn(store, s.id, "Count to ten.")
        seen = await asyncio.gather(*watchers)
        for other in seen:
            assert [(e.seq, e.event) for e in other] == [(e.seq, e.event) for e in mine]
        assert [e.seq for e in mine] == list(range(1, len(mine) + 1))
        # A reader that saw up to event 5 reconnects and gets exactly the rest.
        resumed = await watch(5)
        assert [e.seq for e in resumed] == [e.seq for e in mine[5:]]
        await store.close()

    asyncio.run(main())


def test_reader_too_far_behind_gets_out_of_range(engine: Engine) -> None:
    async def main() -> None:
        store = SessionStore(engine, log_capacity=8)
        s = store.create(params={"temperature": 0, "max_tokens": 20, "ignore_eos": True})
        await run_turn(store, s.id, "Hello")
        with pytest.raises(OutOfRangeError, match="no longer kept"):
            store.subscribe(s.id, 1)
        with pytest.raises(OutOfRangeError):
            store.subscribe(s.id, s.log.last_seq + 5)
        await store.close()

    asyncio.run(main())


def test_cancel_keeps_partial_reply_and_frees_the_sequence(engine: Engine) -> None:
    async def main() -> None:
        store = SessionStore(engine)
        s = store.create(params={"max_tokens": 400, "ignore_eos": True, "temperature": 0})
        started = store.start_turn(s.id, "Write a long essay about rivers.")
        deltas = 0
        async for logged in store.subscribe(s.id, started.seq - 1):
            if isinstance(logged.event, Delta):
                deltas += 1
                if deltas == 3:
                    assert await store.cancel(s.id)
            if isinstance(logged.event, Finished):
                assert logged.event.reason == "cancelled"
                break
        assert engine.active_sequences() == 0
        assert s.messages[-1]["role"] == "assistant"
        # The next turn still works, reusing what was resident.
        nxt = await run_turn(store, s.id, "Shorter please.", params={"max_tokens": 4})
        assert finished_of(nxt).usage.cached_tokens > 0
        await store.close()

    asyncio.run(main())


def test_evicted_session_reprefills_transparently(model_path: Path) -> None:
    async def main() -> None:
        # A pool of a couple of hundred tokens: two sessions cannot both stay resident.
        with Engine.load(model_path, kv_budget_mb=8) as eng:
            stats = eng.kv_stats()
            capacity = stats["blocks_total"] * stats["block_size"]
            store = SessionStore(eng)
            a = store.create(params=GREEDY)
            # b always uses its whole reply budget, so its KV need is known exactly.
            b = store.create(params={**GREEDY, "ignore_eos": True})
            await run_turn(store, a.id, "Name a colour.")
            resident_a = eng.resident_tokens(a.key)
            assert resident_a > 0
            # b's turn (prompt plus reply) needs more than what a leaves free, yet fits the pool.
            free = capacity - stats["block_size"] * -(-resident_a // stats["block_size"])
            reps = 1
            while True:
                msgs = [{"role": "user", "content": "Name an animal. " * reps}]
                need = len(eng.tokenize(eng.render_chat(msgs), parse_special=True)) + GREEDY["max_tokens"]
                if need > free + 8:
                    break
                reps += 1
            assert need < capacity
            await run_turn(store, b.id, msgs[0]["content"])
            assert eng.resident_tokens(a.key) == 0, "a's KV should have been evicted for b"
            again = await run_turn(store, a.id, "Another colour?")
            assert finished_of(again).usage.cached_tokens == 0
            fresh = eng.chat(a.history()[:-1], **GREEDY).text()
            assert text_of(again) == fresh
            await store.close()

    asyncio.run(main())


def test_delete_and_ttl(engine: Engine) -> None:
    async def main() -> None:
        store = SessionStore(engine, ttl_s=60)
        s = store.create()
        t = store.create()
        await store.delete(s.id)
        with pytest.raises(NotFoundError):
            store.get(s.id)
        assert await store.expire_idle(now=t.updated_at + 30) == 0
        assert await store.expire_idle(now=t.updated_at + 61) == 1
        assert store.list() == []

    asyncio.run(main())


def test_bad_parameters_fail_before_anything_is_logged(engine: Engine) -> None:
    async def main() -> None:
        store = SessionStore(engine)
        s = store.create()
        with pytest.raises(Exception, match="top_p"):
            store.start_turn(s.id, "hi", params={"top_p": 7})
        assert s.log.last_seq == 0 and s.messages == []
        await store.close()

    asyncio.run(main())
