"""The smollm3 architecture against llama.cpp, on small random SmolLM3 files.

`tests/fixtures/smollm3_gguf.py` rebuilds each file byte for byte (its sha256 is checked against
the one recorded with the golden values); `tools/make_smollm3_golden.py` recorded what llama.cpp
computes on them. Eight layers make layers 3 and 7 NoPE, so a wrong NoPE rule, a wrong RoPE pair
layout, a wrong GQA head mapping or a misread output matrix all change the logits by whole units.

Tolerances (max abs and RMS of smolrt − llama.cpp over the recorded logits; the logits' standard
deviation is about 5):
- F32: 1e-3 / 1e-4. Both sides compute in f32 and differ only in summation order; measured
  3.2e-5 / 6.4e-6 (tied) and 2.7e-5 / 6.2e-6 (untied).
- Q4_K_M: 1.0 / 0.2. Both quantize activations to Q8_K and the kernels agree bit for bit on most
  rows, but llama.cpp picks its kernel (and how it quantizes activations) by batch size: the
  golden file records how far llama.cpp moves from itself when the same prompt is fed in two
  batches (`reference_self_spread`, up to 0.44), and smolrt differs from it by as much (measured
  0.55 / 0.072). Single rounding flips grow through eight layers of random weights.
- The other quantized files (Q8_0; Q4_0 with Q5_0 / Q5_1; Q5_K_M-shaped; Q3_K with Q2_K; IQ4_XS
  with IQ4_NL) have Q4_K_M's tolerances and its reasons; measured 0.40 / 0.082, 0.35 / 0.064,
  0.48 / 0.083, 0.60 / 0.066 and 0.068 / 0.0099. (Q8_0 allowed 1.6 / 0.45 while candle's kernel,
  which quantizes activations per 256 values where ggml does per 32, multiplied its matrices;
  it measured 0.97 / 0.23 then.)
- F16 with BF16: 0.3 / 0.06. llama.cpp rounds each matmul's activations to the weights' type
  (BF16 keeps 8 significant bits) where smolrt multiplies them in f32; measured 0.088 / 0.023.
RoPE applied on the NoPE layers too moves logits by up to 6.5 (RMS 0.95), outside every tolerance
(`test_rope_on_every_layer_does_not_match` checks that the comparison notices).

Argmax and greedy decoding: F32 must agree at every position and every step. Quantized files
may disagree only where llama.cpp's own top-two margin is within twice the tolerance (a near-tie
that its rounding, not the model, decides), and a greedy continuation must agree up to such a tie.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("numpy")
pytest.importorskip("gguf")

from conftest import default_model_path  # noqa: E402
from fixtures import smollm3_gguf  # noqa: E402

from smolrt import Delta, Engine, InvalidRequestError  # noqa: E402

GOLDEN_DIR = Path(__file__).parent / "golden"

# (max abs, RMS) difference allowed per logit, by variant; see the module docstring.
TOLERANCE = {
    "f32_tied": (1e-3, 1e-4),
    "f32_untied": (1e-3, 1e-4),
    "q8_0_untied": (1.0, 0.2),
    "q4_k_m_tied": (1.0, 0.2),
    "q4_0_q5_untied": (1.0, 0.2),
    "q5_k_m_untied": (1.0, 0.2),
    "q3_k_q2_k_untied": (1.0, 0.2),
    "iq4_xs_nl_tied": (1.0, 0.2),
    "f16_bf16_untied": (0.3, 0.06),
}


def golden(variant: str) -> dict[str, Any]:
    return json.loads((GOLDEN_DIR / f"smollm3_{variant}.json").read_text())


@pytest.fixture(scope="module")
def tokenizer_model() -> Path:
    path = default_model_path()
    if path is None or not path.is_file():
        pytest.skip("the default model (tokenizer source of the SmolLM3 test files) is not installed")
    return path


@pytest.fixture(scope="module", params=sorted(TOLERANCE))
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tokenizer_model: Path):
    variant = request.param
    ref = golden(variant)
    path = smollm3_gguf.write_smollm3(tmp_path_factory.mktemp("smollm3") / f"{variant}.gguf", variant, tokenizer_model)
    assert smollm3_gguf.sha256(path) == ref["sha256"], (
        f"{path.name} is not the file the golden values were recorded on (the builder, its numpy/gguf, "
        "or the tokenizer source changed): rerun tools/make_smollm3_golden.py"
    )
    # The references were recorded with llama.cpp's KV cache in f32: compare like with like.
    engine = Engine.load(path, kv_type="f32")
    yield variant, ref, engine
    engine.close()
    path.unlink()


def test_variant_list_matches_builder() -> None:
    assert set(TOLERANCE) == set(smollm3_gguf.VARIANTS)
    assert all((GOLDEN_DIR / f"smollm3_{v}.json").is_file() for v in TOLERANCE)


def test_loads_as_smollm3(case) -> None:
    variant, _, engine = case
    info = engine.info
    assert info["architecture"] == "smollm3"
    assert (info["n_layer"], info["n_head"], info["n_head_kv"]) == (8, 4, 2)
    # token_embd, output_norm, nine per layer, and output.weight only when untied.
    assert info["tensor_count"] == 2 + 9 * 8 + (0 if smollm3_gguf.VARIANTS[variant].tied else 1)


def test_tokenizes_like_llama_cpp(case) -> None:
    _, ref, engine = case
    for p in ref["prompts"]:
        assert engine.tokenize(p["text"], add_special=False, parse_special=p["parse_special"]) == p["ids"]


def _differences(ref: dict[str, Any], engine: Engine, prompt: dict[str, Any]) -> list[list[float]]:
    """Per position: smolrt − llama.cpp for the 64 subset ids and that position's top 8."""
    top = sorted({t for pos in prompt["positions"] for t in pos["top_ids"]})
    ids = ref["subset_ids"] + top
    column = {t: i for i, t in enumerate(ids)}
    ours = engine.teacher_forced_logits(prompt["ids"], ids)
    out = []
    for row, pos in zip(ours, prompt["positions"], strict=True):
        want = pos["subset_logits"] + pos["top_logits"]
        got = row[: len(ref["subset_ids"])] + [row[column[t]] for t in pos["top_ids"]]
        out.append([g - w for g, w in zip(got, want, strict=True)])
    return out


