"""Server settings: one dataclass, filled from command-line flags, then SMOLRT_* variables, then defaults.

A flag beats its environment variable, which beats the default, so a container can be configured
through its environment and a person can still override one thing on the command line.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from ..errors import InvalidRequestError

__all__ = ["Settings"]

NO_MODEL_MESSAGE = "no model loaded: start with --model PATH or run `smolrt pull`"

#: The KV cache number formats the engine stores (`Engine.load`'s kv_type).
KV_TYPES = ("f16", "f32", "q8")


@dataclass(frozen=True)
class Settings:
    #: GGUF file to serve; None: the pulled default model if there is one, else no model.
    model: str | None = None
    host: str = "127.0.0.1"
    #: 0 binds an ephemeral port (tests); the bound port is reported by the running server.
    grpc_port: int = 50051
    #: The HTTP door (chat page, SSE, OpenAI-compatible API) on the same host; 0 binds an
    #: ephemeral port, -1 turns HTTP off.
    http_port: int = 8080
    #: Memory for the KV cache of all sequences together.
    kv_budget_mb: int = 256
    #: Number format of cached keys and values: "f16" or "f32" (twice the memory per token).
    kv_type: str = "f16"
    #: Most prompt tokens one engine step ingests across sequences: bounds how long running streams
    #: wait while a long prompt is prefilled.
    max_batch_tokens: int = 512
    #: Most sequences (Generate calls plus session turns) admitted at once; past it, calls answer
    #: RESOURCE_EXHAUSTED instead of queueing without bound.
    max_sequences: int = 64
    #: Most live sessions.
    max_sessions: int = 256
    #: Cap on prompt plus reply, in tokens, below the model's own context; None: the model's.
    max_context: int | None = None
    #: When set, every call but health needs `authorization: Bearer <key>`.
    api_key: str | None = None
    #: Sessions idle this long are deleted.
    session_ttl_s: float = 3600.0
    #: On SIGTERM, in-flight streams get this long to finish before they are cancelled.
    grace_s: float = 10.0

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool]] = [
            ("grpc_port", 0 <= self.grpc_port <= 65535),
            ("http_port", -1 <= self.http_port <= 65535),
            ("kv_budget_mb", self.kv_budget_mb >= 1),
            ("kv_type", self.kv_type.lower() in KV_TYPES),
            ("max_batch_tokens", self.max_batch_tokens >= 1),
            ("max_sequences", self.max_sequences >= 1),
            ("max_sessions", self.max_sessions >= 0),
            ("max_context", self.max_context is None or self.max_context >= 2),
            ("session_ttl_s", self.session_ttl_s > 0),
            ("grace_s", self.grace_s >= 0),
        ]
        for name, ok in checks:
            if not ok:
                raise InvalidRequestError(f"setting {name} has an impossible value: {getattr(self, name)!r}")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_enabled(self) -> bool:
        return self.http_port >= 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Defaults overridden by SMOLRT_* variables."""
        return cls.from_args(None, env)

    @classmethod
    def from_args(cls, args: argparse.Namespace | None, env: Mapping[str, str] | None = None) -> Settings:
        """Defaults, then SMOLRT_* variables from `env` (os.environ when None), then flags set in `args`."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(_env_name(f.name))
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, raw)
            flag = getattr(args, f.name, None) if args is not None else None
            if flag is not None:
                values[f.name] = flag
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def redacted(self) -> dict[str, Any]:
        """The settings for logs, with the API key hidden."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if out["api_key"]:
            out["api_key"] = "***"
        return out


def _env_name(field_name: str) -> str:
    return "SMOLRT_" + field_name.upper()


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("none", "0") else int(text)


_PARSERS: dict[str, Callable[[str], Any]] = {
    "model": str,
    "host": str,
    "api_key": str,
    "grpc_port": int,
    "http_port": int,
    "kv_budget_mb": int,
    "kv_type": str,
    "max_batch_tokens": int,
    "max_sequences": int,
    "max_sessions": int,
    "max_context": _optional_int,
    "session_ttl_s": float,
    "grace_s": float,
}


def _parse(name: str, raw: str) -> Any:
    try:
        return _PARSERS[name](raw)
    except ValueError:
        raise InvalidRequestError(f"{_env_name(name)}={raw!r} is not a valid value") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `smolrt serve` flags. Each defaults to None so that `from_args` can tell "not given"."""
    d = Settings()
    parser.add_argument("-m", "--model", help="GGUF file to serve ($SMOLRT_MODEL; default: the pulled model)")
    parser.add_argument("--host", help=f"address to bind ($SMOLRT_HOST; default {d.host})")
    parser.add_argument("--grpc-port", type=int, help=f"$SMOLRT_GRPC_PORT; default {d.grpc_port}; 0 picks a free one")
    parser.add_argument(
        "--http-port",
        type=int,
        help=f"chat page, SSE and OpenAI-compatible API ($SMOLRT_HTTP_PORT; default {d.http_port}; "
        "0 picks a free one, -1 turns HTTP off)",
    )
    parser.add_argument(
        "--no-http", dest="http_port", action="store_const", const=-1, help="serve gRPC only (same as --http-port -1)"
    )
    parser.add_argument(
        "--kv-budget-mb", type=int, help=f"KV cache memory ($SMOLRT_KV_BUDGET_MB; default {d.kv_budget_mb})"
    )
    parser.add_argument(
        "--kv-type",
        choices=KV_TYPES,
        help=f"number format of the KV cache ($SMOLRT_KV_TYPE; default {d.kv_type}; f32 takes twice "
        "the memory per token, q8 about half)",
    )
    parser.add_argument(
        "--max-batch-tokens",
        type=int,
        help=f"prompt tokens prefilled per step ($SMOLRT_MAX_BATCH_TOKENS; default {d.max_batch_tokens})",
    )
    parser.add_argument(
        "--max-sequences",
        type=int,
        help=f"generations admitted at once; more get RESOURCE_EXHAUSTED ($SMOLRT_MAX_SEQUENCES; "
        f"default {d.max_sequences})",
    )
    parser.add_argument("--max-sessions", type=int, help=f"$SMOLRT_MAX_SESSIONS; default {d.max_sessions}")
    parser.add_argument(
        "--max-context", type=int, help="cap on prompt + reply tokens ($SMOLRT_MAX_CONTEXT; default: the model's)"
    )
    parser.add_argument("--api-key", help="require `authorization: Bearer KEY` ($SMOLRT_API_KEY)")
    parser.add_argument("--session-ttl-s", type=float, help=f"$SMOLRT_SESSION_TTL_S; default {d.session_ttl_s:g}")
    parser.add_argument(
        "--grace-s", type=float, help=f"shutdown grace for in-flight streams ($SMOLRT_GRACE_S; default {d.grace_s:g})"
    )
