"""Errors over HTTP: one JSON shape (OpenAI's) for every route, statuses from the shared table.

`{"error": {"message", "type", "param", "code"}}` is what OpenAI clients parse, and nothing is
gained by giving the session routes a second shape. `code` is smolrt's stable error code, the same
string the gRPC side puts in its error events; the HTTP status comes from `status.STATUS_TABLE`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from ...errors import InvalidRequestError, SmolrtError, error_for_code
from ..status import status_for

__all__ = ["FieldError", "error_body", "error_response", "install_error_handlers"]

# OpenAI's error types, by HTTP status; anything else is a server error.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    416: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class FieldError(InvalidRequestError):
    """An invalid request blamed on one request field, which the error JSON names in `param`."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def error_body(exc: BaseException) -> tuple[int, dict[str, Any]]:
    status, message = status_for(exc)
    code = exc.code if isinstance(exc, SmolrtError) else "internal"
    return status.http, {
        "error": {
            "message": message,
            "type": _TYPES.get(status.http, "server_error"),
            "param": getattr(exc, "param", None),
            "code": code,
        }
    }


def error_response(exc: BaseException, headers: dict[str, str] | None = None) -> JSONResponse:
    http_status, body = error_body(exc)
    return JSONResponse(body, status_code=http_status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str | None, str]:
    """The first problem pydantic found, as (field path, sentence)."""
    errors = exc.errors()
    if not errors:
        return None, "the request body is invalid"
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    if first.get("type") == "extra_forbidden":
        return param, f"unknown field {param!r}: smolrt does not support it"
    if first.get("type") == "json_invalid":
        return None, "the request body is not valid JSON"
    msg = str(first.get("msg", "invalid value"))
    return param, f"{param}: {msg}" if param else msg


def install_error_handlers(app: FastAPI) -> None:
    async def smolrt_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(exc)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        param, message = _validation_message(exc)
        # 400, not FastAPI's 422: OpenAI answers malformed requests with 400.
        return error_response(FieldError(param or "", message) if param else InvalidRequestError(message))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        # Starlette's own answers (no such route, wrong method) in the same shape, same status.
        client_side = exc.status_code < 500
        kind = {404: "not_found", 401: "unauthenticated"}.get(exc.status_code)
        err = error_for_code(kind or ("invalid_request" if client_side else "internal"), str(exc.detail))
        _, body = error_body(err)
        body["error"]["type"] = _TYPES.get(exc.status_code, "invalid_request_error" if client_side else "server_error")
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(exc)  # status_for logs it with its traceback: INTERNAL is a bug

    app.add_exception_handler(SmolrtError, smolrt_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
