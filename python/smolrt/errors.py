"""The smolrt exception hierarchy.

Python owns these classes so that the native module, the CLI and user code all
catch the same types: the Rust glue turns each `ErrorCode` into an exception by
calling `error_for_code`, and every class carries the stable `code` string that
the CLI prints and a server would put in its error responses.
"""

from __future__ import annotations


class SmolrtError(Exception):
    """Base class of every error smolrt raises on purpose."""

    code: str = "internal"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ModelLoadError(SmolrtError):
    """The model file is missing, unreadable, malformed or unsupported."""

    code = "model_load"


class InvalidRequestError(SmolrtError):
    """The caller asked for something malformed or impossible."""

    code = "invalid_request"


class ResourceExhaustedError(SmolrtError):
    """A limit was hit: context window, memory, queue depth."""

    code = "resource_exhausted"


class NotFoundError(SmolrtError):
    """A named thing (file, model, request id) does not exist."""

    code = "not_found"


class CancelledError(SmolrtError):
    """The work was cancelled before it finished."""

    code = "cancelled"


class FailedPreconditionError(SmolrtError):
    """The request is well formed but the system is not in a state to run it (e.g. a session that is
    already generating, or chat input for a model without a chat template)."""

    code = "failed_precondition"


class OutOfRangeError(SmolrtError):
    """A position past what exists, e.g. an event sequence number a log no longer or not yet holds."""

    code = "out_of_range"


class UnavailableError(SmolrtError):
    """The service cannot take the request now: no model loaded, or shutting down. Retrying later,
    or elsewhere, may succeed."""

    code = "unavailable"


class UnauthenticatedError(SmolrtError):
    """The request lacks valid credentials (a server API key)."""

    code = "unauthenticated"


class InternalError(SmolrtError):
    """A bug or an unexpected failure inside smolrt."""

    code = "internal"


_BY_CODE: dict[str, type[SmolrtError]] = {
    cls.code: cls
    for cls in (
        ModelLoadError,
        InvalidRequestError,
        ResourceExhaustedError,
        NotFoundError,
        CancelledError,
        FailedPreconditionError,
        OutOfRangeError,
        UnavailableError,
        UnauthenticatedError,
        InternalError,
    )
}


def error_for_code(code: str, message: str) -> SmolrtError:
    """Build the exception for an error code coming from the native core."""
    cls = _BY_CODE.get(code)
    if cls is None:
        # An unknown code means the glue and this file disagree; keep the code
        # in the text so the mismatch is visible rather than silently lost.
        return InternalError(f"{message} (unrecognised error code {code!r})")
    return cls(message)


__all__ = [
    "CancelledError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidRequestError",
    "ModelLoadError",
    "NotFoundError",
    "OutOfRangeError",
    "ResourceExhaustedError",
    "SmolrtError",
    "UnauthenticatedError",
    "UnavailableError",
    "error_for_code",
]
