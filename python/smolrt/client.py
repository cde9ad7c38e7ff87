"""Talking to a running `smolrt serve` from the CLI: `smolrt generate --server HOST:PORT`.

gRPC failures become the SmolrtError the server's status table started from, so the CLI prints
them the same way as in-process errors.
"""

from __future__ import annotations

import argparse
import os
from typing import IO, Any

import grpc

from .errors import (
    CancelledError,
    FailedPreconditionError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
    OutOfRangeError,
    ResourceExhaustedError,
    SmolrtError,
    UnauthenticatedError,
    UnavailableError,
)
from .v1 import smolrt_pb2 as pb
from .v1 import smolrt_pb2_grpc as rpc

__all__ = ["auth_metadata", "error_from_rpc", "generate_remote"]

_BY_STATUS: dict[grpc.StatusCode, type[SmolrtError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequestError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRangeError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.CANCELLED: CancelledError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
}


def error_from_rpc(exc: grpc.RpcError, server: str) -> SmolrtError:
    code: grpc.StatusCode = exc.code()
    details: str = exc.details() or code.name
    if code == grpc.StatusCode.UNAVAILABLE and "no model" not in details:
        details = f"cannot reach smolrt at {server}: {details}"
    return _BY_STATUS.get(code, InternalError)(details)


def auth_metadata(api_key: str | None) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {api_key}")] if api_key else []


def _request(args: argparse.Namespace, prompt: str) -> pb.GenerateRequest:
    sampling = pb.SamplingParameters(temperature=args.temperature)
    for name in ("top_p", "top_k", "seed"):
        value = getattr(args, name)
        if value is not None:
            setattr(sampling, name, value)
    stopping = pb.StoppingParameters(max_tokens=args.max_tokens)
    if args.raw:
        return pb.GenerateRequest(prompt=prompt, sampling=sampling, stopping=stopping)
    messages = []
    if args.system is not None:
        messages.append(pb.Message(role="system", content=args.system))
    messages.append(pb.Message(role="user", content=prompt))
    return pb.GenerateRequest(messages=pb.ChatMessages(messages=messages), sampling=sampling, stopping=stopping)


def generate_remote(args: argparse.Namespace, out: IO[str]) -> int:
    import sys

    server = args.server or os.environ["SMOLRT_SERVER"]
    api_key = args.api_key or os.environ.get("SMOLRT_API_KEY")
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    finished: Any = None
    ends_with_newline = True
    with grpc.insecure_channel(server) as channel:
        stream = rpc.InferenceStub(channel).Generate(_request(args, prompt), metadata=auth_metadata(api_key))
        try:
            for event in stream:
                kind = event.WhichOneof("kind")
                if kind == "delta" and event.delta.text:
                    out.write(event.delta.text)
                    out.flush()
                    ends_with_newline = event.delta.text.endswith("\n")
                elif kind == "finished":
                    finished = event.finished
                elif kind == "error":
                    raise InternalError(event.error.message)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, server) from None
        finally:
            # Ctrl-C or a closed pipe: cancelling the call stops the generation on the server.
            stream.cancel()
    if not ends_with_newline:
        out.write("\n")
        out.flush()
    if finished is not None:
        print(_summary(finished), file=sys.stderr)
    return 0


def _summary(finished: pb.Finished) -> str:
    reason = pb.FinishReason.Name(finished.reason).removeprefix("FINISH_REASON_").lower()
    u, t = finished.usage, finished.timings
    return (
        f"[{reason}] {u.prompt_tokens} prompt + {u.completion_tokens} generated tokens | "
        f"prefill {t.prefill_tokens_per_s:.1f} tok/s, decode {t.decode_tokens_per_s:.1f} tok/s, "
        f"first token after {t.time_to_first_token_ms:.0f} ms"
    )
