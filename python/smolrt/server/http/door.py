"""What every HTTP route shares: the engine, the session store (the gRPC side's own object), the
settings and the metrics. One `Door` per app, kept on `app.state`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request

from ...engine import Engine
from ...errors import InvalidRequestError, UnavailableError
from ...sessions import SessionStore
from ..settings import NO_MODEL_MESSAGE, Settings
from .metrics import Metrics

__all__ = ["Door", "DoorDep", "door"]


@dataclass
class Door:
    engine: Engine | None
    store: SessionStore | None
    settings: Settings
    metrics: Metrics
    #: Set when the server begins shutting down: idle event streams end instead of holding the
    #: shutdown up until the grace period runs out.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    #: OpenAI-route generations admitted that have not produced their first event yet.
    waiting: int = 0

    @property
    def model_id(self) -> str:
        """The name /v1/models lists: the model file's name without `.gguf`."""
        if self.engine is None:
            return ""
        name = Path(self.engine.path).name
        return name[: -len(".gguf")] if name.lower().endswith(".gguf") else name

    @property
    def context(self) -> int:
        """Tokens a request may use, prompt and reply together: the model's, or the server's cap."""
        engine = self.require_engine()
        model_ctx = int(engine.info["context_length"])
        cap = self.settings.max_context
        return min(model_ctx, cap) if cap else model_ctx

    def require_engine(self) -> Engine:
        if self.engine is None:
            raise UnavailableError(NO_MODEL_MESSAGE)
        return self.engine

    def require_store(self) -> SessionStore:
        if self.store is None:
            raise UnavailableError(NO_MODEL_MESSAGE)
        return self.store

    def limit_to_context(self, prompt_len: int, params: dict[str, Any]) -> None:
        """Apply the server's context cap (the engine enforces the model's own)."""
        if not self.settings.max_context:
            return
        context = self.context
        if prompt_len >= context:
            raise InvalidRequestError(
                f"the prompt has {prompt_len} tokens but this server's context is {context} tokens; "
                "at least one position must remain for the reply"
            )
        room = context - prompt_len
        if params.get("max_tokens") is None or params["max_tokens"] > room:
            params["max_tokens"] = room


def door(request: Request) -> Door:
    """FastAPI dependency: the app's Door."""
    found: Door = request.app.state.door
    return found


#: Route parameter type: `d: DoorDep` gives a route the app's Door.
DoorDep = Annotated[Door, Depends(door)]
