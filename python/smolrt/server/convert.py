"""Between the wire (smolrt.v1 messages) and the library (engine keyword parameters, typed events).

Shared by every servicer that generates (Generate, session turns), so that a parameter or an event
means the same thing on every RPC.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from ..errors import SmolrtError
from ..events import Delta, Finished
from ..v1 import smolrt_pb2 as pb
from .status import status_for

__all__ = [
    "FINISH_REASONS",
    "delta_event",
    "error_event",
    "finished_event",
    "merge_parameters",
    "messages_from_proto",
    "now_timestamp",
    "params_from_proto",
    "started_event",
]

_SAMPLING_SCALARS = (
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "penalty_last_n",
    "seed",
    "logprobs",
    "top_logprobs",
)

FINISH_REASONS: dict[str, pb.FinishReason] = {
    "stop": pb.FINISH_REASON_STOP,
    "length": pb.FINISH_REASON_LENGTH,
    "cancelled": pb.FINISH_REASON_CANCELLED,
}


def params_from_proto(sampling: pb.SamplingParameters | None, stopping: pb.StoppingParameters | None) -> dict[str, Any]:
    """Engine keyword parameters for the fields that are set (unset ones keep the engine's defaults)."""
    params: dict[str, Any] = {}
    if sampling is not None:
        for name in _SAMPLING_SCALARS:
            if sampling.HasField(name):
                params[name] = getattr(sampling, name)
        if sampling.logit_bias:
            params["logit_bias"] = dict(sampling.logit_bias)
    if stopping is not None:
        if stopping.HasField("max_tokens"):
            params["max_tokens"] = stopping.max_tokens
        if stopping.HasField("ignore_eos"):
            params["ignore_eos"] = stopping.ignore_eos
        if stopping.stop:
            params["stop"] = list(stopping.stop)
        if stopping.stop_token_ids:
            params["stop_token_ids"] = list(stopping.stop_token_ids)
    return params


def merge_parameters(
    base: tuple[pb.SamplingParameters, pb.StoppingParameters],
    override: tuple[pb.SamplingParameters | None, pb.StoppingParameters | None],
) -> tuple[pb.SamplingParameters, pb.StoppingParameters]:
    """A session's defaults with a turn's overrides, field by field.

    Unlike protobuf's MergeFrom, a non-empty list or map in the override replaces the default
    instead of extending it: a turn that names its stop strings means those stop strings.
    """
    sampling, stopping = pb.SamplingParameters(), pb.StoppingParameters()
    sampling.CopyFrom(base[0])
    stopping.CopyFrom(base[1])
    over_s, over_t = override
    if over_s is not None:
        if over_s.logit_bias:
            sampling.ClearField("logit_bias")
        sampling.MergeFrom(over_s)
    if over_t is not None:
        for name in ("stop", "stop_token_ids"):
            if getattr(over_t, name):
                stopping.ClearField(name)
        stopping.MergeFrom(over_t)
    return sampling, stopping


def messages_from_proto(messages: Iterable[pb.Message]) -> list[dict[str, str]]:
    """Chat messages as the chat template wants them."""
    out: list[dict[str, str]] = []
    for m in messages:
        msg = {"role": m.role, "content": m.content}
        if m.reasoning_content:
            msg["reasoning_content"] = m.reasoning_content
        out.append(msg)
    return out


def now_timestamp(at: float | None = None) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(time.time_ns() if at is None else int(at * 1e9))
    return ts


def started_event(
    seq: int,
    *,
    request_id: str,
    prompt_tokens: int,
    session_id: str = "",
    cached_tokens: int = 0,
    created_at: float | None = None,
) -> pb.Event:
    return pb.Event(
        seq=seq,
        started=pb.Started(
            request_id=request_id,
            session_id=session_id,
            prompt_tokens=prompt_tokens,
            cached_tokens=cached_tokens,
            created_at=now_timestamp(created_at),
        ),
    )


CHANNELS = {"content": pb.CHANNEL_CONTENT, "reasoning": pb.CHANNEL_REASONING}


def delta_event(seq: int, delta: Delta) -> pb.Event:
    return pb.Event(
        seq=seq,
        delta=pb.Delta(
            text=delta.text,
            token_ids=delta.token_ids,
            channel=CHANNELS[delta.channel],
            logprobs=[
                pb.TokenLogprob(
                    token_id=lp.token_id,
                    logprob=lp.logprob,
                    top=[pb.TopLogprob(token_id=t, logprob=p) for t, p in lp.top],
                )
                for lp in delta.logprobs
            ],
        ),
    )


def finished_event(seq: int, finished: Finished, *, cached_tokens: int = 0) -> pb.Event:
    usage, t = finished.usage, finished.timings
    return pb.Event(
        seq=seq,
        finished=pb.Finished(
            reason=FINISH_REASONS.get(finished.reason, pb.FINISH_REASON_UNSPECIFIED),
            stop=finished.stop or "",
            usage=pb.Usage(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=cached_tokens or usage.cached_tokens,
                total_tokens=usage.total_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                content_tokens=usage.content_tokens,
            ),
            timings=pb.Timings(
                queued_ms=t.queued_s * 1000.0,
                time_to_first_token_ms=t.ttft_ms,
                prefill_ms=t.prefill_s * 1000.0,
                decode_ms=t.decode_s * 1000.0,
                prefill_tokens_per_s=t.prefill_tokens_per_s,
                decode_tokens_per_s=t.decode_tokens_per_s,
            ),
        ),
    )


def cancelled_event(seq: int, *, prompt_tokens: int, completion_tokens: int, ttft_ms: float) -> pb.Event:
    """The `finished` event of a stream that was stopped before the engine reported its own."""
    return pb.Event(
        seq=seq,
        finished=pb.Finished(
            reason=pb.FINISH_REASON_CANCELLED,
            usage=pb.Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
            timings=pb.Timings(time_to_first_token_ms=ttft_ms),
        ),
    )


def error_event(seq: int, exc: BaseException) -> pb.Event:
    status, message = status_for(exc)
    code = exc.code if isinstance(exc, SmolrtError) else "internal"
    return pb.Event(seq=seq, error=pb.ErrorEvent(code=code, message=message, status_code=status.grpc.value[0]))


def model_info(info: Mapping[str, Any], file_name: str, context_length: int) -> pb.ModelInfo:
    """GetModelInfo's answer from `Engine.info`."""
    types: dict[str, int] = {str(k): int(v) for k, v in (info.get("tensor_types") or {}).items()}
    # The weights' quantization is the commonest type other than the F32 norms and biases.
    weights = {k: v for k, v in types.items() if k.upper() not in ("F32",)} or types
    quantization = max(weights.items(), key=lambda kv: (kv[1], kv[0]))[0] if weights else ""
    template = str(info.get("chat_template") or "")
    caps = [pb.CAPABILITY_COMPLETION, pb.CAPABILITY_LOGPROBS]
    if template:
        caps.append(pb.CAPABILITY_CHAT)
        if "enable_thinking" in template:
            caps.append(pb.CAPABILITY_THINKING)
    return pb.ModelInfo(
        architecture=str(info.get("architecture") or ""),
        name=str(info.get("name") or file_name),
        file_name=file_name,
        context_length=context_length,
        quantization=quantization,
        tensor_types=types,
        chat_template_present=bool(template),
        vocab_size=int(info.get("vocab_size") or 0),
        n_layer=int(info.get("n_layer") or 0),
        n_embd=int(info.get("n_embd") or 0),
        n_head=int(info.get("n_head") or 0),
        n_head_kv=int(info.get("n_head_kv") or 0),
        file_size=int(info.get("file_size") or 0),
        capabilities=sorted(caps),
        kv_block_size=int(info.get("kv_block_size") or 0),
        kv_blocks_total=int(info.get("kv_blocks_total") or 0),
    )
