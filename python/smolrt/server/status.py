"""The one table from smolrt error codes to gRPC status codes and HTTP statuses.

Every servicer (and the HTTP shim) answers errors through this table, so a given failure carries
the same code everywhere. INTERNAL is reserved for bugs: anything that is not a `SmolrtError`
becomes INTERNAL (and is logged with its traceback), never a guess at a friendlier code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NoReturn

import grpc

from ..errors import SmolrtError

__all__ = ["STATUS_TABLE", "Status", "abort", "status_for"]

log = logging.getLogger("smolrt.server")


@dataclass(frozen=True)
class Status:
    grpc: grpc.StatusCode
    http: int


STATUS_TABLE: dict[str, Status] = {
    # Malformed or impossible requests: bad parameters, empty prompts, a prompt past the context
    # window (INVALID_ARGUMENT rather than OUT_OF_RANGE: it can never succeed as sent, whatever
    # the server's state).
    "invalid_request": Status(grpc.StatusCode.INVALID_ARGUMENT, 400),
    "not_found": Status(grpc.StatusCode.NOT_FOUND, 404),
    # Well formed but the state forbids it now (a session already generating): 409 tells an HTTP
    # client that retrying after the conflict clears may work.
    "failed_precondition": Status(grpc.StatusCode.FAILED_PRECONDITION, 409),
    # Queue, sequence or KV limits: retry later.
    "resource_exhausted": Status(grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    # A position the server does not (or no longer) hold, e.g. Subscribe's after_seq.
    "out_of_range": Status(grpc.StatusCode.OUT_OF_RANGE, 416),
    # No model loaded, or shutting down.
    "unavailable": Status(grpc.StatusCode.UNAVAILABLE, 503),
    # The model file cannot be used: nothing the request can change, but not a bug either.
    "model_load": Status(grpc.StatusCode.FAILED_PRECONDITION, 422),
    "cancelled": Status(grpc.StatusCode.CANCELLED, 499),
    "unauthenticated": Status(grpc.StatusCode.UNAUTHENTICATED, 401),
    "internal": Status(grpc.StatusCode.INTERNAL, 500),
}

_INTERNAL = STATUS_TABLE["internal"]


def status_for(exc: BaseException) -> tuple[Status, str]:
    """The status and message to answer `exc` with."""
    if isinstance(exc, SmolrtError):
        return STATUS_TABLE.get(exc.code, _INTERNAL), exc.message
    log.error("internal error", exc_info=exc)
    return _INTERNAL, f"internal error: {type(exc).__name__}: {exc}"


async def abort(context: grpc.aio.ServicerContext[object, object], exc: BaseException) -> NoReturn:
    """End the call with the status the table gives `exc`."""
    status, message = status_for(exc)
    await context.abort(status.grpc, message)
    raise AssertionError("context.abort returned")  # it raises; this line satisfies NoReturn
