"""Bad input gets the matching SmolrtError with a clear message; the engine keeps serving."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.tiny_gguf import write_tiny_llama

import smolrt
from smolrt import Delta, Engine, InternalError, InvalidRequestError, ModelLoadError, SmolrtError


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"top_p": 7}, "top_p"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": -1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_k": -3}, "top_k"),
        ({"min_p": 2}, "min_p"),
        ({"top_logprobs": 99}, "top_logprobs"),
        ({"logit_bias": {10**9: 1.0}}, "logit_bias"),
        ({"stop": [""]}, "stop"),
        ({"stop": 5}, "stop"),
        ({"temperature": "hot"}, "temperature"),
        ({"seed": -1}, "seed"),
        ({"flavour": "vanilla"}, "unknown parameter"),
    ],
)
def test_bad_sampling_values(engine: Engine, params: dict, needle: str) -> None:
    with pytest.raises(InvalidRequestError, match=needle) as info:
        engine.generate("hi", **params)
    assert info.value.code == "invalid_request"


def test_prompt_past_the_context(engine: Engine) -> None:
    ids = [42] * engine.info["context_length"]
    with pytest.raises(InvalidRequestError, match="context"):
        engine.generate(ids, max_tokens=1)


def test_empty_prompt_and_bad_token_ids(engine: Engine) -> None:
    with pytest.raises(InvalidRequestError, match="empty"):
        engine.generate([], max_tokens=1)
    with pytest.raises(InvalidRequestError, match="vocabulary"):
        engine.generate([10**6], max_tokens=1)
    with pytest.raises(InvalidRequestError):
        engine.generate([-5], max_tokens=1)


def test_engine_keeps_serving_after_errors(engine: Engine) -> None:
    for bad in ({"top_p": 7}, {"max_tokens": -1}):
        with pytest.raises(SmolrtError):
            engine.generate("hi", **bad)
    text = engine.generate("The capital of France is", max_tokens=3, temperature=0).text()
    assert text.strip()


def test_panic_surfaces_as_internal_error() -> None:
    with pytest.raises(InternalError, match="panic"):
        smolrt._core._raise_panic_for_tests()


def test_missing_file() -> None:
    with pytest.raises(ModelLoadError, match="nope.gguf"):
        Engine.load("/nonexistent/nope.gguf")


def test_not_a_gguf(tmp_path: Path) -> None:
    p = tmp_path / "x.gguf"
    p.write_bytes(b"PK\x03\x04 definitely a zip file" * 10)
    with pytest.raises(ModelLoadError, match="magic"):
        Engine.load(p)


def test_truncated_real_model(tmp_path: Path, model_path: Path) -> None:
    data = model_path.read_bytes()
    for cut in (10, 4096, len(data) // 2, len(data) - 1):
        p = tmp_path / f"cut{cut}.gguf"
        p.write_bytes(data[:cut])
        with pytest.raises(ModelLoadError):
            Engine.load(p)


def test_tiny_synthetic_model_loads_and_generates(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "tiny.gguf")
    with Engine.load(path) as eng:
        assert eng.info["n_layer"] == 2
        ev = list(eng.generate([5, 6, 7], max_tokens=4, temperature=0, ignore_eos=True))
        assert ev[-1].usage.completion_tokens == 4


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "F16"])
def test_tiny_model_in_each_quant_type(tmp_path: Path, qtype: str) -> None:
    path = write_tiny_llama(tmp_path / f"tiny-{qtype}.gguf", qtype=qtype)
    with Engine.load(path) as eng:
        assert eng.info["tensor_types"].get(qtype, 0) > 0
        ev = list(eng.generate([5, 6, 7], max_tokens=3, temperature=0, ignore_eos=True))
        assert ev[-1].usage.completion_tokens == 3


def test_unknown_architecture(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "mamba.gguf", arch="mamba9")
    with pytest.raises(ModelLoadError, match="unsupported architecture 'mamba9'"):
        Engine.load(path)


def test_missing_and_misshapen_tensors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="blk.1.ffn_up.weight"):
        Engine.load(write_tiny_llama(tmp_path / "a.gguf", drop_tensor="blk.1.ffn_up.weight"))
    with pytest.raises(ModelLoadError, match="blk.0.attn_k.weight"):
        Engine.load(write_tiny_llama(tmp_path / "b.gguf", bad_shape="blk.0.attn_k.weight"))


def test_kv_pool_too_small_for_a_prompt(tmp_path: Path) -> None:
    # the 1 MB pool holds 4096 positions in f16: a context past that, so the pool runs out first
    path = write_tiny_llama(tmp_path / "tiny.gguf", context_length=8192)
    with Engine.load(path, kv_budget_mb=1) as eng:
        blocks = eng.kv_stats()["blocks_total"]
        size = eng.kv_stats()["block_size"]
        too_long = [5] * (blocks * size)
        with pytest.raises(smolrt.ResourceExhaustedError, match="KV"):
            eng.generate(too_long, max_tokens=1)
        # A prompt that fits still runs.
        assert eng.generate([5] * (size * 2), max_tokens=2, ignore_eos=True).text() is not None


def test_kv_cache_type_is_a_load_option(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "tiny.gguf")
    with Engine.load(path, kv_budget_mb=1) as half, Engine.load(path, kv_budget_mb=1, kv_type="F32") as full:
        assert (half.info["kv_type"], full.info["kv_type"]) == ("f16", "f32")
        h, f = half.kv_stats(), full.kv_stats()
        assert (h["kv_type"], f["kv_type"]) == ("f16", "f32")
        # f16 blocks take half the bytes, so the same budget holds twice as many
        assert (h["bytes_per_block"] * 2, h["blocks_total"]) == (f["bytes_per_block"], 2 * f["blocks_total"])
        for eng in (half, full):
            ev = list(eng.generate([5, 6, 7], max_tokens=3, temperature=0, ignore_eos=True))
            assert ev[-1].usage.completion_tokens == 3
    with pytest.raises(InvalidRequestError, match="q8_0"):
        Engine.load(path, kv_type="q8_0")


def test_a_q8_kv_cache_holds_more_tokens_and_generates_what_f16_does(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "tiny.gguf")
    with Engine.load(path, kv_budget_mb=1) as f16, Engine.load(path, kv_budget_mb=1, kv_type="Q8") as q8:
        h, q = f16.kv_stats(), q8.kv_stats()
        assert (q8.info["kv_type"], q["kv_type"]) == ("q8", "q8")
        # bytes plus a 4-byte scale per head vector: less than f16's two bytes per element
        assert q["bytes_per_block"] < h["bytes_per_block"] and q["blocks_total"] > h["blocks_total"]
        prompt = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]
        ids = [
            [
                t
                for ev in eng.generate(prompt, max_tokens=12, temperature=0, ignore_eos=True)
                if isinstance(ev, Delta)
                for t in ev.token_ids
            ]
            for eng in (f16, q8)
        ]
        assert len(ids[1]) == 12
        # The tiny model's logits are far apart: q8's rounding does not change a greedy pick.
        assert ids[0] == ids[1]
