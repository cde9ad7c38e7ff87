"""Typed events streamed by `Engine.generate` / `Engine.chat`.

The native module yields plain tuples (cheap on the per-token path); this module is the one
place that turns them into these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Delta", "Event", "Finished", "Timings", "TokenLogprob", "Usage"]


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    token_id: int
    logprob: float
    #: The most likely alternatives at this position as (token id, logprob), best first.
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Delta:
    """New output: `text` (valid UTF-8, possibly empty) and the token ids that produced it.

    `channel` is "reasoning" for text inside a `<think>` block, else "content".
    """

    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[TokenLogprob, ...] = ()
    channel: Literal["content", "reasoning"] = "content"
    type: Literal["delta"] = field(default="delta", init=False)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    #: Prompt tokens whose KV was already cached (sessions); 0 for one-shot generations.
    cached_tokens: int = 0
    #: Completion tokens spent inside a think block (tags included).
    reasoning_tokens: int = 0

    @property
    def content_tokens(self) -> int:
        return self.completion_tokens - self.reasoning_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Timings:
    """Wall-clock phases of one generation, in seconds."""

    queued_s: float
    ttft_s: float
    prefill_s: float
    decode_s: float
    #: Prompt tokens actually prefilled (cached ones excluded).
    prefilled_tokens: int
    completion_tokens: int

    @property
    def ttft_ms(self) -> float:
        return self.ttft_s * 1000.0

    @property
    def prefill_tokens_per_s(self) -> float:
        return self.prefilled_tokens / self.prefill_s if self.prefill_s > 0 else 0.0

    @property
    def decode_tokens_per_s(self) -> float:
        # The first token comes out of prefill; decode time covers the ones after it.
        decoded = self.completion_tokens - 1
        return decoded / self.decode_s if decoded > 0 and self.decode_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Finished:
    """The last event of a generation."""

    #: "stop" (end-of-generation token, stop token or stop string), "length" or "cancelled".
    reason: str
    #: The stop string or stop token text that ended the generation, if one did.
    stop: str | None
    usage: Usage
    timings: Timings
    type: Literal["finished"] = field(default="finished", init=False)


Event = Delta | Finished
