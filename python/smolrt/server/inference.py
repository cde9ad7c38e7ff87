"""The Inference service: Generate and the tokenizer/model RPCs, delegating to the Engine.

Generate streams through `Engine.agenerate`, so its sequence joins every other in-flight generation
in the engine's one scheduler (continuous batching). When the client cancels or disconnects, gRPC
cancels the handler's task; the AsyncGeneration closes on that cancellation and the engine stops the
sequence at its next step, freeing its KV blocks.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from ..engine import Engine, cap_to_context
from ..errors import FailedPreconditionError, InvalidRequestError, NotFoundError, UnavailableError
from ..events import Delta, Finished
from ..stream import AsyncGeneration
from ..v1 import smolrt_pb2 as pb
from ..v1 import smolrt_pb2_grpc as rpc
from . import convert
from .settings import NO_MODEL_MESSAGE, Settings
from .status import abort

__all__ = ["InferenceServicer", "unary_errors"]

if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]
R = TypeVar("R")
MAX_REQUEST_ID = 128


def unary_errors(
    method: Callable[[Any, Any, Ctx], Awaitable[R]],
) -> Callable[[Any, Any, Ctx], Awaitable[R]]:
    """Answer any exception a unary handler raises with the status the table gives it."""

    @wraps(method)
    async def handler(self: Any, request: Any, context: Ctx) -> R:
        try:
            return await method(self, request, context)
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001 - the table decides; INTERNAL for non-smolrt errors
            await abort(context, exc)

    return handler


class _Running:
    """A Generate call in flight: its stream, and whether it has produced a token yet."""

    __slots__ = ("generation", "started")

    def __init__(self, generation: AsyncGeneration) -> None:
        self.generation = generation
        self.started = False


class InferenceServicer(rpc.InferenceServicer):
    def __init__(self, engine: Engine | None, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings
        self._running: dict[str, _Running] = {}
        self._model_file = Path(engine.path).name if engine is not None else ""
        self._context = 0
        if engine is not None:
            model_ctx = int(engine.info["context_length"])
            self._context = min(model_ctx, settings.max_context) if settings.max_context else model_ctx
        #: Set by the server to the sessions servicer's live session count, for GetStats.
        self.session_count: Callable[[], int] = lambda: 0

    # -- helpers -------------------------------------------------------------------------------

    def _require_engine(self) -> Engine:
        if self._engine is None:
            raise UnavailableError(NO_MODEL_MESSAGE)
        return self._engine

    def _prompt_ids(self, engine: Engine, request: pb.GenerateRequest) -> list[int]:
        kind = request.WhichOneof("input")
        if kind == "prompt":
            parse_special = request.parse_special if request.HasField("parse_special") else True
            return engine.tokenize(request.prompt, add_special=True, parse_special=parse_special)
        if kind == "prompt_token_ids":
            return list(request.prompt_token_ids.ids)
        if kind == "messages":
            return self._chat_ids(
                engine, request.messages, request.enable_thinking, request.HasField("enable_thinking")
            )
        raise InvalidRequestError("set one of prompt, prompt_token_ids or messages")

    @staticmethod
    def _chat_ids(engine: Engine, messages: pb.ChatMessages, thinking: bool, thinking_set: bool) -> list[int]:
        if engine.chat_template is None:
            raise FailedPreconditionError(
                "this model has no chat template (tokenizer.chat_template): send a raw prompt instead"
            )
        if not messages.messages:
            raise InvalidRequestError("messages is empty: send at least one message")
        return engine.chat_prompt(
            convert.messages_from_proto(messages.messages), enable_thinking=thinking if thinking_set else None
        )

    def _limit_to_context(self, prompt_len: int, params: dict[str, Any]) -> None:
        """Apply the server's context cap (the engine enforces the model's own)."""
        if self._settings.max_context:
            cap_to_context(prompt_len, params, self._context)

    def _new_request_id(self, wanted: str) -> str:
        if not wanted:
            return uuid.uuid4().hex
        if len(wanted) > MAX_REQUEST_ID:
            raise InvalidRequestError(f"request_id is longer than {MAX_REQUEST_ID} characters")
        if wanted in self._running:
            raise InvalidRequestError(f"request_id {wanted!r} is already running")
        return wanted

    def queued_requests(self) -> int:
        """Generate calls admitted that have not produced a token yet."""
        return sum(1 for r in self._running.values() if not r.started)

    # -- RPCs ----------------------------------------------------------------------------------

    async def Generate(self, request: pb.GenerateRequest, context: Ctx) -> AsyncIterator[pb.Event]:
        try:
            engine = self._require_engine()
            request_id = self._new_request_id(request.request_id)
            ids = self._prompt_ids(engine, request)
            params = convert.params_from_proto(request.sampling, request.stopping)
            self._limit_to_context(len(ids), params)
            generation = engine.agenerate(ids, **params)
        except Exception as exc:  # noqa: BLE001 - rejected before anything ran: a status, no events
            await abort(context, exc)
        running = _Running(generation)
        self._running[request_id] = running
        seq = 0
        completion = 0
        admitted = time.perf_counter()
        ttft_ms = 0.0
        finished = False
        try:
            seq += 1
            yield convert.started_event(seq, request_id=request_id, prompt_tokens=len(ids))
            try:
                async for event in generation:
                    seq += 1
                    if isinstance(event, Delta):
                        if not running.started:
                            running.started = True
                            ttft_ms = (time.perf_counter() - admitted) * 1000.0
                        completion += len(event.token_ids)
                        yield convert.delta_event(seq, event)
                    elif isinstance(event, Finished):
                        finished = True
                        yield convert.finished_event(seq, event)
            except Exception as exc:  # noqa: BLE001 - failed after it started: say so in-band, then the status
                yield convert.error_event(seq, exc)
                await abort(context, exc)
            if not finished:
                # Stopped by Cancel before the engine's own finished event reached this stream.
                seq += 1
                yield convert.cancelled_event(
                    seq, prompt_tokens=len(ids), completion_tokens=completion, ttft_ms=ttft_ms
                )
        finally:
            generation.close()
            self._running.pop(request_id, None)

    @unary_errors
    async def Cancel(self, request: pb.CancelGenerateRequest, context: Ctx) -> pb.CancelResponse:
        self._require_engine()
        running = self._running.get(request.request_id)
        if running is None:
            raise NotFoundError(f"no running Generate call has request_id {request.request_id!r}")
        # Closing cancels the sequence at the engine's next step; the Generate stream then ends
        # with a CANCELLED finished event.
        running.generation.close()
        return pb.CancelResponse(cancelled=True)

    @unary_errors
    async def Tokenize(self, request: pb.TokenizeRequest, context: Ctx) -> pb.TokenizeResponse:
        engine = self._require_engine()
        kind = request.WhichOneof("input")
        if kind == "text":
            add = request.add_special if request.HasField("add_special") else True
            ids = engine.tokenize(request.text, add_special=add, parse_special=request.parse_special)
        elif kind == "messages":
            ids = self._chat_ids(engine, request.messages, request.enable_thinking, request.HasField("enable_thinking"))
        else:
            raise InvalidRequestError("set one of text or messages")
        return pb.TokenizeResponse(ids=ids)

    @unary_errors
    async def Detokenize(self, request: pb.DetokenizeRequest, context: Ctx) -> pb.DetokenizeResponse:
        engine = self._require_engine()
        vocab = int(engine.info["vocab_size"])
        bad = next((t for t in request.ids if t >= vocab), None)
        if bad is not None:
            raise InvalidRequestError(f"token id {bad} is outside the vocabulary (size {vocab})")
        return pb.DetokenizeResponse(text=engine.detokenize(request.ids, skip_special=request.skip_special))

    @unary_errors
    async def GetModelInfo(self, request: pb.GetModelInfoRequest, context: Ctx) -> pb.ModelInfo:
        engine = self._require_engine()
        return convert.model_info(engine.info, self._model_file, self._context)

    @unary_errors
    async def GetStats(self, request: pb.GetStatsRequest, context: Ctx) -> pb.Stats:
        stats = pb.Stats(
            running_requests=len(self._running),
            queued_requests=self.queued_requests(),
            sessions=self.session_count(),
            model_loaded=self._engine is not None,
        )
        if self._engine is not None:
            # Sequences first: a sequence that finishes between the two reads then shows as freed
            # blocks, never as blocks in use with no sequence holding them.
            stats.active_sequences = self._engine.active_sequences()
            kv = self._engine.kv_stats()
            stats.kv_blocks_total = kv.get("blocks_total", 0)
            stats.kv_blocks_in_use = kv.get("blocks_in_use", 0)
            stats.kv_block_size = kv.get("block_size", 0)
        return stats
