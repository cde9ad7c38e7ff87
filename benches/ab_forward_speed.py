"""Two builds of `forward_speed` (or two settings of one) compared the way this noisy host allows:
interleaved runs, the order alternating pair by pair, and the median of the per-pair ratios.

    python benches/ab_forward_speed.py OLD NEW [--pairs 10] [--rows 8] [--steps 64] [--context 64]
    python benches/ab_forward_speed.py BIN BIN --env-b FORWARD_SPEED_KV=q8   # one build, two settings

OLD and NEW are `forward_speed` binaries (`cargo build --release -p smolrt-core --example
forward_speed`, then copy `target/release/examples/forward_speed` aside before changing the
code). Each run decodes `--steps` steps of `--rows` rows after `--context` cached positions
(warm KV), and the figure is its ms per step. The host's speed swings by tens of percent from one
minute to the next; a pair's two runs are seconds apart, so their ratio sees less of it than
either run's time.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models/SmolLM2-135M-Instruct.Q4_1.gguf"
STEP_MS = re.compile(r"\(([0-9.]+) ms/step\)")


def step_ms(binary: str, model: Path, env: dict[str, str]) -> float:
    out = subprocess.run([binary, str(model)], env=env, capture_output=True, text=True, check=True).stdout
    found = STEP_MS.findall(out)
    if not found:
        sys.exit(f"{binary}: no 'ms/step' figure in its output:\n{out}")
    return float(found[-1])


def settings(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"--env-a/--env-b take NAME=VALUE, got {pair!r}")
        out[name] = value
    return out


def label(pairs: list[str]) -> str:
    return f" ({', '.join(pairs)})" if pairs else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--kv", default="f16", help="f16, f32 or q8")
    ap.add_argument("--env-a", action="append", default=[], help="NAME=VALUE for OLD's runs")
    ap.add_argument("--env-b", action="append", default=[], help="NAME=VALUE for NEW's runs")
    args = ap.parse_args()
    if args.pairs < 1:
        sys.exit("--pairs must be at least 1")

    base = dict(
        os.environ,
        FORWARD_SPEED_ONLY="decode",
        FORWARD_SPEED_WARM="1",
        FORWARD_SPEED_BATCH=str(args.rows),
        FORWARD_SPEED_STEPS=str(args.steps),
        FORWARD_SPEED_CONTEXT=str(args.context),
        FORWARD_SPEED_KV=args.kv,
    )
    sides = [
        (args.old, base | settings(args.env_a), []),
        (args.new, base | settings(args.env_b), []),
    ]
    for i in range(args.pairs):
        for binary, env, times in sides if i % 2 == 0 else sides[::-1]:
            times.append(step_ms(binary, args.model, env))
    (_, _, a), (_, _, b) = sides
    ratios = [y / x for x, y in zip(a, b, strict=True)]
    print(
        f"{args.rows} rows after {args.context} positions, {args.steps} steps, KV {args.kv}: "
        f"old{label(args.env_a)} min {min(a):.2f} median {statistics.median(a):.2f} ms | "
        f"new{label(args.env_b)} min {min(b):.2f} median {statistics.median(b):.2f} ms | "
        f"new faster in {sum(y < x for x, y in zip(a, b, strict=True))}/{args.pairs} pairs, "
        f"median ratio new/old {statistics.median(ratios):.3f}"
    )


if __name__ == "__main__":
    main()
