"""The library API on the real default model: streaming, chat, cancellation, async."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time

import pytest

from smolrt import Delta, Engine, Finished
from smolrt.errors import FailedPreconditionError, ResourceExhaustedError

# Phrased so that the 135M model answers correctly under greedy decoding (llama.cpp agrees; the
# plainer "What is the capital of France?" makes it list Paris landmarks instead).
QUESTION = [{"role": "user", "content": "Which city is the capital of France? Answer in one word."}]


def drain(gen) -> tuple[list[Delta], Finished]:
    events = list(gen)
    *deltas, last = events
    assert isinstance(last, Finished)
    assert all(isinstance(d, Delta) for d in deltas)
    return deltas, last


def test_chat_answers_sensibly(engine: Engine) -> None:
    deltas, fin = drain(engine.chat(QUESTION, max_tokens=48, temperature=0))
    text = "".join(d.text for d in deltas)
    assert "Paris" in text
    assert fin.reason in ("stop", "length")
    assert fin.usage.completion_tokens == sum(len(d.token_ids) for d in deltas)
    assert fin.usage.prompt_tokens > 10
    assert fin.timings.ttft_s > 0 and fin.timings.decode_s >= 0


def test_generate_respects_max_tokens_and_reports_length(engine: Engine) -> None:
    deltas, fin = drain(engine.generate("Once upon a time", max_tokens=7, temperature=0, ignore_eos=True))
    assert fin.reason == "length"
    assert fin.usage.completion_tokens == 7
    assert sum(len(d.token_ids) for d in deltas) == 7


def test_greedy_is_deterministic_and_seeded_sampling_reproducible(engine: Engine) -> None:
    def ids(**kw) -> list[int]:
        deltas, _ = drain(engine.generate("The weather today is", max_tokens=16, ignore_eos=True, **kw))
        return [t for d in deltas for t in d.token_ids]

    assert ids(temperature=0) == ids(temperature=0)
    assert ids(temperature=1.0, seed=42) == ids(temperature=1.0, seed=42)
    draws = {tuple(ids(temperature=1.5, seed=s)) for s in range(4)}
    assert len(draws) > 1, "different seeds should give different samples at temperature 1.5"


def test_stop_string_ends_generation_and_is_not_streamed(engine: Engine) -> None:
    base, _ = drain(engine.chat(QUESTION, max_tokens=32, temperature=0))
    full = "".join(d.text for d in base)
    assert "Paris" in full
    deltas, fin = drain(engine.chat(QUESTION, max_tokens=32, temperature=0, stop=["Paris"]))
    text = "".join(d.text for d in deltas)
    assert fin.reason == "stop" and fin.stop == "Paris"
    assert "Paris" not in text
    assert text == full[: full.index("Paris")]


def test_logprobs_are_reported(engine: Engine) -> None:
    deltas, _ = drain(engine.generate("Hello", max_tokens=3, temperature=0, logprobs=True, top_logprobs=3))
    lps = [lp for d in deltas for lp in d.logprobs]
    assert len(lps) == 3
    for lp in lps:
        assert lp.logprob <= 0
        assert len(lp.top) == 3
        # Greedy: the chosen token is the most likely one.
        assert lp.top[0][0] == lp.token_id
        assert [p for _, p in lp.top] == sorted((p for _, p in lp.top), reverse=True)


def wait_idle(engine: Engine, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while engine.active_sequences() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_break_cancels_and_frees_kv_blocks(engine: Engine) -> None:
    wait_idle(engine)
    free_before = engine.kv_stats()["blocks_free"]
    gen = engine.generate("Count from one to one thousand:", max_tokens=500, ignore_eos=True)
    for i, _ev in enumerate(gen):
        if i == 3:
            break
    del gen
    gc.collect()
    wait_idle(engine)
    assert engine.active_sequences() == 0
    assert engine.kv_stats()["blocks_free"] == free_before


def test_explicit_close_yields_no_more_events(engine: Engine) -> None:
    gen = engine.generate("Tell me a story", max_tokens=200, ignore_eos=True)
    next(gen)
    gen.close()
    assert list(gen) == []
    wait_idle(engine)
    assert engine.active_sequences() == 0


def test_concurrent_generations_from_threads(engine: Engine) -> None:
    results: dict[int, str] = {}

    def worker(i: int) -> None:
        deltas, fin = drain(engine.generate(f"Item {i}:", max_tokens=12, temperature=0, ignore_eos=True))
        assert fin.usage.completion_tokens == 12
        results[i] = "".join(d.text for d in deltas)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == list(range(6))
    alone = "".join(d.text for d in drain(engine.generate("Item 3:", max_tokens=12, temperature=0, ignore_eos=True))[0])
    assert results[3] == alone


def test_async_generation(engine: Engine) -> None:
    async def main() -> tuple[str, Finished]:
        parts = []
        last = None
        async for ev in engine.achat(QUESTION, max_tokens=24, temperature=0):
            if isinstance(ev, Delta):
                parts.append(ev.text)
            else:
                last = ev
        assert last is not None
        return "".join(parts), last

    text, fin = asyncio.run(main())
    sync_text = "".join(d.text for d in drain(engine.chat(QUESTION, max_tokens=24, temperature=0))[0])
    assert text == sync_text
    assert fin.usage.completion_tokens > 0


def test_async_task_cancellation_frees_the_sequence(engine: Engine) -> None:
    async def main() -> None:
        started = asyncio.Event()

        async def consume() -> None:
            async for _ in engine.agenerate("Write a long essay", max_tokens=400, ignore_eos=True):
                started.set()

        task = asyncio.create_task(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    wait_idle(engine)
    assert engine.active_sequences() == 0


def test_multibyte_characters_split_across_tokens_stream_whole(engine: Engine) -> None:
    # Greedy on this prompt the model emits emoji as several byte tokens each.
    deltas, _ = drain(engine.generate("Emoji party: 🎉🎉🎉🎉", max_tokens=24, temperature=0, ignore_eos=True))
    ids = [t for d in deltas for t in d.token_ids]
    held_back = [d for d in deltas if d.token_ids and d.text == ""]
    assert held_back, "expected some tokens carrying only part of a character"
    streamed = "".join(d.text for d in deltas)
    assert "🎉" in streamed and "\ufffd" not in streamed
    assert streamed == engine.detokenize(ids, skip_special=True)


def test_info_describes_the_model(engine: Engine) -> None:
    info = engine.info
    assert info["architecture"] == "llama"
    assert info["context_length"] == 8192
    assert info["vocab_size"] == 49152
    assert info["chat_template"] and "im_start" in info["chat_template"]
    assert info["tensor_types"]["Q4_1"] > 0


def test_the_engine_steps_while_a_python_thread_holds_the_interpreter(engine: Engine) -> None:
    # The stepping thread is native and never takes the GIL: a generation runs to its end while
    # this thread spins in pure Python without letting go (a switch interval far longer than the
    # spin keeps the interpreter from taking it away).
    wait_idle(engine)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    try:
        gen = engine.generate("Once upon a time", max_tokens=8, temperature=0, ignore_eos=True)
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            pass
        ran_during_spin = engine.active_sequences() == 0
    finally:
        sys.setswitchinterval(interval)
    _, fin = drain(gen)
    assert fin.usage.completion_tokens == 8
    assert ran_during_spin, "the generation waited for the interpreter lock"


def test_admission_and_readings_do_not_wait_for_the_step_that_runs(engine: Engine) -> None:
    # A request is checked at once and queued for the next step, as is a session's drop, and
    # the stats a server reads (KV occupancy, live sequences, a session's resident tokens) come
    # without the engine's lock. All used to take it and so wait for the step that ran: on a
    # server's event loop, a 512-token prefill chunk (a third of a second on two cores) during
    # which it served nothing.
    wait_idle(engine)
    drain(engine.generate("Keep this conversation:", max_tokens=4, session_key=31))
    assert engine.resident_tokens(31) > 0
    prose = engine.tokenize("The history of computing is a story of abstraction on abstraction. " * 200)
    assert len(prose) >= 1536
    long = engine.generate(prose[:1536], max_tokens=1, temperature=0)  # three 512-token chunks
    took: dict[str, float] = {}

    def timed(name: str, call):
        time.sleep(0.01)
        t = time.perf_counter()
        out = call()
        took[name] = time.perf_counter() - t
        return out

    others = [timed(f"admission {i}", lambda: engine.generate([1, 2, 3], max_tokens=1)) for i in range(2)]
    stats = timed("kv_stats", engine.kv_stats)
    # the long prompt (at least three steps) and the two admitted behind it
    assert timed("active_sequences", engine.active_sequences) in (1, 2, 3)
    assert timed("cached_prefix", lambda: engine.cached_prefix(424242, prose[:8])) == 0
    assert timed("resident_tokens", lambda: engine.resident_tokens(424242)) == 0
    assert timed("drop_session", lambda: engine.drop_session(31)) is True
    assert engine.resident_tokens(31) == 0  # at once, though the blocks go after the step
    _, fin = drain(long)
    for gen in others:
        drain(gen)
    assert stats["blocks_in_use"] + stats["blocks_free"] == stats["blocks_total"]
    chunk_s = fin.timings.prefill_s / 3
    slow = {name: round(s, 3) for name, s in took.items() if s >= chunk_s / 4}
    assert not slow, f"these waited (a prefill chunk took {chunk_s:.3f} s): {slow}"


def test_dropped_session_frees_its_blocks_and_starts_afresh(engine: Engine) -> None:
    wait_idle(engine)
    free_before = engine.kv_stats()["blocks_free"]
    drain(engine.generate("Remember the number 7.", max_tokens=4, session_key=55))
    assert engine.kv_stats()["blocks_free"] < free_before  # kept resident
    assert engine.drop_session(55) is True
    assert engine.drop_session(55) is False  # already gone
    deadline = time.monotonic() + 10
    while engine.kv_stats()["blocks_free"] != free_before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.kv_stats()["blocks_free"] == free_before
    # the next turn under the key reuses nothing, and keeps its own KV resident again
    _, again = drain(engine.generate("Remember the number 7.", max_tokens=4, session_key=55))
    assert again.usage.cached_tokens == 0
    assert engine.resident_tokens(55) > 0
    assert engine.drop_session(55) is True


def test_drop_queued_with_a_turn_under_its_key_reuses_nothing(engine: Engine) -> None:
    # A drop and a turn admitted behind it, both queued while a prefill chunk runs, land before
    # the same step: the drop goes first, so the turn starts afresh.
    wait_idle(engine)
    prompt = engine.tokenize("Remember the number 8.")
    drain(engine.generate(prompt, max_tokens=4, session_key=56))
    prose = engine.tokenize("The history of computing is a story of abstraction on abstraction. " * 60)
    blocker = engine.generate(prose[:512], max_tokens=1)  # one 512-token chunk
    time.sleep(0.02)  # the chunk has started (it takes a tenth of a second or more)
    assert engine.drop_session(56) is True
    assert engine.cached_prefix(56, prompt) == 0
    _, turn = drain(engine.generate(prompt, max_tokens=2, session_key=56))
    assert turn.usage.cached_tokens == 0
    drain(blocker)
    engine.drop_session(56)


def test_queued_admissions_count_against_the_limits(model_path) -> None:
    with Engine.load(model_path, max_sequences=2, kv_budget_mb=16) as small:
        # Both admitted at once: the second counts while it waits for the first step.
        a = small.generate("Go on and on:", max_tokens=32, ignore_eos=True, session_key=7)
        with pytest.raises(FailedPreconditionError, match="session 7 already has a generation running"):
            small.generate("Me too:", max_tokens=1, session_key=7)
        b = small.generate("And on:", max_tokens=32, ignore_eos=True)
        assert small.active_sequences() == 2
        with pytest.raises(ResourceExhaustedError, match="2 sequences are already active"):
            small.generate("One more:", max_tokens=1)
        a.close()
        b.close()
        wait_idle(small)
        assert small.active_sequences() == 0
        _, fin = drain(small.generate("Now me:", max_tokens=2, ignore_eos=True, session_key=7))
        assert fin.usage.completion_tokens == 2
