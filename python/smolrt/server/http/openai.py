"""OpenAI-compatible routes: /v1/chat/completions, /v1/completions, /v1/models.

Each request is one generation on the shared engine (batched with everything else in flight).
Streaming answers are `data: {chunk}` lines ending with `data: [DONE]`; a client that disconnects
cancels its generation (Starlette cancels the response task, which closes the stream). Reasoning
(the engine's "reasoning" channel) is returned as `reasoning_content`, apart from `content`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from starlette.responses import StreamingResponse

from ...engine import Engine
from ...errors import FailedPreconditionError, InternalError, NotFoundError
from ...events import Delta, Finished, TokenLogprob
from ...stream import AsyncGeneration
from .door import Door, DoorDep
from .errors import error_body
from .openai_models import ChatCompletionRequest, CompletionRequest
from .sse import HEADERS

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["openai"])

# OpenAI has no "cancelled": a cancelled generation's reader is gone (disconnect) or the server is
# stopping, and "stop" is the reason a client treats as "ended without hitting the limit".
_FINISH = {"stop": "stop", "length": "length", "cancelled": "stop"}


def _check_model(d: Door, wanted: str | None) -> str:
    d.require_engine()
    served = d.model_id
    if wanted is not None and wanted not in (served, served + ".gguf"):
        raise NotFoundError(f"the model {wanted!r} does not exist: this server serves {served!r} (see /v1/models)")
    return served


def _usage(finished: Finished) -> dict[str, Any]:
    u = finished.usage
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


class _TokenText:
    """Token id → text for logprobs, memoized per request."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._cache: dict[int, str] = {}

    def __call__(self, token_id: int) -> str:
        text = self._cache.get(token_id)
        if text is None:
            text = self._cache[token_id] = self._engine.detokenize([token_id])
        return text


def _chat_logprobs(lps: tuple[TokenLogprob, ...], text_of: _TokenText) -> list[dict[str, Any]]:
    def entry(token_id: int, logprob: float) -> dict[str, Any]:
        token = text_of(token_id)
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    return [{**entry(lp.token_id, lp.logprob), "top_logprobs": [entry(t, p) for t, p in lp.top]} for lp in lps]


def _completion_logprobs(lps: list[TokenLogprob], text_of: _TokenText, offset: int) -> dict[str, Any]:
    tokens = [text_of(lp.token_id) for lp in lps]
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [lp.logprob for lp in lps],
        "top_logprobs": [{text_of(t): p for t, p in lp.top} for lp in lps],
        "text_offset": offsets,
    }


def _sse(data: dict[str, Any] | str) -> bytes:
    body = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {body}\n\n".encode()


async def _stream(
    d: Door,
    generation: AsyncGeneration,
    chunk: Callable[[Delta | None, Finished | None], dict[str, Any] | None],
    include_usage: bool,
    base: dict[str, Any],
) -> AsyncIterator[bytes]:
    waiting = True
    try:
        first = chunk(None, None)
        if first is not None:
            yield _sse(first)
        async for event in generation:
            if waiting:
                waiting = False
                d.waiting -= 1
            if isinstance(event, Delta):
                out = chunk(event, None)
                if out is not None:
                    yield _sse(out)
            else:
                final = chunk(None, event)
                if final is not None:
                    yield _sse(final)
                if include_usage:
                    yield _sse({**base, "choices": [], "usage": _usage(event)})
    except Exception as exc:  # noqa: BLE001 - the status line is sent: report in-band, OpenAI style
        yield _sse(error_body(exc)[1])
    finally:
        if waiting:
            d.waiting -= 1
        generation.close()
    yield _sse("[DONE]")


async def _collect(d: Door, generation: AsyncGeneration) -> tuple[list[Delta], Finished]:
    deltas: list[Delta] = []
    waiting = True
    try:
        async for event in generation:
            if waiting:
                waiting = False
                d.waiting -= 1
            if isinstance(event, Delta):
                deltas.append(event)
            else:
                return deltas, event
    finally:
        if waiting:
            d.waiting -= 1
        generation.close()
    raise InternalError("the generation ended without a finished event")


def _start(d: Door, engine: Engine, prompt: list[int], params: dict[str, Any]) -> AsyncGeneration:
    d.limit_to_context(len(prompt), params)
    generation = engine.agenerate(prompt, **params)
    d.waiting += 1
    return generation


