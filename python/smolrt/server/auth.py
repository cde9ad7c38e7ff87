"""The optional API key: an interceptor that lets a call through only with `authorization: Bearer <key>`.

Health stays open, so that load balancers and orchestrators can probe a server without holding the
key; everything else (reflection included) needs it.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

__all__ = ["ApiKeyInterceptor", "OPEN_SERVICES"]

OPEN_SERVICES = ("/grpc.health.v1.Health/",)

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, api_key: str) -> None:
        if not api_key:
            raise ValueError("an empty API key would let every call through")
        self._expected = f"Bearer {api_key}".encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method or ""
        if handler is None or method.startswith(OPEN_SERVICES):
            return handler
        problem = self._problem(handler_call_details.invocation_metadata)
        return handler if problem is None else _denial(handler, problem)

    def _problem(self, metadata: Any) -> str | None:
        values = [v for k, v in (metadata or ()) if k == "authorization"]
        if not values:
            return "this server needs an API key: send the metadata `authorization: Bearer <key>`"
        given = values[0].encode() if isinstance(values[0], str) else bytes(values[0])
        # Constant-time, so the comparison does not leak how much of a guess was right.
        if not hmac.compare_digest(given, self._expected):
            return "the API key is wrong (expected metadata `authorization: Bearer <key>`)"
        return None


def _denial(handler: Handler, message: str) -> Handler:
    """A handler of the same shape as `handler` that answers UNAUTHENTICATED."""

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def streaming(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - makes this an async generator; abort always raises

    des, ser = handler.request_deserializer, handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(streaming, des, ser)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary, des, ser)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(streaming, des, ser)
    return grpc.unary_unary_rpc_method_handler(unary, des, ser)
