"""The gRPC server end to end: a real server on an ephemeral loopback port with the real default model."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from fixtures.grpc_server import ServerThread, check_well_formed
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from smolrt import Engine
from smolrt.v1 import smolrt_pb2 as pb
from smolrt.v1 import smolrt_pb2_grpc as rpc

QUESTION = pb.ChatMessages(
    messages=[pb.Message(role="user", content="Which city is the capital of France? Answer in one word.")]
)
GREEDY = pb.SamplingParameters(temperature=0)
# Long enough to still be running when the test cancels it.
ENDLESS = pb.StoppingParameters(max_tokens=4000, ignore_eos=True)


def test_streamed_generate_is_well_formed_and_sensible(server: ServerThread) -> None:
    req = pb.GenerateRequest(messages=QUESTION, sampling=GREEDY, stopping=pb.StoppingParameters(max_tokens=24))
    events = list(server.inference.Generate(req, timeout=60))
    started, text, finished = check_well_formed(events)
    assert "Paris" in text
    assert finished.reason in (pb.FINISH_REASON_STOP, pb.FINISH_REASON_LENGTH)
    assert finished.timings.time_to_first_token_ms > 0
    assert started.created_at.seconds > 0


def test_raw_prompt_and_token_ids_agree(server: ServerThread, engine: Engine) -> None:
    stop = pb.StoppingParameters(max_tokens=6, ignore_eos=True)
    by_text = list(
        server.inference.Generate(pb.GenerateRequest(prompt="Once upon a time", sampling=GREEDY, stopping=stop))
    )
    ids = engine.tokenize("Once upon a time", parse_special=True)
    by_ids = list(
        server.inference.Generate(
            pb.GenerateRequest(prompt_token_ids=pb.TokenIds(ids=ids), sampling=GREEDY, stopping=stop)
        )
    )
    _, text_a, fin_a = check_well_formed(by_text)
    _, text_b, fin_b = check_well_formed(by_ids)
    assert text_a == text_b and fin_a.reason == fin_b.reason == pb.FINISH_REASON_LENGTH
    assert fin_a.usage.completion_tokens == 6
    # Same tokens as the library gives in-process.
    assert text_a == engine.generate(ids, max_tokens=6, ignore_eos=True, temperature=0).text()


def test_client_cancel_frees_the_sequence(server: ServerThread) -> None:
    call = server.inference.Generate(pb.GenerateRequest(prompt="Count to a thousand:", stopping=ENDLESS))
    for seen, _event in enumerate(call, 1):
        if seen == 5:
            break
    assert server.stats().active_sequences >= 1
    call.cancel()
    stats = server.wait_idle()
    assert stats.active_sequences == 0 and stats.running_requests == 0
    assert stats.kv_blocks_in_use == 0


def test_cancel_rpc_stops_a_generate_call(server: ServerThread) -> None:
    req = pb.GenerateRequest(prompt="Tell me a long story.", stopping=ENDLESS, request_id="story-1")
    call = server.inference.Generate(req)
    first = next(call)
    assert first.started.request_id == "story-1"
    next(call)  # at least one token is out: the sequence is decoding
    assert server.inference.Cancel(pb.CancelGenerateRequest(request_id="story-1")).cancelled
    rest = list(call)
    assert rest[-1].finished.reason == pb.FINISH_REASON_CANCELLED
    assert rest[-1].finished.usage.completion_tokens < 4000
    assert server.wait_idle().active_sequences == 0
    with pytest.raises(grpc.RpcError) as info:
        server.inference.Cancel(pb.CancelGenerateRequest(request_id="story-1"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_sixteen_concurrent_streams_all_complete(server: ServerThread) -> None:
    def one(i: int) -> list[pb.Event]:
        req = pb.GenerateRequest(
            prompt=f"Fact number {i}:",
            sampling=pb.SamplingParameters(temperature=0.8, seed=i),
            stopping=pb.StoppingParameters(max_tokens=8, ignore_eos=True),
        )
        return list(server.inference.Generate(req, timeout=120))

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(16)))
    ids = set()
    for events in results:
        started, _, finished = check_well_formed(events)
        assert finished.reason == pb.FINISH_REASON_LENGTH and finished.usage.completion_tokens == 8
        ids.add(started.request_id)
    assert len(ids) == 16
    assert server.wait_idle().active_sequences == 0


_STREAMS_CLIENT = """
import sys
from concurrent.futures import ThreadPoolExecutor
import grpc, grpc.experimental
from smolrt.v1 import smolrt_pb2 as pb, smolrt_pb2_grpc as rpc

