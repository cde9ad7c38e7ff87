"""Prefill and decode tokens/s: smolrt beside llama.cpp, same file, same thread count, one run.

    python benches/bench_engine.py [--model PATH] [--threads N] [--repeats 3]

llama.cpp is measured when `llama-cpp-python` is importable (it is kept out of CI: it takes
~15 minutes to build). Each figure is the best of `--repeats` runs; ratios are smolrt ÷ llama.cpp.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

PROSE = (
    "The history of computing is a story of abstraction layered on abstraction. Early machines were "
    "programmed by rewiring panels; then came stored programs, assemblers, compilers and operating "
    "systems, each hiding the details of the layer below. Today a single line of Python can start "
    "work on thousands of cores, yet every instruction still passes through the same basic cycle of "
    "fetch, decode and execute that von Neumann described in 1945. "
)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bench_smolrt(model: Path, prompt_ids: list[int], short_ids: list[int], n_decode: int, repeats: int):
    from smolrt import Engine, Finished, cpu_features

    rss0 = rss_mb()
    t0 = time.perf_counter()
    engine = Engine.load(model)
    load_s = time.perf_counter() - t0
    rss_loaded = rss_mb()

    def run(ids: list[int], max_tokens: int) -> Finished:
        gen = engine.generate(ids, max_tokens=max_tokens, temperature=0, ignore_eos=True)
        *_, last = list(gen)
        assert isinstance(last, Finished)
        return last

    run(short_ids, 4)  # warm-up: first-touch of weights, thread pools
    prefill = max(len(prompt_ids) / run(prompt_ids, 1).timings.prefill_s for _ in range(repeats))
    decode = max(run(short_ids, n_decode).timings.decode_tokens_per_s for _ in range(repeats))
    engine.close()
    return {
        "prefill": prefill,
        "decode": decode,
        "load_s": load_s,
        "rss_mb": rss_loaded - rss0,
        "kernels": ",".join(cpu_features()) or "scalar",
    }


def bench_llama_cpp(model: Path, prompt_ids: list[int], short_ids: list[int], n_decode: int,
                    repeats: int, threads: int):
    try:
        import llama_cpp
        import numpy as np
    except ImportError:
        return None
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=2048, n_batch=512, n_threads=threads,
                          n_threads_batch=threads, verbose=False)

    def prefill_once() -> float:
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt_ids)
        return len(prompt_ids) / (time.perf_counter() - t0)

    def decode_once() -> float:
        llm.reset()
        llm.eval(short_ids)
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        t0 = time.perf_counter()
        for _ in range(n_decode - 1):
            llm.eval([token])
            token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        return (n_decode - 1) / (time.perf_counter() - t0)

    decode_once()  # warm-up
    return {
        "prefill": max(prefill_once() for _ in range(repeats)),
        "decode": max(decode_once() for _ in range(repeats)),
        "version": llama_cpp.__version__,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    # candle sizes its thread pools from RAYON_NUM_THREADS: set it before the engine starts.
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    from smolrt import Engine
    from smolrt.models import resolve_model

    model = resolve_model(None if args.model is None else str(args.model))
    with Engine.load(model) as probe:
        long_ids = probe.tokenize(PROSE * 40, add_special=False)[: args.prompt_tokens]
        short_ids = probe.tokenize("<|im_start|>user\nTell me a long story about a dragon.<|im_end|>\n"
                                   "<|im_start|>assistant\n", parse_special=True)
    if len(long_ids) < args.prompt_tokens:
        print(f"prompt too short: {len(long_ids)} tokens", file=sys.stderr)
        return 1

    ours = bench_smolrt(model, long_ids, short_ids, args.decode_tokens, args.repeats)
    ref = bench_llama_cpp(model, long_ids, short_ids, args.decode_tokens, args.repeats, args.threads)

    print(f"model: {model.name} ({model.stat().st_size / 1e6:.0f} MB), threads: {args.threads}, "
          f"smolrt kernels: {ours['kernels']}, load: {ours['load_s'] * 1000:.0f} ms, "
          f"RSS after load: +{ours['rss_mb']:.0f} MB")
    print(f"{'figure':<34}{'smolrt':>10}{'llama.cpp':>12}{'ratio':>8}")
    rows = [
        (f"prefill tok/s ({args.prompt_tokens}-token prompt)", "prefill"),
        (f"decode tok/s ({args.decode_tokens} tokens)", "decode"),
    ]
    for label, key in rows:
        theirs = f"{ref[key]:>12.1f}" if ref else f"{'n/a':>12}"
        ratio = f"{ours[key] / ref[key]:>8.2f}" if ref else f"{'':>8}"
        print(f"{label:<34}{ours[key]:>10.1f}{theirs}{ratio}")
    if ref:
        print(f"llama.cpp: llama-cpp-python {ref['version']}")
    else:
        print("llama.cpp: not measured (pip install llama-cpp-python to compare)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
