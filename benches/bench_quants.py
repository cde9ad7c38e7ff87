"""Decode and prefill per weight type: the default model requantized by llama.cpp into the common
GGUF types, smolrt beside llama.cpp on each file, same thread count, one run.

    PYTHONPATH=<env with llama-cpp-python> python benches/bench_quants.py [--types Q4_0,Q5_0] [--threads N]

Needs llama-cpp-python (kept out of CI: ~15 minutes to build) to write the files, with
`llama_model_quantize` from the Q4_1 default model (requantizing: each file carries Q4_1's
rounding besides its own, which matters for quality, not for speed). They are kept under
`models/quants/`. SmolLM2's 576-wide rows are not a multiple of 256, so llama.cpp's K-quant
mixes fall back to Q5_0 / Q8_0 for most matrices; the tensor-type column says what each file
holds. `--wide` runs on a synthetic file instead whose rows are multiples of 256, so the
K-quant types are what they say (12 layers, 1024 wide, 2816 FFN, SmolLM2's tokenizer, random
weights in f32, written once under `models/quants/`): speed only, its text is noise.
`--wide=smollm3` has SmolLM3-3B's layer shapes instead (2048 wide, 16 query and 4 KV heads of
128, 11008 FFN), four of its 36 layers: matrices of 12-45 MB in f32, past the L3 cache. Rows:
one-stream decode (128 tokens after a short prompt) and a 512-token prefill, the best of
`--repeats`.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import PROSE, bench_llama_cpp  # noqa: E402

# llama.cpp's file types (enum llama_ftype)
FTYPES = {
    "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9,
    "Q2_K": 10, "Q3_K_M": 12, "Q4_K_M": 15, "Q5_K_M": 17, "Q6_K": 18,
    "IQ4_NL": 25, "IQ4_XS": 30, "F32": 0, "F16": 1, "BF16": 32,
}
OUT = Path(__file__).resolve().parent.parent / "models" / "quants"


def requantized(source: Path, name: str) -> Path:
    import llama_cpp

    out = OUT / f"{source.name.split('.')[0]}.{name}.gguf"
    if name == "Q4_1" and "Q4_1" in source.name:
        return source
    if not out.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = FTYPES[name]
        params.allow_requantize = True
        tmp = out.with_suffix(".part")
        if llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params)) != 0:
            raise RuntimeError(f"llama.cpp could not write {name}")
        tmp.rename(out)
    return out


# layers, width, query heads, KV heads, head size, FFN width of the synthetic files
SHAPES = {"wide": (12, 1024, 16, 4, 64, 2816), "smollm3": (4, 2048, 16, 4, 128, 11008)}


def wide_source(tokenizer_model: Path, shape: str) -> Path:
    """The synthetic 256-aligned source file (see the module docstring)."""
    out = OUT / ("wide-llama.F32.gguf" if shape == "wide" else f"{shape}-shaped.F32.gguf")
    if not out.exists():
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from fixtures import smollm3_gguf as m

        # the test builder with SmolLM3-like widths instead of its tiny ones
        m.N_LAYER, m.N_EMBD, m.N_HEAD, m.N_HEAD_KV, m.HEAD_DIM, m.N_FF = SHAPES[shape]
        m.CONTEXT_LENGTH = 2048
        OUT.mkdir(parents=True, exist_ok=True)
        m.write_smollm3(out, "f32_untied", tokenizer_model)
    return out


def bench_ours(model: Path, prompt_ids: list[int], short_ids: list[int], n_decode: int, repeats: int):
    from smolrt import Engine, Finished

    with Engine.load(model) as engine:

        def run(ids: list[int], max_tokens: int) -> Finished:
            *_, last = list(engine.generate(ids, max_tokens=max_tokens, temperature=0, ignore_eos=True))
            assert isinstance(last, Finished)
            return last

        run(short_ids, 4)  # warm-up
        types = engine.info["tensor_types"]
        return {
            "decode": max(run(short_ids, n_decode).timings.decode_tokens_per_s for _ in range(repeats)),
            "prefill": max(len(prompt_ids) / run(prompt_ids, 1).timings.prefill_s for _ in range(repeats)),
            "types": ", ".join(f"{k} {v}" for k, v in sorted(types.items(), key=lambda kv: -kv[1]) if k != "F32"),
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--types", default="Q4_0,Q4_1,Q5_0,Q5_1,Q8_0,Q4_K_M")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--wide", nargs="?", const="wide", choices=sorted(SHAPES),
                    help="a synthetic 256-aligned file (real K-quants); =smollm3 for SmolLM3-3B's layers")
    args = ap.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print("llama-cpp-python is needed to write the files (set PYTHONPATH to its environment)", file=sys.stderr)
        return 1
    from smolrt import Engine, cpu_features
    from smolrt.models import resolve_model

    source = Path(resolve_model(None))
    if args.wide:
        source = wide_source(source, args.wide)
    with Engine.load(source) as probe:
        prompt_ids = probe.tokenize(PROSE * 80, add_special=False)[:512]
        short_ids = probe.tokenize(
            "<|im_start|>user\nTell me a long story about a dragon.<|im_end|>\n<|im_start|>assistant\n",
            parse_special=True,
        )
    print(f"source: {source.name}, threads: {args.threads}, smolrt kernels: {','.join(cpu_features())}")
    header = ("type", "MiB", "decode tok/s", "llama.cpp", "ratio", "prefill tok/s", "llama.cpp", "ratio", "tensors")
    rows = []
    for name in args.types.split(","):
        model = requantized(source, name)
        ours = bench_ours(model, prompt_ids, short_ids, args.decode_tokens, args.repeats)
        ref = bench_llama_cpp(model, prompt_ids, short_ids, args.decode_tokens, args.repeats, args.threads, [])
        rows.append((
            name,
            f"{model.stat().st_size / 2**20:.0f}",
            f"{ours['decode']:.1f}",
            f"{ref['decode']:.1f}",
            f"{ours['decode'] / ref['decode']:.2f}x",
            f"{ours['prefill']:.1f}",
            f"{ref['prefill']:.1f}",
            f"{ours['prefill'] / ref['prefill']:.2f}x",
            ours["types"],
        ))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    left = (0, len(header) - 1)  # the type and the tensor list; the figures align right
    for r in [header, *rows]:
        cells = enumerate(zip(r, widths, strict=True))
        print("  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in cells).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
