"""An event loop attached to the engine routes the events of the async streams it starts itself
(servers do this); everything else keeps going through the dispatcher thread, and detaching hands
the loop's running streams back without losing or reordering an event."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from smolrt import Delta, Engine, Finished

PROMPT = "The three primary colours are"


def greedy_text(engine: Engine, n: int) -> str:
    return engine.generate(PROMPT, max_tokens=n, temperature=0, ignore_eos=True).text()


async def collect(stream) -> tuple[str, Finished]:
    parts, last = [], None
    async for ev in stream:
        if isinstance(ev, Delta):
            parts.append(ev.text)
        last = ev
    assert isinstance(last, Finished)
    return "".join(parts), last


def test_async_streams_on_the_attached_loop_and_sync_ones_elsewhere(engine: Engine) -> None:
    expected = greedy_text(engine, 24)

    async def main() -> tuple[str, str]:
        route = engine.attach_event_loop()
        assert route is not None
        try:
            # a library stream from another thread, while the loop routes its own
            other: list[str] = []
            worker = threading.Thread(target=lambda: other.append(greedy_text(engine, 24)))
            worker.start()
            text, fin = await collect(engine.agenerate(PROMPT, max_tokens=24, temperature=0, ignore_eos=True))
            await asyncio.to_thread(worker.join)
            assert fin.usage.completion_tokens == 24
            return text, other[0]
        finally:
            route.detach()

    routed, threaded = asyncio.run(main())
    assert routed == expected
    assert threaded == expected


def test_detaching_mid_stream_hands_the_rest_to_the_thread(engine: Engine) -> None:
    expected = greedy_text(engine, 48)

    async def main() -> tuple[str, Finished]:
        route = engine.attach_event_loop()
        assert route is not None
        stream = engine.agenerate(PROMPT, max_tokens=48, temperature=0, ignore_eos=True)
        parts = []
        async for ev in stream:
            assert isinstance(ev, Delta)
            parts.append(ev.text)
            break
        route.detach()
        rest, fin = await collect(stream)
        return "".join(parts) + rest, fin

    text, fin = asyncio.run(main())
    assert fin.reason == "length" and fin.usage.completion_tokens == 48
    assert text == expected


def test_one_running_loop_at_a_time_and_a_stopped_one_is_replaced(engine: Engine) -> None:
    first = asyncio.new_event_loop()
    thread = threading.Thread(target=first.run_forever, daemon=True)
    thread.start()
    try:

        async def attach() -> object:
            return engine.attach_event_loop()

        route = asyncio.run_coroutine_threadsafe(attach(), first).result(10)
        assert route is not None

        async def second() -> object:
            return engine.attach_event_loop()

        # the first loop still runs: a second one is refused, and its streams go by the thread
        assert asyncio.run(second()) is None
        assert greedy_text(engine, 4)
    finally:
        first.call_soon_threadsafe(first.stop)
        thread.join(10)
    # stopped without detaching: the next loop takes over

    async def third() -> str:
        replaced = engine.attach_event_loop()
        assert replaced is not None
        try:
            text, _ = await collect(engine.agenerate(PROMPT, max_tokens=4, temperature=0, ignore_eos=True))
            return text
        finally:
            replaced.detach()

    assert asyncio.run(third()) == greedy_text(engine, 4)
    first.close()


def test_closing_the_engine_after_its_loop_stopped_still_ends_every_stream(model_path: Path) -> None:
    own = Engine.load(model_path)
    loop = asyncio.new_event_loop()
    try:

        async def start() -> object:
            own.attach_event_loop()
            return own.agenerate(PROMPT, max_tokens=10_000, ignore_eos=True)

        stream = loop.run_until_complete(start())
        sync = own.generate(PROMPT, max_tokens=10_000, ignore_eos=True)
        next(iter(sync))
        # the loop is not running now: closing must route its stream's final event itself
        own.close()
        *_, last = list(sync)
        assert isinstance(last, Finished) and last.reason == "cancelled"

        async def rest() -> Finished:
            _, fin = await collect(stream)
            return fin

        assert loop.run_until_complete(rest()).reason == "cancelled"
    finally:
        loop.close()
