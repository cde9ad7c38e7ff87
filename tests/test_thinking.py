"""Reasoning as a channel, end to end on a tiny model whose vocabulary has think tags."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fixtures.tiny_gguf import THINK_CLOSE_ID, THINK_OPEN_ID, write_tiny_llama

from smolrt import Delta, Engine, Finished
from smolrt.sessions import SessionStore

USER = [{"role": "user", "content": "hi"}]
# Keep the reply inside (or outside) the think block deterministically.
STAY_THINKING = {"temperature": 0, "max_tokens": 8, "ignore_eos": True, "logit_bias": {THINK_CLOSE_ID: -1e9}}
NO_THINK = {"temperature": 0, "max_tokens": 8, "ignore_eos": True, "logit_bias": {THINK_OPEN_ID: -1e9}}


@pytest.fixture(scope="module")
def thinker(tmp_path_factory: pytest.TempPathFactory):
    path = write_tiny_llama(tmp_path_factory.mktemp("think") / "think.gguf", thinking=True)
    with Engine.load(path) as eng:
        yield eng


def split(events: list) -> tuple[list[Delta], Finished]:
    *deltas, fin = events
    assert isinstance(fin, Finished)
    return deltas, fin


def test_template_opened_block_streams_on_reasoning(thinker: Engine) -> None:
    deltas, fin = split(list(thinker.chat(USER, enable_thinking=True, **STAY_THINKING)))
    assert {d.channel for d in deltas} == {"reasoning"}
    assert fin.usage.reasoning_tokens == fin.usage.completion_tokens == 8
    assert fin.usage.content_tokens == 0


def test_thinking_disabled_streams_on_content(thinker: Engine) -> None:
    rendered = thinker.render_chat(USER, enable_thinking=False)
    assert rendered.endswith("<think></think>")
    deltas, fin = split(list(thinker.chat(USER, enable_thinking=False, **NO_THINK)))
    assert {d.channel for d in deltas} == {"content"}
    assert fin.usage.reasoning_tokens == 0


def test_close_tag_switches_to_content_and_is_not_streamed(thinker: Engine) -> None:
    # Push the model to close the block at once, then keep it from reopening.
    params = {"temperature": 0, "max_tokens": 6, "ignore_eos": True}
    ids = thinker.tokenize(thinker.render_chat(USER, enable_thinking=True), parse_special=True)
    forced = ids + [65, 66, THINK_CLOSE_ID]  # two bytes of reasoning, then the close tag
    deltas, fin = split(list(thinker.generate(forced, logit_bias={THINK_OPEN_ID: -1e9}, **params)))
    # The prompt closed the block, so the reply is content.
    assert {d.channel for d in deltas} == {"content"}
    assert all("think>" not in d.text for d in deltas)
    # And when the model itself emits the tag: bias it to come first.
    deltas, fin = split(
        list(thinker.chat(USER, enable_thinking=True, logit_bias={THINK_CLOSE_ID: 1e9}, max_tokens=1, temperature=0))
    )
    assert fin.usage.reasoning_tokens == 1 and deltas[0].token_ids == (THINK_CLOSE_ID,)
    assert all(d.text == "" for d in deltas)


def test_session_drops_reasoning_from_history_and_still_reuses_kv(thinker: Engine) -> None:
    async def main() -> None:
        store = SessionStore(thinker)
        s = store.create(params=STAY_THINKING, enable_thinking=True)

        async def turn(content: str) -> tuple[list[Delta], Finished]:
            started = store.start_turn(s.id, content)
            got = []
            async for logged in store.subscribe(s.id, started.seq - 1):
                if isinstance(logged.event, (Delta, Finished)):
                    got.append(logged.event)
                if isinstance(logged.event, Finished):
                    break
            return split(got)

        _, f1 = await turn("first")
        assert s.messages[-1]["reasoning_content"] and s.messages[-1]["content"] == ""
        assert "reasoning_content" not in s.history()[-1]
        deltas, f2 = await turn("second")
        # Dropping turn 1's reasoning changes the prompt only from turn 1's reply on: everything
        # before it is still resident, so only the tail is prefilled again.
        assert 0 < f2.usage.cached_tokens < f2.usage.prompt_tokens
        assert f2.usage.cached_tokens >= f1.usage.prompt_tokens - 1
        fresh = list(thinker.chat(s.history()[:-1], enable_thinking=True, **STAY_THINKING))
        fresh_deltas, _ = split(fresh)
        assert [(d.channel, d.text, d.token_ids) for d in deltas] == [
            (d.channel, d.text, d.token_ids) for d in fresh_deltas
        ]
        await store.close()

    asyncio.run(main())


def test_models_without_think_tokens_never_split(tmp_path: Path) -> None:
    with Engine.load(write_tiny_llama(tmp_path / "plain.gguf")) as eng:
        deltas, fin = split(list(eng.generate("<think>x", max_tokens=4, temperature=0, ignore_eos=True)))
        assert {d.channel for d in deltas} == {"content"} and fin.usage.reasoning_tokens == 0


def test_reasoning_reaches_the_wire(thinker: Engine) -> None:
    from smolrt.server import convert
    from smolrt.v1 import smolrt_pb2 as pb

    deltas, fin = split(list(thinker.chat(USER, enable_thinking=True, **STAY_THINKING)))
    wire = convert.finished_event(9, fin).finished.usage
    assert wire.reasoning_tokens == 8 and wire.content_tokens == 0
    assert convert.delta_event(1, deltas[0]).delta.channel == pb.CHANNEL_REASONING
