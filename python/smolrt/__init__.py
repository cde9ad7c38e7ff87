"""smolrt: small quantized language models (GGUF), served fast from a plain CPU.

    >>> from smolrt import Engine
    >>> engine = Engine.load()                      # the default model, after `smolrt pull`
    >>> for event in engine.chat([{"role": "user", "content": "Hi!"}], max_tokens=32):
    ...     print(getattr(event, "text", ""), end="")
"""

import os as _os

# The compute pool's idle worker spins before it parks. candle's default (25,000 spins, some
# milliseconds) outlasts the gap between two decode steps, so on a small machine the spinning
# worker takes the core the per-token Python work (event dispatch, the gRPC stream) needs:
# measured on 2 cores with earlier kernels, gRPC decode 0.84 of in-process at the default, 0.90
# at 3,000, in-process unchanged. With today's kernels (shorter idle gaps) 200, 2,000 and
# 25,000 measured within noise of each other. Read once, when the pool starts; an explicit
# setting wins.
_os.environ.setdefault("CANDLE_BARRIER_POOL_SPIN_LIMIT", "2000")

from ._core import __version__, cpu_features, inspect_gguf  # noqa: E402 - after the pool setting
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
