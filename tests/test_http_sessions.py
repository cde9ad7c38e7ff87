"""Session routes and their Server-Sent Events, on a real server (gRPC and HTTP) with the real model."""

from __future__ import annotations

import time

import httpx
import pytest
from fixtures.grpc_server import ServerThread
from fixtures.sse import SseEvent, events, read_turn

from smolrt.server.http import sse
from smolrt.v1 import smolrt_pb2 as pb
from smolrt.v1 import smolrt_pb2_grpc as rpc

GREEDY_SHORT = {"temperature": 0, "max_tokens": 8}
# Long enough that a reader can leave and come back while the turn is still being written.
GREEDY_LONG = {"temperature": 0, "max_tokens": 48, "ignore_eos": True}
ENDLESS = {"max_tokens": 4000, "ignore_eos": True}


def create(http: httpx.Client, **body) -> str:
    r = http.post("/api/sessions", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def send(http: httpx.Client, sid: str, content: str, **body) -> dict:
    r = http.post(f"/api/sessions/{sid}/messages", json={"content": content, **body})
    assert r.status_code == 202, r.text
    return r.json()


def stream(http: httpx.Client, sid: str, after: int | None = None, last_event_id: int | None = None, limit=None):
    params = {} if after is None else {"after": after}
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    with http.stream("GET", f"/api/sessions/{sid}/events", params=params, headers=headers) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        return read_turn(r, limit)


def assert_well_formed_turn(evs: list[SseEvent], first_seq: int) -> None:
    assert [e.id for e in evs] == list(range(first_seq, first_seq + len(evs)))
    assert all(e.data["seq"] == e.id for e in evs)
    assert evs[0].event == "started" and evs[-1].event == "finished"
    assert {e.event for e in evs[1:-1]} <= {"content", "reasoning"}
    tokens = [t for e in evs[1:-1] for t in e.data["token_ids"]]
    usage = evs[-1].data["usage"]
    assert usage["completion_tokens"] == len(tokens)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens"] == evs[0].data["prompt_tokens"]


def test_sse_stream_shape(http: httpx.Client) -> None:
    sid = create(http, params=GREEDY_SHORT)
    accepted = send(http, sid, "Name a fruit.")
    assert accepted == {"session_id": sid, "turn": 1, "seq": 1}
    with http.stream("GET", f"/api/sessions/{sid}/events") as r:
        assert r.headers["cache-control"] == "no-cache"
        evs = read_turn(r)
    assert_well_formed_turn(evs, 1)
    assert evs[0].data["content"] == "Name a fruit."
    assert evs[-1].data["reason"] in ("stop", "length")
    text = "".join(e.data["text"] for e in evs if e.event == "content")
    got = http.get(f"/api/sessions/{sid}").json()
    assert got["messages"] == [
        {"role": "user", "content": "Name a fruit."},
        {"role": "assistant", "content": text},
    ]
    assert got["last_seq"] == evs[-1].id and got["state"] == "idle" and got["running_turn_seq"] is None
    assert text.strip()


def test_last_event_id_resumes_mid_turn_with_exactly_the_missing_events(http: httpx.Client) -> None:
    sid = create(http, params=GREEDY_LONG)
    send(http, sid, "Tell me a story.")
    # Read the start of the turn, then drop the connection while the reply is still coming.
    first = stream(http, sid, after=0, limit=5)
    assert [e.event for e in first][-1] != "finished"
    seen = first[-1].id
    assert seen == 5
    # Reconnect as EventSource does: Last-Event-ID is the last id seen (and beats `after`).
    rest = stream(http, sid, after=0, last_event_id=seen)
    assert [e.id for e in rest] == list(range(seen + 1, seen + 1 + len(rest)))
    # Nothing lost, nothing repeated: the two pieces are exactly the whole turn.
    whole = stream(http, sid, after=0)
    assert_well_formed_turn(whole, 1)
    assert [(e.id, e.event, e.data) for e in first + rest] == [(e.id, e.event, e.data) for e in whole]
    assert whole[-1].data["usage"]["completion_tokens"] == GREEDY_LONG["max_tokens"]


def test_resume_positions_outside_the_log_are_416_in_the_error_shape(http: httpx.Client) -> None:
    sid = create(http, params=GREEDY_SHORT)
    for headers in ({"Last-Event-ID": "99"}, {"Last-Event-ID": "-1"}, {"Last-Event-ID": "abc"}):
        r = http.get(f"/api/sessions/{sid}/events", headers=headers)
        assert r.status_code in (400, 416), (headers, r.text)
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"}
        assert err["code"] == ("out_of_range" if r.status_code == 416 else "invalid_request")
    assert http.get(f"/api/sessions/{sid}/events", headers={"Last-Event-ID": "99"}).status_code == 416


def test_grpc_created_session_streams_over_sse_and_back(server: ServerThread, http: httpx.Client) -> None:
    stub = rpc.SessionsStub(server.channel)
    s = stub.CreateSession(
        pb.CreateSessionRequest(
            sampling=pb.SamplingParameters(temperature=0), stopping=pb.StoppingParameters(max_tokens=8)
        )
    )
    grpc_events = list(stub.SendMessage(pb.SendMessageRequest(session_id=s.id, content="Say hello.")))
    over_sse = stream(http, s.id, after=0)
    assert [e.id for e in over_sse] == [e.seq for e in grpc_events]
    kinds = {"started": "started", "delta": "content", "finished": "finished"}
    assert [e.event for e in over_sse] == [kinds[e.WhichOneof("kind")] for e in grpc_events]
    assert [e.data["text"] for e in over_sse[1:-1]] == [e.delta.text for e in grpc_events[1:-1]]
    assert over_sse[-1].data["usage"]["completion_tokens"] == grpc_events[-1].finished.usage.completion_tokens
    # ... and a session started over HTTP is a session for gRPC too.
    sid = create(http, params=GREEDY_SHORT)
    send(http, sid, "Name a colour.")
    turn = stream(http, sid)
    got = stub.GetSession(pb.GetSessionRequest(session_id=sid))
    assert [m.role for m in got.messages] == ["user", "assistant"]
    assert got.messages[1].content == "".join(e.data["text"] for e in turn if e.event == "content")
    assert got.last_seq == turn[-1].id


def test_crud_conflict_cancel_and_errors(server: ServerThread, http: httpx.Client) -> None:
    sid = create(http, system_prompt="Be brief.", params=ENDLESS)
    listed = http.get("/api/sessions").json()["sessions"]
    assert sid in [s["id"] for s in listed]
    send(http, sid, "Write forever.")
    with http.stream("GET", f"/api/sessions/{sid}/events") as r:
        it = events(r)
        assert next(it).event == "started"
        assert next(it).event == "content"  # the turn is running
        busy = http.post(f"/api/sessions/{sid}/messages", json={"content": "Interrupting!"})
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "failed_precondition"
        mid = http.get(f"/api/sessions/{sid}").json()
        assert mid["state"] == "generating" and mid["running_turn_seq"] == 1
        assert http.post(f"/api/sessions/{sid}/cancel").json() == {"cancelled": True}
        last = next(e for e in it if e.event == "finished")  # the stream itself stays open
    assert last.data["reason"] == "cancelled"
    assert http.post(f"/api/sessions/{sid}/cancel").json() == {"cancelled": False}
    assert server.wait_idle().active_sequences == 0
    bad = http.post(f"/api/sessions/{sid}/messages", json={"content": "hi", "params": {"top_p": 7}})
    assert bad.status_code == 400 and "top_p" in bad.json()["error"]["message"]
    unknown = http.post(f"/api/sessions/{sid}/messages", json={"content": "hi", "tempreature": 1})
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "tempreature"
    assert http.delete(f"/api/sessions/{sid}").status_code == 204
    for method, path in (
        ("GET", f"/api/sessions/{sid}"),
        ("DELETE", f"/api/sessions/{sid}"),
        ("GET", f"/api/sessions/{sid}/events"),
        ("POST", f"/api/sessions/{sid}/cancel"),
    ):
        r = http.request(method, path)
        assert r.status_code == 404, (method, path)
        assert r.json()["error"]["code"] == "not_found"


def test_quiet_stream_gets_keepalive_comments(http: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sse, "PING_INTERVAL_S", 0.1)
    sid = create(http)
    comments: list[str] = []
    deadline = time.monotonic() + 10
    with http.stream("GET", f"/api/sessions/{sid}/events") as r:
        for line in r.iter_lines():
            if line.startswith(":"):
                comments.append(line)
            if len(comments) >= 2 or time.monotonic() > deadline:
                break
    assert comments[:2] == [": ping", ": ping"]


def test_update_and_toggle_thinking(http: httpx.Client) -> None:
    sid = create(http)
    assert http.get(f"/api/sessions/{sid}").json()["enable_thinking"] is None
    # Unset is the template's default (on for thinking models): the first toggle turns it off.
    assert http.post(f"/api/sessions/{sid}/toggle-thinking").json()["enable_thinking"] is False
    assert http.post(f"/api/sessions/{sid}/toggle-thinking").json()["enable_thinking"] is True
    got = http.patch(f"/api/sessions/{sid}", json={"system_prompt": "Be terse.", "enable_thinking": False}).json()
    assert got["system_prompt"] == "Be terse." and got["enable_thinking"] is False
    # Fields left out stay as they are.
    assert http.patch(f"/api/sessions/{sid}", json={}).json()["system_prompt"] == "Be terse."
    bad = http.patch(f"/api/sessions/{sid}", json={"bogus": 1})
    assert bad.status_code in (400, 422) and "error" in bad.json()
    assert http.post("/api/sessions/nope/toggle-thinking").status_code == 404
