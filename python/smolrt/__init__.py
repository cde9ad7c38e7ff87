"""smolrt: small quantized language models (GGUF), served fast from a plain CPU.

    >>> from smolrt import Engine
    >>> engine = Engine.load()                      # the default model, after `smolrt pull`
    >>> for event in engine.chat([{"role": "user", "content": "Hi!"}], max_tokens=32):
    ...     print(getattr(event, "text", ""), end="")
"""

from ._core import __version__, cpu_features, inspect_gguf
from .engine import Engine
from .errors import (
    CancelledError,
    FailedPreconditionError,
    InternalError,
    InvalidRequestError,
    ModelLoadError,
    NotFoundError,
    OutOfRangeError,
    ResourceExhaustedError,
    SmolrtError,
    UnauthenticatedError,
    UnavailableError,
)
from .events import Delta, Event, Finished, Timings, TokenLogprob, Usage
from .stream import AsyncGeneration, Generation
from .templates import ChatTemplate

__all__ = [
    "AsyncGeneration",
    "CancelledError",
    "ChatTemplate",
    "Delta",
    "Engine",
    "Event",
    "FailedPreconditionError",
    "Finished",
    "Generation",
    "InternalError",
    "InvalidRequestError",
    "ModelLoadError",
    "NotFoundError",
    "OutOfRangeError",
    "ResourceExhaustedError",
    "SmolrtError",
    "Timings",
    "TokenLogprob",
    "UnauthenticatedError",
    "UnavailableError",
    "Usage",
    "__version__",
    "cpu_features",
    "inspect_gguf",
]
