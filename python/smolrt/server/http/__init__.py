"""The HTTP door of `smolrt serve`: sessions over SSE, the OpenAI-compatible API, operations
(/healthz, /readyz, /metrics) and the chat page, sharing the gRPC side's engine and sessions."""

from __future__ import annotations

from .app import create_app
from .server import HttpServer

__all__ = ["HttpServer", "create_app"]
