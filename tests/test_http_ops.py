"""Operations over HTTP: health, readiness, metrics, the API key, OpenAPI, and serving without a model."""

from __future__ import annotations

import re

import httpx
import pytest
from fixtures.grpc_server import ServerThread

from smolrt import Engine
from smolrt.errors import UnavailableError
from smolrt.server.settings import Settings, add_arguments


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from Prometheus text (0 when the series does not exist yet)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if m and m.group(1) == name:
            got = ",".join(sorted((m.group(2) or "").split(","))) if m.group(2) else ""
            if got == want:
                return float(m.group(3))
    return 0.0


def test_health_ready_and_openapi(server: ServerThread, engine: Engine) -> None:
    with httpx.Client(base_url=server.http_url) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        spec = http.get("/openapi.json").json()
        for path in ("/v1/chat/completions", "/v1/completions", "/v1/models", "/api/sessions/{session_id}/events"):
            assert path in spec["paths"]
        page = http.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert http.get("/web/app.js").status_code == 200


def test_metrics_move_after_a_request(server: ServerThread) -> None:
    with httpx.Client(base_url=server.http_url, timeout=60) as http:
        before = http.get("/metrics")
        assert before.headers["content-type"].startswith("text/plain")
        body = http.post("/v1/completions", json={"prompt": "Hello", "max_tokens": 5, "temperature": 0}).json()
        after = http.get("/metrics").text
    b = before.text
    route = {"route": "/v1/completions", "method": "POST", "status": "200"}
    assert metric(after, "smolrt_http_requests_total", **route) == metric(b, "smolrt_http_requests_total", **route) + 1
    generated = body["usage"]["completion_tokens"]
    assert metric(after, "smolrt_generated_tokens_total") == metric(b, "smolrt_generated_tokens_total") + generated
    prompt = body["usage"]["prompt_tokens"]
    assert metric(after, "smolrt_prompt_tokens_total") == metric(b, "smolrt_prompt_tokens_total") + prompt
    for hist in ("smolrt_time_to_first_token_seconds_count", "smolrt_time_per_output_token_seconds_count"):
        assert metric(after, hist) == metric(b, hist) + 1
    for gauge in ("smolrt_active_sequences", "smolrt_queued_requests", "smolrt_kv_blocks_in_use", "smolrt_sessions"):
        assert re.search(rf"^{gauge} \d", after, re.M), gauge
    assert metric(after, "smolrt_kv_blocks_total") > 0 and metric(after, "smolrt_model_loaded") == 1
    # Generations through gRPC count too: the counters are engine-wide.
    from smolrt.v1 import smolrt_pb2 as pb

    list(server.inference.Generate(pb.GenerateRequest(prompt="Hi", stopping=pb.StoppingParameters(max_tokens=3))))
    with httpx.Client(base_url=server.http_url) as http:
        later = http.get("/metrics").text
    assert metric(later, "smolrt_generated_tokens_total") == metric(after, "smolrt_generated_tokens_total") + 3


def test_api_key_guards_every_route_but_health(engine: Engine) -> None:
    srv = ServerThread(engine, api_key="s3cret")
    try:
        with httpx.Client(base_url=srv.http_url, timeout=60) as http:
            assert http.get("/healthz").status_code == 200
            assert http.get("/readyz").status_code == 200
            assert http.get("/").status_code == 200  # the page is static and asks for the key itself
            guarded = [
                ("GET", "/v1/models"),
                ("POST", "/v1/chat/completions"),
                ("POST", "/v1/completions"),
                ("GET", "/api/sessions"),
                ("POST", "/api/sessions"),
                ("GET", "/api/sessions/x/events"),
                ("GET", "/metrics"),
                ("GET", "/openapi.json"),
                ("GET", "/no/such/route"),
            ]
            for method, path in guarded:
                for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                    r = http.request(method, path, headers=headers)
                    assert r.status_code == 401, (method, path, headers)
                    assert r.headers["www-authenticate"] == "Bearer"
                    err = r.json()["error"]
                    assert err["type"] == "authentication_error" and err["code"] == "unauthenticated"
            auth = {"Authorization": "Bearer s3cret"}
            assert http.get("/v1/models", headers=auth).status_code == 200
            assert http.get("/metrics", headers=auth).status_code == 200
            r = http.post("/v1/completions", headers=auth, json={"prompt": "Hi", "max_tokens": 2})
            assert r.status_code == 200
            # Rejections are counted too.
            assert 'route="unmatched"' in http.get("/metrics", headers=auth).text
    finally:
        srv.stop()


def test_no_model_is_a_503_not_a_crash() -> None:
    srv = ServerThread(None)
    try:
        with httpx.Client(base_url=srv.http_url) as http:
            assert http.get("/healthz").status_code == 200
            ready = http.get("/readyz")
            assert ready.status_code == 503 and "smolrt pull" in ready.json()["message"]
            for method, path, body in (
                ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
                ("POST", "/api/sessions", {}),
                ("GET", "/api/sessions", None),
            ):
                r = http.request(method, path, json=body)
                assert r.status_code == 503, path
                assert r.json()["error"]["code"] == "unavailable"
            assert http.get("/v1/models").json()["data"] == []
            assert "smolrt_model_loaded 0.0" in http.get("/metrics").text
    finally:
        srv.stop()


def test_http_port_setting_and_a_taken_port(engine: Engine) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert Settings.from_args(parser.parse_args(["--http-port", "9000"]), {}).http_port == 9000
    assert Settings.from_args(parser.parse_args(["--no-http"]), {}).http_port == -1
    assert Settings.from_args(parser.parse_args([]), {"SMOLRT_HTTP_PORT": "0"}).http_port == 0
    assert Settings().http_port == 8080
    off = ServerThread(engine, http_port=-1)
    try:
        assert off.http_url is None and off.running.http_port is None
    finally:
        off.stop()
    first = ServerThread(engine)
    try:
        with pytest.raises(UnavailableError, match="HTTP"):
            ServerThread(engine, http_port=first.running.http_port)
    finally:
        first.stop()