# one thread per stream reads its messages, as most clients do
options = [(grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, 1)]
stub = rpc.InferenceStub(grpc.insecure_channel(sys.argv[1], options=options))

def one(i):
    req = pb.GenerateRequest(
        prompt=f"Story number {i}:",
        sampling=pb.SamplingParameters(temperature=0.8, seed=i),
        stopping=pb.StoppingParameters(max_tokens=64, ignore_eos=True),
    )
    return sum(1 for _ in stub.Generate(req, timeout=120))

with ThreadPoolExecutor(16) as pool:
    assert all(n == 66 for n in pool.map(one, range(16)))  # started, 64 deltas, finished
"""


def test_concurrent_streams_run_together_not_one_after_another(server: ServerThread, engine: Engine) -> None:
    # Admissions take the engine's lock between two steps. When the stepping thread won that
    # lock back every time, a Generate waited for the running streams to end first: 16 streams
    # from another process ran one or two at a time instead of in one batch.
    server.wait_idle()
    client = subprocess.Popen(
        [sys.executable, "-c", _STREAMS_CLIENT, server.address], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    peak = 0
    while client.poll() is None:
        peak = max(peak, engine.active_sequences())
        time.sleep(0.05)
    _, err = client.communicate()
    assert client.returncode == 0, err.decode()
    assert peak >= 12, f"at most {peak} of 16 concurrent streams were in the engine at once"


def test_reflection_lists_both_services_like_grpcurl(server: ServerThread) -> None:
    db = ProtoReflectionDescriptorDatabase(server.channel)
    services = set(db.get_services())
    assert {"smolrt.v1.Inference", "smolrt.v1.Sessions", "grpc.health.v1.Health"} <= services
    pool = DescriptorPool(db)
    sessions = pool.FindServiceByName("smolrt.v1.Sessions")
    assert {"CreateSession", "SendMessage", "Subscribe", "Cancel"} <= {m.name for m in sessions.methods}
    generate = pool.FindServiceByName("smolrt.v1.Inference").methods_by_name["Generate"]
    assert generate.output_type.full_name == "smolrt.v1.Event"


def test_health_serving_with_a_model(server: ServerThread) -> None:
    health = health_pb2_grpc.HealthStub(server.channel)
    for name in ("", "smolrt.v1.Inference", "smolrt.v1.Sessions"):
        resp = health.Check(health_pb2.HealthCheckRequest(service=name))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    ("request_", "code", "needle"),
    [
        (pb.GenerateRequest(prompt="hi", sampling=pb.SamplingParameters(top_p=7)), "INVALID_ARGUMENT", "top_p"),
        (pb.GenerateRequest(prompt="hi", sampling=pb.SamplingParameters(temperature=-1)), "INVALID_ARGUMENT", "temp"),
        (pb.GenerateRequest(prompt="hi", stopping=pb.StoppingParameters(max_tokens=0)), "INVALID_ARGUMENT", "max_tok"),
        (
            pb.GenerateRequest(prompt="hi", sampling=pb.SamplingParameters(logit_bias={10**9: 1})),
            "INVALID_ARGUMENT",
            "",
        ),
        (pb.GenerateRequest(prompt_token_ids=pb.TokenIds(ids=[42] * 8192)), "INVALID_ARGUMENT", "context"),
        (pb.GenerateRequest(prompt_token_ids=pb.TokenIds(ids=[10**6])), "INVALID_ARGUMENT", "vocabulary"),
        (pb.GenerateRequest(prompt_token_ids=pb.TokenIds()), "INVALID_ARGUMENT", "empty"),
        (pb.GenerateRequest(), "INVALID_ARGUMENT", "prompt"),
        (pb.GenerateRequest(messages=pb.ChatMessages()), "INVALID_ARGUMENT", "messages"),
        (pb.GenerateRequest(prompt="hi", request_id="x" * 500), "INVALID_ARGUMENT", "request_id"),
    ],
)
def test_bad_input_matrix(server: ServerThread, request_: pb.GenerateRequest, code: str, needle: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        list(server.inference.Generate(request_, timeout=30))
    assert info.value.code() == getattr(grpc.StatusCode, code), info.value.details()
    assert needle in info.value.details()
    # ... and the server keeps serving.
    ok = list(
        server.inference.Generate(pb.GenerateRequest(prompt="Hello", stopping=pb.StoppingParameters(max_tokens=2)))
    )
    check_well_formed(ok)


def test_tokenize_detokenize_and_model_info(server: ServerThread, engine: Engine) -> None:
    ids = server.inference.Tokenize(pb.TokenizeRequest(text="Hello world")).ids
    assert list(ids) == engine.tokenize("Hello world")
    assert server.inference.Detokenize(pb.DetokenizeRequest(ids=ids)).text == "Hello world"
    chat_ids = server.inference.Tokenize(pb.TokenizeRequest(messages=QUESTION)).ids
    assert engine.detokenize(chat_ids).endswith("<|im_start|>assistant\n")
    info = server.inference.GetModelInfo(pb.GetModelInfoRequest())
    assert (info.architecture, info.context_length, info.quantization) == ("llama", 8192, "Q4_1")
    assert info.chat_template_present and pb.CAPABILITY_CHAT in info.capabilities
    with pytest.raises(grpc.RpcError) as bad:
        server.inference.Detokenize(pb.DetokenizeRequest(ids=[10**6]))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_sessions_service_is_registered(server: ServerThread) -> None:
    # Whatever the sessions implementation answers, the method exists (never "unknown service").
    stub = rpc.SessionsStub(server.channel)
    try:
        stub.GetSession(pb.GetSessionRequest(session_id="nope"))
    except grpc.RpcError as exc:
        assert exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED)
        assert "Method not found" not in (exc.details() or "")


# --- without a model ---------------------------------------------------------------------------


def test_without_a_model_health_says_not_serving_and_generation_is_unavailable() -> None:
    srv = ServerThread(None)
    try:
        health = health_pb2_grpc.HealthStub(srv.channel)
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as info:
            list(srv.inference.Generate(pb.GenerateRequest(prompt="hi")))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "--model" in info.value.details() and "smolrt pull" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            srv.inference.Tokenize(pb.TokenizeRequest(text="hi"))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        stats = srv.stats()
        assert not stats.model_loaded and stats.active_sequences == 0
    finally:
        srv.stop()


# --- API key -----------------------------------------------------------------------------------


def test_api_key_is_required_except_for_health(engine: Engine) -> None:
    srv = ServerThread(engine, api_key="s3cret")
    try:
        req = pb.GenerateRequest(prompt="Hi", stopping=pb.StoppingParameters(max_tokens=2))
        for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", "s3cret"),)):
            with pytest.raises(grpc.RpcError) as info:
                list(srv.inference.Generate(req, metadata=metadata))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as info:
                srv.inference.GetStats(pb.GetStatsRequest(), metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as info:
            ProtoReflectionDescriptorDatabase(srv.channel).get_services()
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        good = (("authorization", "Bearer s3cret"),)
        check_well_formed(list(srv.inference.Generate(req, metadata=good)))
        health = health_pb2_grpc.HealthStub(srv.channel)
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    finally:
        srv.stop()


# --- limits ------------------------------------------------------------------------------------


def test_full_engine_answers_resource_exhausted(model_path: Path) -> None:
    small = Engine.load(model_path, max_sequences=1, kv_budget_mb=16)
    srv = ServerThread(small)
    try:
        running = srv.inference.Generate(pb.GenerateRequest(prompt="Go on and on:", stopping=ENDLESS))
        next(running)
        with pytest.raises(grpc.RpcError) as info:
            list(srv.inference.Generate(pb.GenerateRequest(prompt="me too")))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        running.cancel()
        assert srv.wait_idle().active_sequences == 0
        check_well_formed(
            list(
                srv.inference.Generate(
                    pb.GenerateRequest(prompt="now me", stopping=pb.StoppingParameters(max_tokens=2))
                )
            )
        )
    finally:
        srv.stop()
        small.close()


def test_max_context_caps_prompt_and_reply(engine: Engine) -> None:
    srv = ServerThread(engine, max_context=16)
    try:
        assert srv.inference.GetModelInfo(pb.GetModelInfoRequest()).context_length == 16
        with pytest.raises(grpc.RpcError) as info:
            list(srv.inference.Generate(pb.GenerateRequest(prompt_token_ids=pb.TokenIds(ids=[42] * 16))))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "context" in info.value.details()
        events = list(
            srv.inference.Generate(
                pb.GenerateRequest(
                    prompt_token_ids=pb.TokenIds(ids=[42] * 10), stopping=pb.StoppingParameters(ignore_eos=True)
                )
            )
        )
        _, _, finished = check_well_formed(events)
        assert finished.reason == pb.FINISH_REASON_LENGTH and finished.usage.total_tokens == 16
    finally:
        srv.stop()


# --- shutdown ----------------------------------------------------------------------------------


def test_graceful_stop_lets_streams_finish_then_refuses_calls(engine: Engine) -> None:
    srv = ServerThread(engine)
    health = health_pb2_grpc.HealthStub(srv.channel)
    watch = health.Watch(health_pb2.HealthCheckRequest())
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    call = srv.inference.Generate(
        pb.GenerateRequest(prompt="Once", stopping=pb.StoppingParameters(max_tokens=40, ignore_eos=True))
    )
    first = next(call)
    stopper = threading.Thread(target=lambda: srv.call(srv.running.stop(grace=30)))
    stopper.start()
    try:
        # Health flips at once, so a load balancer stops sending work while streams drain.
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        # A Watch never ends by itself: left open it would hold the shutdown for the whole grace.
        watch.cancel()
        events = [first, *call]
        _, _, finished = check_well_formed(events)
        assert finished.reason == pb.FINISH_REASON_LENGTH and finished.usage.completion_tokens == 40
        stopper.join(timeout=30)
        assert not stopper.is_alive(), "stop() should return once the last stream finished"
        with pytest.raises(grpc.RpcError) as info:
            srv.inference.GetStats(pb.GetStatsRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        stopper.join(timeout=30)
        srv.stop()


def test_grace_period_over_cancels_streams_and_frees_sequences(engine: Engine) -> None:
    srv = ServerThread(engine)
    call = srv.inference.Generate(pb.GenerateRequest(prompt="On and on", stopping=ENDLESS))
    next(call)
    next(call)
    t0 = time.monotonic()
    srv.call(srv.running.stop(grace=0.3))
    assert time.monotonic() - t0 < 10
    with pytest.raises(grpc.RpcError) as info:
        list(call)
    assert info.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
    deadline = time.monotonic() + 10
    while engine.active_sequences() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.active_sequences() == 0
    srv.stop()


def test_sigterm_stops_smolrt_serve(model_path: Path) -> None:
    env = {**os.environ, "SMOLRT_GRACE_S": "5", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "smolrt", "serve", "--model", str(model_path), "--grpc-port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"gRPC on (\S+:\d+)", line)
        assert match, line
        with grpc.insecure_channel(match.group(1)) as channel:
            stub = rpc.InferenceStub(channel)
            events = list(stub.Generate(pb.GenerateRequest(prompt="Hi", stopping=pb.StoppingParameters(max_tokens=2))))
            check_well_formed(events)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
