"""`smolrt chat`: the REPL keeps its conversation, in-process and against a server."""

from __future__ import annotations

import io

import pytest
from fixtures.grpc_server import ServerThread

from smolrt import Engine
from smolrt.chat_repl import LocalChat, RemoteChat, run_repl

GREEDY = {"temperature": 0, "max_tokens": 12}


class Recorder(LocalChat):
    """LocalChat that remembers the prompts it sent, to check what the model saw."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, GREEDY)
        self.seen: list[list[dict[str, str]]] = []

    def send(self, content: str):
        yield from super().send(content)
        self.seen.append(list(self._messages))


def test_local_repl_keeps_history_and_handles_commands(engine: Engine) -> None:
    chat = Recorder(engine)
    out = io.StringIO()
    script = "Name a fruit.\nAnother?\n/system Answer in French.\nBonjour\n/bogus\n/reset\nHi\n/exit\nignored\n"
    assert run_repl(chat, io.StringIO(script), out) == 0
    lines = [line for line in out.getvalue().splitlines() if line]
    assert len(lines) >= 4
    # Turn 2 saw turn 1; /system started over with the new system prompt; /reset too.
    assert [m["role"] for m in chat.seen[1]] == ["user", "assistant", "user", "assistant"]
    assert [m["content"] for m in chat.seen[2] if m["role"] == "user"] == ["Bonjour"]
    assert [m["content"] for m in chat.seen[3] if m["role"] == "user"] == ["Hi"]
    assert chat._system == "Answer in French."  # /reset keeps the system prompt
    assert len(chat.seen) == 4  # "ignored" came after /exit


def test_local_repl_second_turn_reuses_the_kv(engine: Engine) -> None:
    chat = LocalChat(engine, GREEDY)
    list(chat.send("Name a fruit."))
    assert engine.resident_tokens(chat._key) > 0
    chat.close()
    assert engine.resident_tokens(chat._key) == 0


def test_remote_repl_over_a_session(engine: Engine) -> None:
    srv = ServerThread(engine)
    try:
        chat = RemoteChat(srv.address, None, GREEDY)
        out = io.StringIO()
        assert run_repl(chat, io.StringIO("Name a fruit.\nAnother one?\n/reset\nHello\n"), out) == 0
        assert len([line for line in out.getvalue().splitlines() if line]) >= 3
    finally:
        srv.stop()


def test_cli_chat_reads_stdin(engine: Engine, model_path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from smolrt import cli

    monkeypatch.setattr("sys.stdin", io.StringIO("Hello\n/exit\n"))
    assert cli.main(["chat", "--model", str(model_path), "--max-tokens", "8", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.strip()
