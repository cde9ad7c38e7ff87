"""Write the reference blocks the Rust kernel tests check against, from the gguf package's numpy
(de)quantizers — an implementation independent of ours.

    /opt/ref/bin/python tools/make_kernel_fixture.py

Writes rust/smolrt-core/src/arch/testdata/kernel_blocks.txt, one block per line:
    q4_1 <20 bytes hex> <32 f32 bit patterns, hex>      weight block and its dequantized values
    q8_0 <34 bytes hex> <32 f32 bit patterns, hex>
    q4_0, q5_0, q5_1 likewise (18, 22, 24 bytes); q4_k <144 bytes> <256 f32 bit patterns>,
    q5_k <176 bytes>, q6_k <210 bytes>, q3_k <110 bytes>,
    q2_k <84 bytes>, iq4_nl <18 bytes> <32 values>, iq4_xs <136 bytes> <256 values> likewise
    act  <32 f32 bit patterns> <Q8_0 block, 34 bytes hex> activations and gguf's quantization
Random blocks plus edge cases: zero and negative scales, subnormal and large f16 scales, extreme
quants (0/15, 0/31 with every fifth bit set or clear, -128/127), all-zero and single-spike
activations. Seeded: reruns give the same file (the later types draw from their own generator,
so adding them left the earlier lines as they were).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

OUT = Path(__file__).resolve().parent.parent / "rust/smolrt-core/src/arch/testdata/kernel_blocks.txt"


def f16_bytes(v: float) -> bytes:
    return np.array([v], dtype=np.float16).tobytes()


def bits(values: np.ndarray) -> str:
    return " ".join(f"{b:08x}" for b in np.asarray(values, dtype=np.float32).view(np.uint32))


def q4_1_blocks(rng: np.random.Generator) -> list[bytes]:
    out = []
    scales = [(0.0, 0.0), (-0.02, 0.5), (6.0e-8, -6.0e-8), (60000.0, -60000.0), (1.0, 0.0)]
    scales += [(float(rng.normal(0, 0.02)), float(rng.normal(0, 0.1))) for _ in range(40)]
    for i, (d, m) in enumerate(scales):
        if i % 7 == 1:
            qs = np.full(16, 0xF0 if i % 2 else 0x0F, dtype=np.uint8)
        else:
            qs = rng.integers(0, 256, 16, dtype=np.uint8)
        out.append(f16_bytes(d) + f16_bytes(m) + qs.tobytes())
    return out


def q8_0_blocks(rng: np.random.Generator) -> list[bytes]:
    out = []
    scales = [0.0, -0.01, 6.0e-8, 60000.0, 1.0] + [float(rng.normal(0, 0.01)) for _ in range(40)]
    for i, d in enumerate(scales):
        if i % 7 == 1:
            qs = np.array([-128, 127] * 16, dtype=np.int8)
        else:
            qs = rng.integers(-128, 128, 32, dtype=np.int8)
        out.append(f16_bytes(d) + qs.tobytes())
    return out


def nibble_blocks(rng: np.random.Generator, fifth_bits: bool, with_min: bool) -> list[bytes]:
    """Q4_0 (neither), Q5_0 (fifth bits) or Q5_1 (both) blocks."""
    out = []
    scales = [(0.0, 0.0), (-0.02, 0.5), (6.0e-8, -6.0e-8), (60000.0, -60000.0), (1.0, 0.0)]
    scales += [(float(rng.normal(0, 0.02)), float(rng.normal(0, 0.1))) for _ in range(40)]
    for i, (d, m) in enumerate(scales):
        if i % 7 == 1:
            # the extremes: all quants 0, or all at the top (15, or 31 with every fifth bit)
            top = i % 2 == 1
            qs = np.full(16, 0xFF if top else 0x00, dtype=np.uint8)
            qh = np.uint32(0xFFFFFFFF if top else 0)
        else:
            qs = rng.integers(0, 256, 16, dtype=np.uint8)
            qh = np.uint32(rng.integers(0, 2**32, dtype=np.uint64))
        head = f16_bytes(d) + (f16_bytes(m) if with_min else b"")
        out.append(head + (np.array([qh], dtype="<u4").tobytes() if fifth_bits else b"") + qs.tobytes())
    return out


def q4_k_blocks(rng: np.random.Generator) -> list[bytes]:
    """Q4_K super-blocks written directly (the gguf package does not quantize K-quants): finite
    f16 d and dmin, random packed 6-bit scales and mins, random nibbles, and the extremes."""
    out = []
    scales = [(0.0, 0.0), (-0.02, 0.5), (6.0e-8, -6.0e-8), (60000.0, -60000.0), (1.0, 0.0)]
    scales += [(float(rng.normal(0, 0.002)), float(rng.normal(0, 0.01))) for _ in range(40)]
    for i, (d, dmin) in enumerate(scales):
        if i % 7 == 1:
            top = i % 2 == 1
            packed = np.full(12, 0xFF if top else 0x00, dtype=np.uint8)
            qs = np.full(128, 0xFF if top else 0x00, dtype=np.uint8)
        else:
            packed = rng.integers(0, 256, 12, dtype=np.uint8)
            qs = rng.integers(0, 256, 128, dtype=np.uint8)
        out.append(f16_bytes(d) + f16_bytes(dmin) + packed.tobytes() + qs.tobytes())
    return out


def q5_k_blocks(rng: np.random.Generator) -> list[bytes]:
    """Q5_K super-blocks: Q4_K's fields (see `q4_k_blocks`) with 32 bytes of fifth bits."""
    out = []
    for i, b in enumerate(q4_k_blocks(rng)):
        if i % 7 == 1:
            qh = np.full(32, b[16], dtype=np.uint8)  # the extremes: fifth bits as the nibbles
        else:
            qh = rng.integers(0, 256, 32, dtype=np.uint8)
        out.append(b[:16] + qh.tobytes() + b[16:])
    return out


