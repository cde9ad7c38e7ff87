"""The `Engine` facade: load a GGUF model, then generate from prompts or chat messages."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import _core
from .errors import InvalidRequestError
from .events import Finished
from .models import resolve_model
from .scheduler import LoopRoute, Scheduler
from .stream import AsyncGeneration, Generation
from .templates import ChatTemplate

__all__ = ["Engine", "cap_to_context"]


def cap_to_context(prompt_len: int, params: dict[str, Any], context: int | None) -> None:
    """Apply a context cap tighter than the model's (a server's `--max-context`): reject a prompt
    that leaves no room for a reply, and limit `max_tokens` to the room left. No-op for None."""
    if not context:
        return
    if prompt_len >= context:
        raise InvalidRequestError(
            f"the prompt has {prompt_len} tokens but this server's context is {context} tokens; "
            "at least one position must remain for the reply"
        )
    room = context - prompt_len
    max_tokens = params.get("max_tokens")
    if max_tokens is None or max_tokens > room:
        params["max_tokens"] = room


class Engine:
    """A loaded model and the stepping thread that serves every generation on it.

    Create with `Engine.load(path)`. `generate` and `chat` return iterators of events
    (`Delta`..., then `Finished`); `agenerate` and `achat` are their `async for` twins. Any number
    of generations may run at once, from any threads: they are batched together.
    """

    def __init__(self, native: Any, path: Path) -> None:
        self._native = native
        self.path = path
        self._scheduler = Scheduler(native)
        info = native.info
        self._template = (
            ChatTemplate(
                info["chat_template"],
                bos_token=info.get("bos_token") or "",
                eos_token=info.get("eos_token") or "",
            )
            if info.get("chat_template")
            else None
        )

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        kv_budget_mb: int = 256,
        kv_block_size: int = 16,
        kv_type: str = "f16",
        max_batch_tokens: int = 512,
        max_sequences: int = 256,
    ) -> Engine:
        """Load a GGUF model (the default model when `path` is None).

        `kv_type`: how cached keys and values are stored, "f16" (half the memory, so twice the
        context per `kv_budget_mb`, and less to read per step; llama.cpp's default too), "f32"
        (the activations' exact values; for a model whose keys or values exceed f16's ±65504,
        which would turn into infinities) or "q8" (each head's key and value vectors as bytes
        with one scale each: about 1.9 times f16's context per budget at 64-dim heads, and
        faster decoding deep into a long context, for a rounding error of up to 1/254 of each
        vector's largest value).
        """
        resolved = resolve_model(None if path is None else str(path))
        native = _core.Engine.load(
            str(resolved),
            kv_budget_mb=kv_budget_mb,
            kv_block_size=kv_block_size,
            kv_type=kv_type,
            max_batch_tokens=max_batch_tokens,
            max_sequences=max_sequences,
        )
        return cls(native, resolved)

    @property
    def info(self) -> dict[str, Any]:
        """Model facts: architecture, context length, vocabulary, chat template, KV pool."""
        return dict(self._native.info)

    @property
    def chat_template(self) -> ChatTemplate | None:
        return self._template

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]:
        return list(self._native.tokenize(text, add_special=add_special, parse_special=parse_special))

    def detokenize(self, ids: Sequence[int], *, skip_special: bool = False) -> str:
        return str(self._native.detokenize(list(ids), skip_special=skip_special))

    def render_chat(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = True,
        **template_kwargs: Any,
    ) -> str:
        """The prompt text the model's chat template makes of `messages`."""
        if self._template is None:
            raise InvalidRequestError(
                "this model has no chat template (tokenizer.chat_template); use generate() with a raw prompt"
            )
        return self._template.render(
            [dict(m) for m in messages], add_generation_prompt=add_generation_prompt, **template_kwargs
        )

    def _prompt_ids(self, prompt: str | Sequence[int], parse_special: bool) -> list[int]:
        if isinstance(prompt, str):
            return self.tokenize(prompt, add_special=True, parse_special=parse_special)
        return [int(t) for t in prompt]

    def chat_prompt(self, messages: Iterable[Mapping[str, Any]], *, enable_thinking: bool | None = None) -> list[int]:
        """The prompt token ids `chat` feeds the model for `messages`."""
        return self._chat_ids(messages, enable_thinking)

    def _chat_ids(self, messages: Iterable[Mapping[str, Any]], enable_thinking: bool | None) -> list[int]:
        extra = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
        text = self.render_chat(messages, **extra)
        # Template markup such as <|im_start|> must become the special tokens it names.
        return self.tokenize(text, add_special=True, parse_special=True)

    def generate(
        self,
        prompt: str | Sequence[int],
        *,
        parse_special: bool = True,
        session_key: int | None = None,
        **params: Any,
    ) -> Generation:
        """Stream a continuation of `prompt` (text or token ids).

        Parameters: temperature, top_k, top_p, min_p, repetition_penalty, presence_penalty,
        frequency_penalty, penalty_last_n, logit_bias, seed, logprobs, top_logprobs,
        max_tokens, stop, stop_token_ids, ignore_eos.

        `session_key`: keep the KV cache resident under this key after the generation, and reuse
        whatever prefix of `prompt` it already holds (multi-turn chat prefills only the new turn;
        `Finished.usage.cached_tokens` tells how many were reused). One generation per key at a
        time. Free it with `drop_session`.
        """
        return Generation(self._scheduler, self._prompt_ids(prompt, parse_special), params, session_key)

    def chat(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        enable_thinking: bool | None = None,
        session_key: int | None = None,
        **params: Any,
    ) -> Generation:
        """Stream the assistant's reply to `messages`, rendered with the model's chat template."""
        return Generation(self._scheduler, self._chat_ids(messages, enable_thinking), params, session_key)

    def agenerate(
        self,
        prompt: str | Sequence[int],
        *,
        parse_special: bool = True,
        session_key: int | None = None,
        **params: Any,
    ) -> AsyncGeneration:
        """`generate` for `async for` (call it inside a running event loop)."""
        return AsyncGeneration(self._scheduler, self._prompt_ids(prompt, parse_special), params, session_key)

    def achat(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        enable_thinking: bool | None = None,
        session_key: int | None = None,
        **params: Any,
    ) -> AsyncGeneration:
        """`chat` for `async for` (call it inside a running event loop)."""
        return AsyncGeneration(self._scheduler, self._chat_ids(messages, enable_thinking), params, session_key)

    def drop_session(self, session_key: int) -> bool:
        """Free the KV kept resident under `session_key`; returns whether there was any.

        Never waits for the step that runs: the blocks are freed before the next one, and a
        generation under the key admitted from now on reuses nothing."""
        return bool(self._native.drop_session(session_key))

    def cached_prefix(self, session_key: int, prompt: Sequence[int]) -> int:
        """How many leading tokens of `prompt` a generation under `session_key` would reuse."""
        return int(self._native.cached_prefix(session_key, list(prompt)))

    def resident_tokens(self, session_key: int) -> int:
        """Tokens whose KV is resident under `session_key` (0 once evicted or dropped)."""
        return int(self._native.resident_tokens(session_key))

    def active_sequences(self) -> int:
        """Sequences the native engine holds right now (waiting, prefilling or decoding)."""
        return int(self._native.active_sequences())

    def add_finished_listener(self, listener: Callable[[Finished], None]) -> None:
        """Call `listener` with the `Finished` event of every generation on this engine, from the
        dispatcher thread (it must be quick and must not block): for server-wide metrics."""
        self._scheduler.add_finished_listener(listener)

    def remove_finished_listener(self, listener: Callable[[Finished], None]) -> None:
        self._scheduler.remove_finished_listener(listener)

    def kv_stats(self) -> dict[str, int]:
        return dict(self._native.kv_stats())

    def teacher_forced_argmax(self, ids: Sequence[int]) -> list[int]:
        """The model's argmax after each position of `ids`, fed in one pass (for checking)."""
        return list(self._native.teacher_forced_argmax(list(ids)))

    def teacher_forced_logits(self, ids: Sequence[int], token_ids: Sequence[int]) -> list[list[float]]:
        """Logits of the entries `token_ids` after each position of `ids`, fed in one pass (for checking)."""
        return [list(row) for row in self._native.teacher_forced_logits(list(ids), list(token_ids))]

    def attach_event_loop(self) -> LoopRoute | None:
        """Have the running event loop route the events of the async streams started on it,
        instead of the dispatcher thread: the cheaper path for a server, whose streams all live
        on its loop (each token wakes one thread, not two). Other generations keep the thread.
        Call `detach()` on the returned route, on the loop, before the loop stops. None (nothing
        changed) where another running loop is attached or the loop cannot watch a pipe."""
        return self._scheduler.attach_loop(asyncio.get_running_loop())

    def close(self) -> None:
        """Cancel every running generation and stop the stepping and dispatcher threads."""
        self._scheduler.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