def test_logits_match_llama_cpp(case) -> None:
    variant, ref, engine = case
    max_tol, rms_tol = TOLERANCE[variant]
    diffs = [d for p in ref["prompts"] for row in _differences(ref, engine, p) for d in row]
    worst = max(abs(d) for d in diffs)
    rms = math.sqrt(sum(d * d for d in diffs) / len(diffs))
    assert worst <= max_tol and rms <= rms_tol, f"{variant}: max |diff| {worst:.3g}, rms {rms:.3g}"


def _near_tie(variant: str, margin: float) -> bool:
    return margin <= 2 * TOLERANCE[variant][0]


def test_argmax_matches_llama_cpp(case) -> None:
    variant, ref, engine = case
    for p in ref["prompts"]:
        ours = engine.teacher_forced_argmax(p["ids"])
        for i, (got, pos) in enumerate(zip(ours, p["positions"], strict=True)):
            if got == pos["argmax"]:
                continue
            margin = pos["top_logits"][0] - pos["top_logits"][1]
            assert _near_tie(variant, margin) and not variant.startswith("f32"), (
                f"{variant} position {i}: argmax {got}, llama.cpp {pos['argmax']} (its margin {margin:.3g})"
            )


def test_greedy_continuation_matches_llama_cpp(case) -> None:
    variant, ref, engine = case
    for p in ref["prompts"]:
        want = p["continuation"]
        events = engine.generate(p["ids"], max_tokens=len(want), temperature=0, ignore_eos=True)
        got = [t for e in events if isinstance(e, Delta) for t in e.token_ids]
        assert len(got) == len(want)
        if got == want:
            continue
        first = next(i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
        margin = p["continuation_margins"][first]
        assert _near_tie(variant, margin) and not variant.startswith("f32"), (
            f"{variant}: continuation differs at step {first}: {got} vs llama.cpp {want} (its margin {margin:.3g})"
        )


def test_rope_on_every_layer_does_not_match(tmp_path: Path, tokenizer_model: Path) -> None:
    # The same tensors written as `llama` make smolrt apply RoPE on every layer, NoPE layers
    # included: the comparison above must reject that by a wide margin, or it proves nothing
    # about the NoPE rule.
    variant = "f32_tied"
    ref = golden(variant)
    path = smollm3_gguf.write_smollm3(tmp_path / "as_llama.gguf", variant, tokenizer_model, arch="llama")
    with Engine.load(path) as engine:
        diffs = [d for p in ref["prompts"] for row in _differences(ref, engine, p) for d in row]
        argmax_differs = sum(
            got != pos["argmax"]
            for p in ref["prompts"]
            for got, pos in zip(engine.teacher_forced_argmax(p["ids"]), p["positions"], strict=True)
        )
    rms = math.sqrt(sum(d * d for d in diffs) / len(diffs))
    positions = sum(len(p["ids"]) for p in ref["prompts"])
    assert rms > 100 * TOLERANCE[variant][1] and max(abs(d) for d in diffs) > 1.0
    assert argmax_differs >= positions // 10, f"only {argmax_differs} of {positions} argmaxes moved"


@pytest.mark.parametrize("case", ["f32_tied"], indirect=True)
def test_teacher_forced_logits_agree_with_argmax(case) -> None:
    _, ref, engine = case
    ids = ref["prompts"][0]["ids"][:6]
    vocab = engine.info["vocab_size"]
    rows = engine.teacher_forced_logits(ids, list(range(vocab)))
    assert [max(range(vocab), key=row.__getitem__) for row in rows] == engine.teacher_forced_argmax(ids)
    # Order follows the request, duplicates included.
    assert engine.teacher_forced_logits(ids, [7, 3, 7])[2] == [rows[2][7], rows[2][3], rows[2][7]]
    with pytest.raises(InvalidRequestError, match="outside the vocabulary"):
        engine.teacher_forced_logits(ids, [vocab])