def q6_k_blocks(rng: np.random.Generator) -> list[bytes]:
    """Q6_K super-blocks written directly: random low nibbles, top bits and signed scales (the
    extremes -128 and 127 included), finite f16 d, and the all-zero / all-ones extremes."""
    out = []
    scales = [0.0, -0.01, 6.0e-8, 60000.0, 1.0] + [float(rng.normal(0, 0.001)) for _ in range(40)]
    for i, d in enumerate(scales):
        if i % 7 == 1:
            fill = 0xFF if i % 2 else 0x00
            body = np.full(192, fill, dtype=np.uint8)
            sc = np.array([-128, 127] * 8, dtype=np.int8)
        else:
            body = rng.integers(0, 256, 192, dtype=np.uint8)
            sc = rng.integers(-128, 128, 16, dtype=np.int8)
        out.append(body.tobytes() + sc.tobytes() + f16_bytes(d))
    return out


def extreme_or_random(rng: np.random.Generator, i: int, size: int) -> bytes:
    """`size` bytes for block `i`: every seventh block (from the second) all 0x00 or all 0xFF
    in turn, the extremes of every field; the others random."""
    if i % 7 == 1:
        return np.full(size, 0xFF if i % 2 else 0x00, dtype=np.uint8).tobytes()
    return rng.integers(0, 256, size, dtype=np.uint8).tobytes()


def q3_k_blocks(rng: np.random.Generator) -> list[bytes]:
    """Q3_K super-blocks written directly: random high bits, low bit pairs and packed 6-bit
    scales (so every scale from -32 to 31 can occur), finite f16 d, and the extremes: every
    quant and scale at the bottom (all bytes 0: quants -4, scales -32) or the top (all 0xFF)."""
    out = []
    scales = [0.0, -0.01, 6.0e-8, 60000.0, 1.0] + [float(rng.normal(0, 0.002)) for _ in range(40)]
    for i, d in enumerate(scales):
        out.append(extreme_or_random(rng, i, 108) + f16_bytes(d))
    return out


def q2_k_blocks(rng: np.random.Generator) -> list[bytes]:
    """Q2_K super-blocks written directly: random scale/min nibbles and quants, finite f16 d and
    dmin, and the extremes (all bytes 0, or all 0xFF: quants 3, scales and mins 15)."""
    out = []
    scales = [(0.0, 0.0), (-0.02, 0.5), (6.0e-8, -6.0e-8), (60000.0, -60000.0), (1.0, 0.0)]
    scales += [(float(rng.normal(0, 0.002)), float(rng.normal(0, 0.01))) for _ in range(40)]
    for i, (d, dmin) in enumerate(scales):
        out.append(extreme_or_random(rng, i, 80) + f16_bytes(d) + f16_bytes(dmin))
    return out


