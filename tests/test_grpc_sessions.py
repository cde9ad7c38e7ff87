"""The Sessions service end to end on a real server with the real model."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from fixtures.grpc_server import ServerThread

from smolrt import Engine
from smolrt.v1 import smolrt_pb2 as pb
from smolrt.v1 import smolrt_pb2_grpc as rpc

GREEDY = pb.SamplingParameters(temperature=0)
SHORT = pb.StoppingParameters(max_tokens=16)
LONG = pb.StoppingParameters(max_tokens=4000, ignore_eos=True)


@pytest.fixture
def stub(server: ServerThread) -> rpc.SessionsStub:
    return rpc.SessionsStub(server.channel)


def turn(stub: rpc.SessionsStub, session_id: str, content: str, **kw) -> list[pb.Event]:
    return list(stub.SendMessage(pb.SendMessageRequest(session_id=session_id, content=content, **kw)))


def test_two_turns_second_reports_cached_tokens(stub: rpc.SessionsStub) -> None:
    s = stub.CreateSession(pb.CreateSessionRequest(sampling=GREEDY, stopping=SHORT))
    first = turn(stub, s.id, "Name a fruit.")
    assert first[0].WhichOneof("kind") == "started" and first[-1].WhichOneof("kind") == "finished"
    assert first[-1].finished.usage.cached_tokens == 0
    second = turn(stub, s.id, "Name another one.")
    f2 = second[-1].finished
    assert f2.usage.cached_tokens >= first[-1].finished.usage.prompt_tokens
    assert second[0].started.cached_tokens == f2.usage.cached_tokens
    assert [e.seq for e in first + second] == list(range(1, len(first) + len(second) + 1))
    got = stub.GetSession(pb.GetSessionRequest(session_id=s.id))
    assert [m.role for m in got.messages] == ["user", "assistant", "user", "assistant"]
    assert got.last_seq == second[-1].seq and got.state == pb.SESSION_STATE_IDLE
    assert got.cached_tokens > 0
    stub.DeleteSession(pb.DeleteSessionRequest(session_id=s.id))


def test_subscriber_sees_the_same_events_and_resumes_after_seq(stub: rpc.SessionsStub) -> None:
    s = stub.CreateSession(pb.CreateSessionRequest(sampling=GREEDY, stopping=SHORT))
    watched: list[pb.Event] = []
    ready = threading.Event()

    def watch() -> None:
        call = stub.Subscribe(pb.SubscribeRequest(session_id=s.id, after_seq=0))
        ready.set()
        for ev in call:
            watched.append(ev)
            if ev.WhichOneof("kind") == "finished":
                call.cancel()
                return

    t = threading.Thread(target=watch)
    t.start()
    ready.wait(5)
    time.sleep(0.2)
    mine = turn(stub, s.id, "Count to five.")
    t.join(30)
    assert watched == mine
    # A client that saw up to seq 3 reconnects and gets exactly what it missed.
    again = stub.Subscribe(pb.SubscribeRequest(session_id=s.id, after_seq=3))
    resumed = []
    for ev in again:
        resumed.append(ev)
        if ev.WhichOneof("kind") == "finished":
            again.cancel()
            break
    assert resumed == mine[3:]
    with pytest.raises(grpc.RpcError) as info:
        list(stub.Subscribe(pb.SubscribeRequest(session_id=s.id, after_seq=10_000)))
    assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE


def test_concurrent_turn_is_failed_precondition_and_cancel_stops_it(
    stub: rpc.SessionsStub, server: ServerThread
) -> None:
    s = stub.CreateSession(pb.CreateSessionRequest(stopping=LONG))
    call = stub.SendMessage(pb.SendMessageRequest(session_id=s.id, content="Write forever."))
    next(call)  # started
    next(call)  # a first delta: the turn is running
    with pytest.raises(grpc.RpcError) as info:
        turn(stub, s.id, "Interrupting!")
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert stub.Cancel(pb.CancelRequest(session_id=s.id)).cancelled
    rest = list(call)
    assert rest[-1].finished.reason == pb.FINISH_REASON_CANCELLED
    assert server.wait_idle().active_sequences == 0


def test_disconnect_cancels_the_turn_unless_asked_to_keep_it(stub: rpc.SessionsStub, server: ServerThread) -> None:
    s = stub.CreateSession(pb.CreateSessionRequest(stopping=LONG))
    call = stub.SendMessage(pb.SendMessageRequest(session_id=s.id, content="Write forever."))
    next(call)
    next(call)
    call.cancel()
    assert server.wait_idle().active_sequences == 0
    kept = stub.CreateSession(
        pb.CreateSessionRequest(stopping=pb.StoppingParameters(max_tokens=40, ignore_eos=True))
    )
    call = stub.SendMessage(
        pb.SendMessageRequest(session_id=kept.id, content="Keep going.", keep_running_on_disconnect=True)
    )
    next(call)
    call.cancel()
    # The turn runs on for subscribers and finishes on its own.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = stub.GetSession(pb.GetSessionRequest(session_id=kept.id))
        if got.state == pb.SESSION_STATE_IDLE:
            break
        time.sleep(0.1)
    assert got.messages[-1].role == "assistant" and got.messages[-1].content


def test_unknown_session_and_bad_parameters(stub: rpc.SessionsStub) -> None:
    for call in (
        lambda: stub.GetSession(pb.GetSessionRequest(session_id="nope")),
        lambda: stub.DeleteSession(pb.DeleteSessionRequest(session_id="nope")),
        lambda: turn(stub, "nope", "hi"),
        lambda: list(stub.Subscribe(pb.SubscribeRequest(session_id="nope"))),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    s = stub.CreateSession(pb.CreateSessionRequest())
    with pytest.raises(grpc.RpcError) as info:
        turn(stub, s.id, "hi", sampling=pb.SamplingParameters(top_p=7))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    listed = stub.ListSessions(pb.ListSessionsRequest())
    assert s.id in [x.id for x in listed.sessions]


def test_update_session_switches_thinking_and_system_prompt(stub: rpc.SessionsStub) -> None:
    s = stub.CreateSession(pb.CreateSessionRequest(sampling=GREEDY, stopping=SHORT))
    assert not s.enable_thinking
    first = turn(stub, s.id, "Name a fruit.")
    updated = stub.UpdateSession(
        pb.UpdateSessionRequest(session_id=s.id, enable_thinking=True, system_prompt="Be terse.")
    )
    assert updated.enable_thinking and updated.system_prompt == "Be terse."
    assert updated.sampling.temperature == 0  # untouched defaults stay
    second = turn(stub, s.id, "Another?")
    # A new system prompt changes the conversation right after the system header
    # ("<|im_start|>system\n", 3 tokens): only that much can be reused.
    assert second[-1].finished.usage.cached_tokens == 3
    assert second[-1].finished.usage.prompt_tokens > first[-1].finished.usage.prompt_tokens
    got = stub.GetSession(pb.GetSessionRequest(session_id=s.id))
    assert got.messages[0].role == "system" and got.messages[0].content == "Be terse."
    with pytest.raises(grpc.RpcError) as info:
        stub.UpdateSession(pb.UpdateSessionRequest(session_id="nope", enable_thinking=True))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_server_context_cap_applies_to_session_turns(engine: Engine) -> None:
    srv = ServerThread(engine, max_context=48)
    try:
        stub = rpc.SessionsStub(srv.channel)
        s = stub.CreateSession(pb.CreateSessionRequest(stopping=pb.StoppingParameters(max_tokens=500, ignore_eos=True)))
        events = turn(stub, s.id, "Hi")
        fin = events[-1].finished
        # The reply stops where prompt plus reply reach the server's 48-token cap.
        assert fin.reason == pb.FINISH_REASON_LENGTH
        assert fin.usage.prompt_tokens + fin.usage.completion_tokens == 48
        with pytest.raises(grpc.RpcError) as info:
            turn(stub, s.id, "Tell me everything about " + "the sea and the sky " * 10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "context" in (info.value.details() or "")
    finally:
        srv.stop()
