"""The OpenAI-compatible routes on a real server: shapes, streaming, logprobs, reasoning, errors."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fixtures.grpc_server import ServerThread
from fixtures.tiny_gguf import THINK_CLOSE_ID, write_tiny_llama

from smolrt import Engine

USER = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0, "max_tokens": 8}
ERROR_KEYS = {"message", "type", "param", "code"}


def model_id(engine: Engine) -> str:
    return Path(engine.path).name.removesuffix(".gguf")


def data_lines(response: httpx.Response) -> list[str]:
    """The payloads of a `data: ...` stream; asserts every non-blank line is a data line."""
    out = []
    for line in response.iter_lines():
        if line:
            assert line.startswith("data: "), line
            out.append(line[len("data: ") :])
    return out


def test_chat_completion_matches_the_library(http: httpx.Client, engine: Engine) -> None:
    r = http.post("/v1/chat/completions", json={"model": model_id(engine), "messages": USER, **GREEDY})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == model_id(engine)
    (choice,) = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] in ("stop", "length")
    assert choice["message"]["role"] == "assistant"
    assert "reasoning_content" not in choice["message"]
    expected = engine.chat(USER, **GREEDY).text()
    assert choice["message"]["content"] == expected and expected.strip()
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens"] == len(engine.chat_prompt(USER))
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0


def test_streamed_chat_equals_the_unstreamed_one_and_ends_with_usage_and_done(http: httpx.Client) -> None:
    whole = http.post("/v1/chat/completions", json={"messages": USER, **GREEDY}).json()
    req = {"messages": USER, "stream": True, "stream_options": {"include_usage": True}, **GREEDY}
    with http.stream("POST", "/v1/chat/completions", json=req) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = data_lines(r)
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(x) for x in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    *body, final, usage_chunk = chunks
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in body)
    assert text == whole["choices"][0]["message"]["content"]
    assert len(body) > 2  # token by token, not one lump
    assert final["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == whole["usage"]
    # Without include_usage there is no usage anywhere.
    with http.stream("POST", "/v1/chat/completions", json={"messages": USER, "stream": True, **GREEDY}) as r:
        plain = [json.loads(x) for x in data_lines(r)[:-1]]
    assert all("usage" not in c for c in plain) and plain[-1]["choices"][0]["finish_reason"]


def test_chat_logprobs(http: httpx.Client, engine: Engine) -> None:
    req = {"messages": USER, "logprobs": True, "top_logprobs": 3, "seed": 7, "stop": ["\n"], **GREEDY}
    body = http.post("/v1/chat/completions", json=req).json()
    entries = body["choices"][0]["logprobs"]["content"]
    assert len(entries) == body["usage"]["completion_tokens"]
    assert "".join(e["token"] for e in entries).startswith(body["choices"][0]["message"]["content"])
    for e in entries:
        assert e["logprob"] <= 0 and len(e["top_logprobs"]) == 3
        assert bytes(e["bytes"]).decode(errors="replace") == e["token"]
        # Greedy: the chosen token is the most likely one.
        assert e["top_logprobs"][0]["token"] == e["token"]
        assert e["top_logprobs"][0]["logprob"] == pytest.approx(e["logprob"])


def test_completions_streamed_and_not(http: httpx.Client, engine: Engine) -> None:
    req = {"prompt": "Once upon a time", "temperature": 0, "max_tokens": 6, "logprobs": 2}
    body = http.post("/v1/completions", json=req).json()
    assert body["object"] == "text_completion"
    (choice,) = body["choices"]
    assert choice["text"] == engine.generate("Once upon a time", temperature=0, max_tokens=6).text()
    assert choice["finish_reason"] == "length" and body["usage"]["completion_tokens"] == 6
    lp = choice["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == 6
    assert "".join(lp["tokens"]) == choice["text"] and lp["text_offset"][0] == 0
    assert all(len(t) <= 2 for t in lp["top_logprobs"])
    # Token ids work as a prompt too, and default max_tokens is OpenAI's 16.
    ids = engine.tokenize("Once upon a time")
    by_ids = http.post("/v1/completions", json={"prompt": ids, "temperature": 0}).json()
    assert by_ids["usage"]["completion_tokens"] <= 16 and by_ids["usage"]["prompt_tokens"] == len(ids)
    with http.stream("POST", "/v1/completions", json={**req, "stream": True}) as r:
        lines = data_lines(r)
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(x) for x in lines[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks) == choice["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_models(http: httpx.Client, engine: Engine) -> None:
    listed = http.get("/v1/models").json()
    assert listed["object"] == "list"
    assert [m["id"] for m in listed["data"]] == [model_id(engine)]
    assert http.get(f"/v1/models/{model_id(engine)}").json()["owned_by"] == "smolrt"
    missing = http.get("/v1/models/gpt-4o")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("change", "status", "param"),
    [
        ({"n": 2}, 400, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, 400, "tools"),
        ({"tool_choice": "auto"}, 400, "tool_choice"),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, 400, "response_format"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, 400, "audio"),
        ({"modalities": ["text", "audio"]}, 400, "modalities"),
        ({"reasoning_effort": "high"}, 400, "reasoning_effort"),
        ({"store": True}, 400, "store"),
        ({"stream_options": {"include_usage": True}}, 400, "stream_options"),
        ({"top_logprobs": 2}, 400, "top_logprobs"),
        ({"temperature": 7}, 400, "temperature"),
        ({"logit_bias": {"not-a-token": 1}}, 400, "logit_bias"),
        ({"frobnicate": True}, 400, "frobnicate"),
        ({"messages": []}, 400, "messages"),
        ({"messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]}, 400, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            400,
            "messages[0].content[0]",
        ),
        ({"model": "gpt-4o"}, 404, None),
    ],
)
def test_errors_in_the_openai_shape(http: httpx.Client, change: dict, status: int, param: str | None) -> None:
    req = {"messages": USER, "max_tokens": 2, **change}
    r = http.post("/v1/chat/completions", json=req)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == ERROR_KEYS and err["message"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param


def test_engine_side_errors_and_bad_json(http: httpx.Client) -> None:
    r = http.post("/v1/chat/completions", json={"messages": USER, "top_k": 10**12})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    r = http.post("/v1/completions", json={"prompt": "x" * 50_000, "max_tokens": 1})
    assert r.status_code == 400 and "context" in r.json()["error"]["message"]
    r = http.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and set(r.json()["error"]) == ERROR_KEYS
    r = http.post("/v1/completions", json={"prompt": ["a", "b"]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"


@pytest.fixture(scope="module")
def thinker_http(tmp_path_factory: pytest.TempPathFactory):
    path = write_tiny_llama(tmp_path_factory.mktemp("think") / "think.gguf", thinking=True)
    with Engine.load(path) as eng:
        srv = ServerThread(eng)
        with httpx.Client(base_url=srv.http_url, timeout=60) as client:
            yield client
        srv.stop()


def test_reasoning_comes_back_as_reasoning_content(thinker_http: httpx.Client) -> None:
    stay = {"temperature": 0, "max_tokens": 6, "ignore_eos": True, "logit_bias": {str(THINK_CLOSE_ID): -100}}
    req = {"messages": [{"role": "user", "content": "hi"}], "enable_thinking": True, **stay}
    body = thinker_http.post("/v1/chat/completions", json=req).json()
    message = body["choices"][0]["message"]
    assert message["content"] == "" and message["reasoning_content"]
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == body["usage"]["completion_tokens"] == 6
    with thinker_http.stream("POST", "/v1/chat/completions", json={**req, "stream": True}) as r:
        chunks = [json.loads(x) for x in data_lines(r)[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks[1:-1]]
    assert deltas and all(set(d) == {"reasoning_content"} for d in deltas)
    assert "".join(d["reasoning_content"] for d in deltas) == message["reasoning_content"]
    # Thinking off (here through vLLM's chat_template_kwargs): the reply is all content.
    off = {**req, "enable_thinking": None, "chat_template_kwargs": {"enable_thinking": False}, "logit_bias": None}
    body = thinker_http.post("/v1/chat/completions", json=off).json()
    assert "reasoning_content" not in body["choices"][0]["message"]
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0