@router.post("/chat/completions", summary="Chat completion (OpenAI-compatible)", response_model=None)
async def chat_completions(body: ChatCompletionRequest, d: DoorDep) -> dict[str, Any] | StreamingResponse:
    body.check()
    model = _check_model(d, body.model)
    engine = d.require_engine()
    messages = [m.template_message(i) for i, m in enumerate(body.messages)]
    if engine.chat_template is None:
        raise FailedPreconditionError("this model has no chat template: use /v1/completions with a raw prompt")
    prompt = engine.chat_prompt(messages, enable_thinking=body.thinking())
    generation = _start(d, engine, prompt, body.engine_params())
    text_of = _TokenText(engine)
    want_logprobs = bool(body.logprobs)
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time())}
    base["model"] = model

    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        extra = {"usage": None} if include_usage else {}

        def chunk(delta: Delta | None, finished: Finished | None) -> dict[str, Any] | None:
            choice: dict[str, Any] = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": None}
            if delta is None and finished is None:
                choice["delta"] = {"role": "assistant", "content": ""}
            elif delta is not None:
                if not delta.text and not delta.logprobs:
                    return None
                key = "reasoning_content" if delta.channel == "reasoning" else "content"
                choice["delta"] = {key: delta.text}
                if want_logprobs and delta.channel == "content":
                    choice["logprobs"] = {"content": _chat_logprobs(delta.logprobs, text_of), "refusal": None}
            elif finished is not None:
                choice["finish_reason"] = _FINISH.get(finished.reason, "stop")
            return {**base, "choices": [choice], **extra}

        return StreamingResponse(
            _stream(d, generation, chunk, include_usage, base), media_type="text/event-stream", headers=HEADERS
        )

    deltas, finished = await _collect(d, generation)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(x.text for x in deltas if x.channel == "content"),
        "refusal": None,
    }
    reasoning = "".join(x.text for x in deltas if x.channel == "reasoning")
    if reasoning:
        message["reasoning_content"] = reasoning
    logprobs = None
    if want_logprobs:
        lps = tuple(lp for x in deltas if x.channel == "content" for lp in x.logprobs)
        logprobs = {"content": _chat_logprobs(lps, text_of), "refusal": None}
    choice = {"index": 0, "message": message, "logprobs": logprobs, "finish_reason": _FINISH.get(finished.reason)}
    return {**base, "object": "chat.completion", "choices": [choice], "usage": _usage(finished)}


@router.post("/completions", summary="Text completion (OpenAI-compatible)", response_model=None)
async def completions(body: CompletionRequest, d: DoorDep) -> dict[str, Any] | StreamingResponse:
    body.check()
    model = _check_model(d, body.model)
    engine = d.require_engine()
    prompt_in = body.prompt_input()
    prompt = engine.tokenize(prompt_in, parse_special=True) if isinstance(prompt_in, str) else prompt_in
    generation = _start(d, engine, prompt, body.engine_params())
    text_of = _TokenText(engine)
    want_logprobs = body.logprobs is not None
    base = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()), "model": model}

    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        extra = {"usage": None} if include_usage else {}
        offset = 0

        def chunk(delta: Delta | None, finished: Finished | None) -> dict[str, Any] | None:
            nonlocal offset
            choice: dict[str, Any] = {"index": 0, "text": "", "logprobs": None, "finish_reason": None}
            if delta is None and finished is None:
                return None
            if delta is not None:
                if not delta.text and not delta.logprobs:
                    return None
                choice["text"] = delta.text
                if want_logprobs:
                    choice["logprobs"] = _completion_logprobs(list(delta.logprobs), text_of, offset)
                offset += len(delta.text)
            elif finished is not None:
                choice["finish_reason"] = _FINISH.get(finished.reason, "stop")
            return {**base, "choices": [choice], **extra}

        return StreamingResponse(
            _stream(d, generation, chunk, include_usage, base), media_type="text/event-stream", headers=HEADERS
        )

    deltas, finished = await _collect(d, generation)
    logprobs = None
    if want_logprobs:
        logprobs = _completion_logprobs([lp for x in deltas for lp in x.logprobs], text_of, 0)
    choice = {
        "index": 0,
        "text": "".join(x.text for x in deltas),
        "logprobs": logprobs,
        "finish_reason": _FINISH.get(finished.reason),
    }
    return {**base, "choices": [choice], "usage": _usage(finished)}


def _model_card(d: Door) -> dict[str, Any]:
    assert d.engine is not None
    path = Path(d.engine.path)
    created = int(path.stat().st_mtime) if path.exists() else 0
    return {"id": d.model_id, "object": "model", "created": created, "owned_by": "smolrt"}


@router.get("/models", summary="The served model (OpenAI-compatible)")
async def list_models(d: DoorDep) -> dict[str, Any]:
    return {"object": "list", "data": [_model_card(d)] if d.engine is not None else []}


@router.get("/models/{model_id}", summary="One model (OpenAI-compatible)")
async def get_model(model_id: str, d: DoorDep) -> dict[str, Any]:
    _check_model(d, model_id)
    return _model_card(d)
