"""`smolrt chat`: a terminal conversation that keeps its session between turns.

Two backends with one interface: in-process (the engine keeps the conversation's KV resident
under a session key, so each turn prefills only the new message) and remote (a session on a
running server through the gRPC Sessions service). Commands: /reset, /system TEXT, /exit.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from typing import IO, Any, Protocol

from .errors import InternalError

__all__ = ["LocalChat", "RemoteChat", "run_repl"]

HELP = "commands: /reset (new conversation), /system TEXT (set the system prompt and reset), /exit"
_keys = itertools.count(1)


class ChatBackend(Protocol):
    def send(self, content: str) -> Iterator[tuple[str, str]]:
        """Stream the reply to `content` as (channel, text) pieces."""

    def reset(self, system_prompt: str | None) -> None: ...

    def close(self) -> None: ...


class LocalChat:
    def __init__(self, engine: Any, params: dict[str, Any], system_prompt: str | None = None) -> None:
        self._engine = engine
        self._params = params
        self._system = system_prompt
        self._messages: list[dict[str, str]] = []
        self._key = next(_keys)

    def send(self, content: str) -> Iterator[tuple[str, str]]:
        self._messages.append({"role": "user", "content": content})
        system = [{"role": "system", "content": self._system}] if self._system else []
        reply: list[str] = []
        stream = self._engine.chat(system + self._messages, session_key=self._key, **self._params)
        try:
            for event in stream:
                if event.type == "delta" and event.text:
                    if event.channel == "content":
                        reply.append(event.text)
                    yield event.channel, event.text
        finally:
            stream.close()
            self._messages.append({"role": "assistant", "content": "".join(reply)})

    def reset(self, system_prompt: str | None) -> None:
        self._engine.drop_session(self._key)
        self._key = next(_keys)
        self._messages = []
        self._system = system_prompt

    def close(self) -> None:
        self._engine.drop_session(self._key)


class RemoteChat:
    def __init__(self, server: str, api_key: str | None, params: dict[str, Any], system_prompt: str | None = None):
        import grpc

        from .client import auth_metadata
        from .v1 import smolrt_pb2 as pb
        from .v1 import smolrt_pb2_grpc as rpc

        self._pb = pb
        self._server = server
        self._channel = grpc.insecure_channel(server)
        self._stub = rpc.SessionsStub(self._channel)
        self._metadata = auth_metadata(api_key)
        self._sampling = pb.SamplingParameters(
            **{k: v for k, v in params.items() if k in ("temperature", "top_p", "top_k", "seed")}
        )
        self._stopping = pb.StoppingParameters(max_tokens=params.get("max_tokens", 0))
        self._session = self._create(system_prompt)

    def _create(self, system_prompt: str | None) -> str:
        req = self._pb.CreateSessionRequest(
            system_prompt=system_prompt or "", sampling=self._sampling, stopping=self._stopping
        )
        return str(self._call(lambda: self._stub.CreateSession(req, metadata=self._metadata)).id)

    def _call(self, fn: Any) -> Any:
        import grpc

        from .client import error_from_rpc

        try:
            return fn()
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, self._server) from None

    def send(self, content: str) -> Iterator[tuple[str, str]]:
        import grpc

        from .client import error_from_rpc

        pb = self._pb
        call = self._stub.SendMessage(
            pb.SendMessageRequest(session_id=self._session, content=content), metadata=self._metadata
        )
        try:
            for event in call:
                kind = event.WhichOneof("kind")
                if kind == "delta" and event.delta.text:
                    channel = "reasoning" if event.delta.channel == pb.CHANNEL_REASONING else "content"
                    yield channel, event.delta.text
                elif kind == "error":
                    raise InternalError(event.error.message)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, self._server) from None
        finally:
            call.cancel()

    def reset(self, system_prompt: str | None) -> None:
        old = self._session
        self._session = self._create(system_prompt)
        delete = self._pb.DeleteSessionRequest(session_id=old)
        self._call(lambda: self._stub.DeleteSession(delete, metadata=self._metadata))

    def close(self) -> None:
        self._channel.close()


def run_repl(backend: ChatBackend, stdin: IO[str], out: IO[str], system_prompt: str | None = None) -> int:
    """Read lines until /exit or end of input; stream each reply. Reasoning goes to stderr."""
    interactive = stdin.isatty()
    if interactive:
        print(HELP, file=sys.stderr)
    system = system_prompt
    while True:
        if interactive:
            out.write("you> ")
            out.flush()
        line = stdin.readline()
        if not line:
            break
        text = line.rstrip("\n")
        if not text.strip():
            continue
        if text.strip() in ("/exit", "/quit"):
            break
        if text.strip() == "/reset":
            backend.reset(system)
            print("(new conversation)", file=sys.stderr)
            continue
        if text.startswith("/system"):
            system = text[len("/system") :].strip() or None
            backend.reset(system)
            print(f"(system prompt {'set' if system else 'cleared'}; new conversation)", file=sys.stderr)
            continue
        if text.startswith("/"):
            print(f"unknown command {text.split()[0]}; {HELP}", file=sys.stderr)
            continue
        ends_with_newline = True
        for channel, piece in backend.send(text):
            if channel == "reasoning":
                sys.stderr.write(piece)
                sys.stderr.flush()
                continue
            out.write(piece)
            out.flush()
            ends_with_newline = piece.endswith("\n")
        if not ends_with_newline:
            out.write("\n")
            out.flush()
    backend.close()
    return 0