def iq4_nl_blocks(rng: np.random.Generator) -> list[bytes]:
    """IQ4_NL blocks written directly (the gguf package does not quantize them): random grid
    indices, finite f16 d, and the extremes (every index 0 or 15)."""
    out = []
    scales = [0.0, -0.02, 6.0e-8, 60000.0, 1.0] + [float(rng.normal(0, 0.02)) for _ in range(40)]
    for i, d in enumerate(scales):
        out.append(f16_bytes(d) + extreme_or_random(rng, i, 16))
    return out


def iq4_xs_blocks(rng: np.random.Generator) -> list[bytes]:
    """IQ4_XS super-blocks written directly: random 6-bit scales (so every one from -32 to 31
    can occur) and indices, finite f16 d, and the extremes (all bytes 0: scales -32, indices 0;
    all 0xFF: scales 31, indices 15)."""
    out = []
    scales = [0.0, -0.01, 6.0e-8, 60000.0, 1.0] + [float(rng.normal(0, 0.001)) for _ in range(40)]
    for i, d in enumerate(scales):
        out.append(f16_bytes(d) + extreme_or_random(rng, i, 134))
    return out


def activations(rng: np.random.Generator) -> list[np.ndarray]:
    spike = np.zeros(32, dtype=np.float32)
    spike[5] = -3.0
    rows = [np.zeros(32, dtype=np.float32), spike, np.full(32, 1e-30, dtype=np.float32)]
    rows += [rng.normal(0, s, 32).astype(np.float32) for s in (0.01, 1.0, 50.0) for _ in range(10)]
    return rows


def main() -> None:
    rng = np.random.default_rng(20240617)
    lines = ["# generated by tools/make_kernel_fixture.py from the gguf package; do not edit"]
    for name, qtype, blocks in (("q4_1", T.Q4_1, q4_1_blocks(rng)), ("q8_0", T.Q8_0, q8_0_blocks(rng))):
        for b in blocks:
            values = dequantize(np.frombuffer(b, dtype=np.uint8), qtype)
            lines.append(f"{name} {b.hex()} {bits(values)}")
    for x in activations(rng):
        q = quantize(x.reshape(1, 32), T.Q8_0).tobytes()
        lines.append(f"act {bits(x)} {q.hex()}")
    later = np.random.default_rng(20261204)
    for name, qtype, fifth, with_min in (("q4_0", T.Q4_0, False, False), ("q5_0", T.Q5_0, True, False),
                                         ("q5_1", T.Q5_1, True, True)):
        for b in nibble_blocks(later, fifth, with_min):
            values = dequantize(np.frombuffer(b, dtype=np.uint8), qtype)
            lines.append(f"{name} {b.hex()} {bits(values)}")
    for b in q4_k_blocks(later):
        values = dequantize(np.frombuffer(b, dtype=np.uint8), T.Q4_K)
        lines.append(f"q4_k {b.hex()} {bits(values)}")
    for b in q6_k_blocks(later):
        values = dequantize(np.frombuffer(b, dtype=np.uint8), T.Q6_K)
        lines.append(f"q6_k {b.hex()} {bits(values)}")
    for b in q5_k_blocks(later):
        values = dequantize(np.frombuffer(b, dtype=np.uint8), T.Q5_K)
        lines.append(f"q5_k {b.hex()} {bits(values)}")
    for b in q3_k_blocks(later):
        values = dequantize(np.frombuffer(b, dtype=np.uint8), T.Q3_K)
        lines.append(f"q3_k {b.hex()} {bits(values)}")
    for b in q2_k_blocks(later):
        values = dequantize(np.frombuffer(b, dtype=np.uint8), T.Q2_K)
        lines.append(f"q2_k {b.hex()} {bits(values)}")
    for name, qtype, blocks in (("iq4_nl", T.IQ4_NL, iq4_nl_blocks(later)),
                                ("iq4_xs", T.IQ4_XS, iq4_xs_blocks(later))):
        for b in blocks:
            values = dequantize(np.frombuffer(b, dtype=np.uint8), qtype)
            lines.append(f"{name} {b.hex()} {bits(values)}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT} ({len(lines) - 1} blocks)")


if __name__ == "__main__":
    main()
