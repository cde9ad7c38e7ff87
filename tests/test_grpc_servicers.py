"""Servicer unit tests with grpcio-testing, plus the status table, settings and wire conversions.

grpc_testing drives servicers synchronously; `AsyncServicerShim` runs each of our async handlers on
a private event loop so the real servicer code runs under grpc_testing's fake server and context.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any

import grpc
import grpc_testing
import pytest

import smolrt
from smolrt.errors import SmolrtError
from smolrt.server.convert import merge_parameters, params_from_proto
from smolrt.server.inference import InferenceServicer
from smolrt.server.settings import Settings
from smolrt.server.status import STATUS_TABLE, status_for
from smolrt.v1 import smolrt_pb2 as pb

INFERENCE = pb.DESCRIPTOR.services_by_name["Inference"]


class AsyncServicerShim:
    def __init__(self, servicer: Any) -> None:
        self._servicer = servicer
        self._loop = asyncio.new_event_loop()
        # grpc_testing runs handlers on its own threads and may report a call's end before the
        # handler returns; the lock keeps close() from racing a handler still on the loop.
        self._lock = threading.Lock()

    def _run(self, awaitable: Any) -> Any:
        with self._lock:
            return self._loop.run_until_complete(awaitable)

    def close(self) -> None:
        with self._lock:
            self._loop.close()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._servicer, name)
        if inspect.isasyncgenfunction(method):

            def stream(request: Any, context: Any) -> Any:
                agen = method(request, context)
                try:
                    while True:
                        try:
                            yield self._run(agen.__anext__())
                        except StopAsyncIteration:
                            return
                finally:
                    self._run(agen.aclose())

            return stream
        return lambda request, context: self._run(method(request, context))


def make_server(engine: Any, **settings: Any) -> tuple[Any, AsyncServicerShim]:
    shim = AsyncServicerShim(InferenceServicer(engine, Settings(**settings)))
    server = grpc_testing.server_from_dictionary({INFERENCE: shim}, grpc_testing.strict_real_time())
    return server, shim


def unary(server: Any, method: str, request: Any) -> tuple[Any, grpc.StatusCode, str]:
    rpc = server.invoke_unary_unary(INFERENCE.methods_by_name[method], (), request, None)
    response, _, code, details = rpc.termination()
    return response, code, details


def streaming(server: Any, method: str, request: Any) -> tuple[list[Any], grpc.StatusCode, str]:
    rpc = server.invoke_unary_stream(INFERENCE.methods_by_name[method], (), request, None)
    events = []
    while True:
        try:
            events.append(rpc.take_response())
        except ValueError:
            break  # grpc_testing: no more responses (the handler finished)
    _, code, details = rpc.termination()
    return events, code, details


# --- without a model (no model file needed) -------------------------------------------------------


@pytest.fixture
def no_model():
    server, shim = make_server(None)
    yield server
    shim.close()


def test_generate_without_a_model_is_unavailable_and_says_how_to_load_one(no_model: Any) -> None:
    events, code, details = streaming(no_model, "Generate", pb.GenerateRequest(prompt="hi"))
    assert events == []
    assert code == grpc.StatusCode.UNAVAILABLE
    assert "--model" in details and "smolrt pull" in details


@pytest.mark.parametrize(
    ("method", "request_"),
    [
        ("Tokenize", pb.TokenizeRequest(text="hi")),
        ("Detokenize", pb.DetokenizeRequest(ids=[1])),
        ("GetModelInfo", pb.GetModelInfoRequest()),
        ("Cancel", pb.CancelGenerateRequest(request_id="x")),
    ],
)
def test_model_rpcs_without_a_model_are_unavailable(no_model: Any, method: str, request_: Any) -> None:
    _, code, _ = unary(no_model, method, request_)
    assert code == grpc.StatusCode.UNAVAILABLE


def test_stats_without_a_model(no_model: Any) -> None:
    stats, code, _ = unary(no_model, "GetStats", pb.GetStatsRequest())
    assert code == grpc.StatusCode.OK
    assert not stats.model_loaded and stats.active_sequences == 0 and stats.running_requests == 0


# --- with the real model ------------------------------------------------------------------------


@pytest.fixture
def with_model(engine: Any):
    server, shim = make_server(engine)
    yield server
    shim.close()


def test_generate_streams_started_deltas_finished(with_model: Any) -> None:
    req = pb.GenerateRequest(
        prompt="The capital of France is",
        sampling=pb.SamplingParameters(temperature=0, logprobs=True, top_logprobs=2),
        stopping=pb.StoppingParameters(max_tokens=4, ignore_eos=True),
        request_id="unit-1",
    )
    events, code, _ = streaming(with_model, "Generate", req)
    assert code == grpc.StatusCode.OK
    kinds = [e.WhichOneof("kind") for e in events]
    assert kinds == ["started", "delta", "delta", "delta", "delta", "finished"]
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[0].started.request_id == "unit-1"
    for e in events[1:-1]:
        assert len(e.delta.logprobs) == len(e.delta.token_ids) == 1
        lp = e.delta.logprobs[0]
        assert lp.token_id == e.delta.token_ids[0] and lp.logprob <= 0 and len(lp.top) == 2
    fin = events[-1].finished
    assert fin.reason == pb.FINISH_REASON_LENGTH and fin.usage.completion_tokens == 4


def test_generate_rejects_bad_parameters_before_starting(with_model: Any) -> None:
    req = pb.GenerateRequest(prompt="hi", sampling=pb.SamplingParameters(top_p=7))
    events, code, details = streaming(with_model, "Generate", req)
    assert events == [] and code == grpc.StatusCode.INVALID_ARGUMENT and "top_p" in details


def test_cancel_of_unknown_request_is_not_found(with_model: Any) -> None:
    _, code, details = unary(with_model, "Cancel", pb.CancelGenerateRequest(request_id="nope"))
    assert code == grpc.StatusCode.NOT_FOUND and "nope" in details


def test_tokenize_round_trip(with_model: Any, engine: Any) -> None:
    resp, code, _ = unary(with_model, "Tokenize", pb.TokenizeRequest(text="Hello world", add_special=False))
    assert code == grpc.StatusCode.OK and list(resp.ids) == engine.tokenize("Hello world", add_special=False)
    text, code, _ = unary(with_model, "Detokenize", pb.DetokenizeRequest(ids=resp.ids))
    assert text.text == "Hello world"
    _, code, _ = unary(with_model, "Tokenize", pb.TokenizeRequest())
    assert code == grpc.StatusCode.INVALID_ARGUMENT


# --- the status table ---------------------------------------------------------------------------


def _all_error_classes() -> list[type[SmolrtError]]:
    return [c for c in vars(smolrt.errors).values() if isinstance(c, type) and issubclass(c, SmolrtError)]


def test_every_error_code_has_a_status_and_only_internal_is_internal() -> None:
    for cls in _all_error_classes():
        status, message = status_for(cls("boom"))
        assert message == "boom"
        assert (status.grpc == grpc.StatusCode.INTERNAL) == (cls.code == "internal"), cls
    expected = {
        "invalid_request": grpc.StatusCode.INVALID_ARGUMENT,
        "not_found": grpc.StatusCode.NOT_FOUND,
        "failed_precondition": grpc.StatusCode.FAILED_PRECONDITION,
        "resource_exhausted": grpc.StatusCode.RESOURCE_EXHAUSTED,
        "out_of_range": grpc.StatusCode.OUT_OF_RANGE,
        "unavailable": grpc.StatusCode.UNAVAILABLE,
        "cancelled": grpc.StatusCode.CANCELLED,
        "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    }
    assert {code: STATUS_TABLE[code].grpc for code in expected} == expected
    assert STATUS_TABLE["resource_exhausted"].http == 429 and STATUS_TABLE["unavailable"].http == 503


def test_a_non_smolrt_exception_is_internal() -> None:
    status, message = status_for(KeyError("x"))
    assert status.grpc == grpc.StatusCode.INTERNAL and "KeyError" in message


# --- settings -----------------------------------------------------------------------------------


def test_settings_flags_beat_environment_beat_defaults() -> None:
    import argparse

    from smolrt.server.settings import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    env = {"SMOLRT_GRPC_PORT": "6000", "SMOLRT_HOST": "0.0.0.0", "SMOLRT_API_KEY": "s3cr3t", "SMOLRT_GRACE_S": "2.5"}
    s = Settings.from_args(parser.parse_args(["--grpc-port", "7000"]), env)
    assert (s.grpc_port, s.host, s.api_key, s.grace_s) == (7000, "0.0.0.0", "s3cr3t", 2.5)
    assert s.kv_budget_mb == Settings().kv_budget_mb
    assert Settings.from_env({}) == Settings()
    assert "s3cr3t" not in str(s.redacted())
    # every KV cache type the engine stores, from a flag or the environment
    assert Settings.from_args(parser.parse_args(["--kv-type", "q8"]), {}).kv_type == "q8"
    assert Settings.from_env({"SMOLRT_KV_TYPE": "Q8"}).kv_type == "Q8"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"SMOLRT_GRPC_PORT": "lots"}, "SMOLRT_GRPC_PORT"),
        ({"SMOLRT_GRPC_PORT": "70000"}, "grpc_port"),
        ({"SMOLRT_KV_TYPE": "q4_0"}, "kv_type"),
    ],
)
def test_bad_settings_are_rejected(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SmolrtError, match=needle):
        Settings.from_env(env)


# --- conversions --------------------------------------------------------------------------------


def test_unset_parameters_keep_engine_defaults() -> None:
    assert params_from_proto(pb.SamplingParameters(), pb.StoppingParameters()) == {}
    params = params_from_proto(
        pb.SamplingParameters(temperature=0, top_k=5, logit_bias={7: -1.5}),
        pb.StoppingParameters(max_tokens=3, stop=["\n"], stop_token_ids=[2]),
    )
    assert params == {
        "temperature": 0,
        "top_k": 5,
        "logit_bias": {7: -1.5},
        "max_tokens": 3,
        "stop": ["\n"],
        "stop_token_ids": [2],
    }


def test_merge_parameters_overrides_field_by_field_and_replaces_lists() -> None:
    base = (pb.SamplingParameters(temperature=0.5, top_k=10), pb.StoppingParameters(max_tokens=100, stop=["a"]))
    sampling, stopping = merge_parameters(base, (pb.SamplingParameters(top_k=3), pb.StoppingParameters(stop=["b"])))
    assert (sampling.temperature, sampling.top_k) == (0.5, 3)
    assert (stopping.max_tokens, list(stopping.stop)) == (100, ["b"])
    sampling, stopping = merge_parameters(base, (None, None))
    assert list(stopping.stop) == ["a"] and sampling.top_k == 10
