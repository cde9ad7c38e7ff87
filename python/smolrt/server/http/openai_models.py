"""Request bodies of the OpenAI-compatible routes, validated by pydantic.

Every field OpenAI documents for these routes is declared, so that one smolrt cannot honour is
refused by name (`unsupported()`: a 400 naming the field) instead of being silently dropped, and a
field OpenAI does not document is refused as unknown. A few common extensions (top_k, min_p,
repetition_penalty, ignore_eos, enable_thinking, chat_template_kwargs) are accepted, as other local
servers do.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import FieldError

__all__ = ["ChatCompletionRequest", "ChatMessage", "CompletionRequest", "StreamOptions"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOptions(_Strict):
    include_usage: bool = False
    #: Random padding against length side channels; smolrt sends none (nothing is lost by that).
    include_obfuscation: bool | None = None


class ContentPart(BaseModel):
    # Parts of other types (image_url, input_audio, file) must parse, to be refused by name.
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    #: The reply's reasoning, as this API returns it; re-rendered only by templates that use it.
    reasoning_content: str | None = None
    name: str | None = None
    tool_calls: list[Any] | None = None
    tool_call_id: str | None = None
    function_call: Any = None
    refusal: str | None = None
    audio: Any = None

    def template_message(self, index: int) -> dict[str, str]:
        """The message as the chat template takes it; what a template cannot express is a 400."""
        where = f"messages[{index}]"
        if self.role in ("tool", "function"):
            raise FieldError(f"{where}.role", f"{where}: smolrt does not support tool calling (role {self.role!r})")
        for name in ("tool_calls", "tool_call_id", "function_call", "audio"):
            if getattr(self, name) not in (None, []):
                raise FieldError(f"{where}.{name}", f"{where}.{name}: smolrt does not support {name}")
        if self.name:
            raise FieldError(f"{where}.name", f"{where}.name: participant names are not supported by chat templates")
        text = self._text(where)
        out = {"role": "system" if self.role == "developer" else self.role, "content": text}
        if self.reasoning_content:
            out["reasoning_content"] = self.reasoning_content
        return out

    def _text(self, where: str) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        texts = []
        for j, part in enumerate(self.content):
            if part.type != "text" or part.text is None:
                raise FieldError(
                    f"{where}.content[{j}]", f"{where}.content[{j}]: only text parts are supported, not {part.type!r}"
                )
            texts.append(part.text)
        return "\n".join(texts)


class _Sampling(_Strict):
    """The fields both routes share."""

    model: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    n: int | None = Field(None, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    #: An end-user identifier, for the caller's abuse monitoring: it changes no output.
    user: str | None = None
    # Extensions most local servers accept.
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1)
    repetition_penalty: float | None = Field(None, gt=0)
    ignore_eos: bool | None = None

    def check_common(self) -> None:
        if self.n not in (None, 1):
            raise FieldError("n", "smolrt generates one choice per request: n must be 1")
        if self.stream_options is not None and not self.stream:
            raise FieldError("stream_options", "stream_options is only allowed when stream is true")

    def engine_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            name: getattr(self, name)
            for name in (
                "temperature",
                "top_p",
                "max_tokens",
                "seed",
                "presence_penalty",
                "frequency_penalty",
                "top_k",
                "min_p",
                "repetition_penalty",
                "ignore_eos",
            )
            if getattr(self, name) is not None
        }
        if self.stop is not None:
            params["stop"] = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        if self.logit_bias:
            bias: dict[int, float] = {}
            for key, value in self.logit_bias.items():
                try:
                    token = int(key)
                except ValueError:
                    raise FieldError("logit_bias", f"logit_bias keys must be token ids, got {key!r}") from None
                if not -100 <= value <= 100:
                    raise FieldError("logit_bias", f"logit_bias values must be in [-100, 100], got {value}")
                bias[token] = value
            params["logit_bias"] = bias
        return params


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    enable_thinking: bool | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    service_tier: str | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    #: Caching hints: smolrt's prefix reuse needs no key, so they change nothing.
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    # Documented by OpenAI, not supported here: refused by name in unsupported().
    tools: list[Any] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    functions: list[Any] | None = None
    function_call: Any = None
    audio: Any = None
    modalities: list[str] | None = None
    prediction: Any = None
    web_search_options: Any = None
    reasoning_effort: str | None = None
    verbosity: str | None = None

    def check(self) -> None:
        self.check_common()
        refusals = {
            "tools": "tool calling",
            "functions": "function calling",
            "audio": "audio output",
            "prediction": "predicted outputs",
            "web_search_options": "web search",
            "reasoning_effort": "reasoning_effort (use enable_thinking for models with a thinking mode)",
            "verbosity": "verbosity",
        }
        for name, what in refusals.items():
            if getattr(self, name) not in (None, []):
                raise FieldError(name, f"smolrt does not support {what}")
        for name in ("tool_choice", "function_call"):
            if getattr(self, name) not in (None, "none"):
                raise FieldError(name, f"smolrt does not support tool calling ({name})")
        if self.modalities not in (None, ["text"]):
            raise FieldError("modalities", 'smolrt generates text only: modalities must be ["text"]')
        if self.response_format is not None and self.response_format.get("type") != "text":
            kind = self.response_format.get("type")
            raise FieldError("response_format", f"smolrt does not support structured output (response_format {kind!r})")
        if self.service_tier not in (None, "auto", "default"):
            raise FieldError("service_tier", f"service_tier {self.service_tier!r} does not exist on this server")
        if self.store:
            raise FieldError("store", "smolrt does not store completions: store must be false")
        if self.top_logprobs and not self.logprobs:
            raise FieldError("top_logprobs", "top_logprobs needs logprobs: true")
        if self.max_tokens is not None and self.max_completion_tokens is not None:
            if self.max_tokens != self.max_completion_tokens:
                raise FieldError("max_completion_tokens", "max_tokens and max_completion_tokens disagree")
        kwargs = self.chat_template_kwargs or {}
        unknown = set(kwargs) - {"enable_thinking"}
        if unknown:
            raise FieldError("chat_template_kwargs", f"unsupported chat_template_kwargs: {sorted(unknown)}")

    def thinking(self) -> bool | None:
        if self.enable_thinking is not None:
            return self.enable_thinking
        value = (self.chat_template_kwargs or {}).get("enable_thinking")
        return None if value is None else bool(value)

    def engine_params(self) -> dict[str, Any]:
        params = super().engine_params()
        if self.max_completion_tokens is not None:
            params["max_tokens"] = self.max_completion_tokens
        if self.logprobs:
            params["logprobs"] = True
            params["top_logprobs"] = self.top_logprobs or 0
        return params


class CompletionRequest(_Sampling):
    prompt: str | list[int] | list[str] | list[list[int]]
    #: OpenAI's default for this route (chat has none).
    max_tokens: int | None = Field(16, ge=1)
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1)

    def check(self) -> None:
        self.check_common()
        if self.echo:
            raise FieldError("echo", "smolrt does not echo the prompt: echo must be false")
        if self.suffix:
            raise FieldError("suffix", "smolrt does not support insertion (suffix)")
        if self.best_of not in (None, 1):
            raise FieldError("best_of", "smolrt generates one candidate per request: best_of must be 1")

    def prompt_input(self) -> str | list[int]:
        """One prompt, as text or token ids; batches are refused (n = 1 per request)."""
        prompt = self.prompt
        if isinstance(prompt, str):
            return prompt
        if not prompt:
            raise FieldError("prompt", "prompt is empty")
        ids = [t for t in prompt if isinstance(t, int)]
        if len(ids) == len(prompt):
            return ids
        if len(prompt) != 1:
            raise FieldError("prompt", "smolrt takes one prompt per request, not a batch")
        only = prompt[0]
        if isinstance(only, str):
            return only
        if isinstance(only, list):
            return [int(t) for t in only]
        raise FieldError("prompt", "prompt must be text, token ids, or a one-element list of either")

    def engine_params(self) -> dict[str, Any]:
        params = super().engine_params()
        if self.logprobs is not None:
            params["logprobs"] = True
            params["top_logprobs"] = self.logprobs
        return params
