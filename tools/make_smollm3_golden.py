"""Record llama.cpp's logits on the test SmolLM3 files, as the reference `tests/test_smollm3.py`
checks smolrt against.

Run with a Python that has llama-cpp-python, gguf and numpy (not needed by the tests):

    python tools/make_smollm3_golden.py [--model path/to/SmolLM2-135M-Instruct.Q4_1.gguf]

For each variant of `tests/fixtures/smollm3_gguf.py` it builds the file, checks llama.cpp loads it
as `smollm3`, feeds each prompt in one batch and stores, per position: the top 8 token ids and
logits, the logits of a fixed random subset of 64 ids, and the full-vocabulary argmax; then a
16-token greedy continuation (argmax each step, end-of-text ignored). The file's sha256 is stored
too, so the test knows it rebuilt exactly these bytes.

llama.cpp runs with an f32 KV cache and without flash attention, as the test runs smolrt
(kv_type "f32"): its defaults (f16 cache, f16 flash-attention accumulation) would round the
reference on purpose.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from fixtures import smollm3_gguf  # noqa: E402

PROMPTS = [
    (
        "The old lighthouse keeper climbed the spiral stairs every evening, counting each step, "
        "until the lamp was lit.",
        False,
    ),
    (
        "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n"
        "print(fibonacci(10))",
        False,
    ),
    (
        "<|im_start|>user\nName three rivers in Europe and say which sea each one flows into.<|im_end|>\n"
        "<|im_start|>assistant\nThe Danube flows into the Black Sea, the Rhine",
        True,
    ),
]
TOP_K = 8
N_SUBSET = 64
SUBSET_SEED = 11
N_CONTINUE = 16
GGML_TYPE_F32 = 0


def default_model() -> Path:
    env = os.environ.get("SMOLRT_TEST_MODEL")
    if env:
        return Path(env)
    return REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def load(path: Path):  # type: ignore[no-untyped-def]
    import llama_cpp

    return llama_cpp.Llama(
        model_path=str(path),
        n_ctx=smollm3_gguf.CONTEXT_LENGTH,
        n_batch=smollm3_gguf.CONTEXT_LENGTH,
        n_ubatch=smollm3_gguf.CONTEXT_LENGTH,
        logits_all=True,
        type_k=GGML_TYPE_F32,
        type_v=GGML_TYPE_F32,
        flash_attn=False,
        n_threads=2,
        verbose=False,
    )


def rounded(x: np.ndarray) -> list[float]:
    # 6 decimals is far below any tolerance the test uses, and keeps the JSON small.
    return [round(float(v), 6) for v in x]


def record(path: Path, subset: list[int]) -> list[dict]:
    llm = load(path)
    arch = llm.metadata.get("general.architecture")
    if arch != "smollm3":
        raise SystemExit(f"llama.cpp read {path.name} as {arch!r}, not smollm3")
    out = []
    for text, special in PROMPTS:
        ids = llm.tokenize(text.encode(), add_bos=False, special=special)
        llm.reset()
        llm.eval(ids)
        scores = np.array(llm.scores[: len(ids)], dtype=np.float32)
        positions = []
        for row in scores:
            top = np.argsort(-row, kind="stable")[:TOP_K]
            positions.append(
                {
                    "argmax": int(np.argmax(row)),
                    "top_ids": [int(t) for t in top],
                    "top_logits": rounded(row[top]),
                    "subset_logits": rounded(row[subset]),
                }
            )
        # Greedy continuation, one token per eval as a decoding runtime does.
        cont, margins = [], []
        last = scores[-1]
        for _ in range(N_CONTINUE):
            top2 = np.sort(last)[-2:]
            margins.append(round(float(top2[1] - top2[0]), 6))
            tok = int(np.argmax(last))
            cont.append(tok)
            llm.eval([tok])
            last = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        # The same prompt fed in two batches instead of one: llama.cpp picks different matmul
        # kernels (and activation quantizations) by batch size, so this is how far the reference
        # disagrees with itself, the yardstick for the test's tolerance on quantized files.
        llm.reset()
        split = len(ids) // 3
        llm.eval(ids[:split])
        llm.eval(ids[split:])
        resplit = np.array(llm.scores[: len(ids)], dtype=np.float32)
        self_spread = float(np.abs(resplit[:, subset] - scores[:, subset]).max())
        out.append(
            {"text": text, "parse_special": special, "ids": ids, "positions": positions,
             "continuation": cont, "continuation_margins": margins,
             "reference_self_spread": round(self_spread, 6)}
        )
    llm.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=default_model(), help="the tokenizer source (default model)")
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "golden")
    ap.add_argument("--variants", default="", help="comma-separated variants to record (default: all)")
    args = ap.parse_args()
    wanted = [v for v in args.variants.split(",") if v] or list(smollm3_gguf.VARIANTS)
    import llama_cpp

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in wanted:
            path = smollm3_gguf.write_smollm3(Path(tmp) / f"{name}.gguf", name, args.model)
            vocab = len(next(v for k, v, _, _ in smollm3_gguf.tokenizer_fields(args.model) if k.endswith(".tokens")))
            subset = sorted(np.random.default_rng(SUBSET_SEED).choice(vocab, N_SUBSET, replace=False).tolist())
            golden = {
                "variant": name,
                "sha256": smollm3_gguf.sha256(path),
                "file_bytes": path.stat().st_size,
                "reference": f"llama.cpp via llama-cpp-python {llama_cpp.__version__}, f32 KV, no flash attention",
                "subset_ids": subset,
                "prompts": record(path, subset),
            }
            dest = args.out / f"smollm3_{name}.json"
            dest.write_text(json.dumps(golden, separators=(",", ":")) + "\n")
            print(f"{dest}: {dest.stat().st_size} bytes, sha256 {golden['sha256'][:16]}…")


if __name__ == "__main__":
    main()
