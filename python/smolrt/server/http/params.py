"""Sampling and stopping parameters as the session routes take them: the engine's own names."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["Params"]


class Params(BaseModel):
    """Every field is optional; an unset one keeps the session's (or the engine's) default. Ranges
    are checked by the engine, whose messages name the parameter."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    penalty_last_n: int | None = None
    logit_bias: dict[int, float] | None = None
    seed: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool | None = None

    def engine_kwargs(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)
