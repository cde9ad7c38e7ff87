"""A float64 forward pass of a llama-family GGUF, to measure how far any engine's logits may drift.

    /opt/ref/bin/python tools/reference_forward.py --model models/SmolLM2-135M-Instruct.Q4_1.gguf

Weights are dequantized once and everything after that runs in float64 with no activation
quantization and no F16 KV cache, so this is the model's "exact" output. It re-runs the prompts in
tests/golden/greedy.json and reports how often its argmax agrees with llama.cpp's: that is the
noise floor the thresholds in tests/test_golden.py are set from. Needs only numpy and gguf; slow
(about a minute) and for investigation, not for CI.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gguf
import numpy as np
from gguf.quants import dequantize

GREEDY = Path(__file__).resolve().parent.parent / "tests" / "golden" / "greedy.json"


class Reference:
    def __init__(self, path: Path) -> None:
        reader = gguf.GGUFReader(path)
        arch = reader.fields["general.architecture"].contents()

        def meta(key: str):
            return reader.fields[f"{arch}.{key}"].contents()

        self.layers = meta("block_count")
        self.heads = meta("attention.head_count")
        self.kv_heads = meta("attention.head_count_kv")
        self.eps = meta("attention.layer_norm_rms_epsilon")
        self.rope_base = meta("rope.freq_base")
        self.w = {}
        for t in reader.tensors:
            shape = [int(d) for d in reversed(t.shape)]  # GGUF lists dimensions innermost first
            self.w[t.name] = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(shape)
        self.embd = self.w["token_embd.weight"]
        # Tied embeddings: SmolLM2 has no output.weight.
        self.output = self.w.get("output.weight", self.embd)
        self.head_dim = self.embd.shape[1] // self.heads

    def _rms(self, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * weight

    def _rope(self, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
        # GGUF llama Q/K weights are permuted so that rotation pairs are adjacent elements.
        i = np.arange(self.head_dim // 2)
        theta = pos[:, None] * self.rope_base ** (-2 * i / self.head_dim)
        cos, sin = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = a * sin + b * cos
        return out

    def logits(self, ids: list[int]) -> np.ndarray:
        """Logits after every position of `ids`, shape (len(ids), vocab)."""
        n, w, hd = len(ids), self.w, self.head_dim
        x = self.embd[np.asarray(ids)]
        pos = np.arange(n, dtype=np.float64)
        causal = np.triu(np.full((n, n), -np.inf), 1)
        group = self.heads // self.kv_heads
        for layer in range(self.layers):
            p = f"blk.{layer}."
            h = self._rms(x, w[p + "attn_norm.weight"])
            q = self._rope((h @ w[p + "attn_q.weight"].T).reshape(n, self.heads, hd), pos)
            k = self._rope((h @ w[p + "attn_k.weight"].T).reshape(n, self.kv_heads, hd), pos)
            v = (h @ w[p + "attn_v.weight"].T).reshape(n, self.kv_heads, hd)
            k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
            s = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + causal
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            x = x + np.einsum("hts,shd->thd", s, v).reshape(n, -1) @ w[p + "attn_output.weight"].T
            h = self._rms(x, w[p + "ffn_norm.weight"])
            gate = h @ w[p + "ffn_gate.weight"].T
            up = h @ w[p + "ffn_up.weight"].T
            x = x + (gate / (1 + np.exp(-gate)) * up) @ w[p + "ffn_down.weight"].T
        return self._rms(x, w["output_norm.weight"]) @ self.output.T


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--golden", type=Path, default=GREEDY)
    args = parser.parse_args(argv)

    ref = Reference(args.model)
    prompts = json.loads(args.golden.read_text(encoding="utf-8"))["prompts"]
    flips: list[tuple[str, float]] = []
    total = 0
    for p in prompts:
        n = len(p["prompt_ids"])
        logits = ref.logits(p["prompt_ids"] + p["continuation_ids"][:-1])[n - 1 :]
        argmax = logits.argmax(axis=1)
        for name, key, margins in (
            ("token-by-token", "continuation_ids", "top2_margins"),
            ("one-pass", "teacher_forced_ids", "teacher_forced_margins"),
        ):
            for step, (want, got) in enumerate(zip(p[key], argmax, strict=True)):
                if want != got:
                    flips.append((name, p[margins][step]))
        total += len(argmax)
    for name in ("token-by-token", "one-pass"):
        margins = sorted(m for kind, m in flips if kind == name)
        print(
            f"float64 vs llama.cpp {name}: {total - len(margins)}/{total} argmax agree; "
            f"llama.cpp margins where they differ: {margins}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
